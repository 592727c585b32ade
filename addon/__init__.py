"""Blender side of FaceDet3D: preferences, properties, panels, scene building, backend client."""

from __future__ import annotations

import bpy

from . import panels, preferences, properties, session, storage

CLASSES = preferences.CLASSES + properties.CLASSES + panels.CLASSES


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register_props()
    storage.register_handlers()


def unregister():
    storage.unregister_handlers()
    session.shutdown()
    properties.unregister_props()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
