"""Operators: each validates input, calls the backend, builds or edits the scene, reports
progress and errors, and leaves the scene unchanged when it fails."""

from __future__ import annotations

import bpy

from . import add_details, backend_ops, export_ops, expression_ops, import_photo, neural_ops, wrinkle_ops

CLASSES = (import_photo.CLASSES + add_details.CLASSES + expression_ops.CLASSES + wrinkle_ops.CLASSES + export_ops.CLASSES
           + neural_ops.CLASSES + backend_ops.CLASSES)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
