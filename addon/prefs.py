"""The extension's id and its preferences, for every module that reads them (the preferences'
own UI is ``ui/preferences.py``)."""

from __future__ import annotations

import bpy

from .link import settings
from .link.settings import ADDON_ID


def prefs(context=None):
    """The add-on's preferences, or None when it is not enabled as an add-on (the bpy module
    running a checkout)."""
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def chosen_model(p=None) -> tuple[str, str]:
    """(what the backend loads, the default model's folder) from the preferences."""
    default = settings.model_dir(p.model_dir if p else "")
    if p is None:
        return default, default
    return settings.face_model(p.face_model, default, p.bfm2009_file, p.bfm2017_file), default
