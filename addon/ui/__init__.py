"""What the user sees: preferences, the properties saved on a face object, the sidebar panels."""

from __future__ import annotations

import bpy

from . import panels, preferences, properties

CLASSES = preferences.CLASSES + properties.CLASSES + panels.CLASSES


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register_props()


def unregister():
    properties.unregister_props()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
