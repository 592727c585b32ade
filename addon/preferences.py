"""Add-on preferences: backend interpreter, model folder, cache folder."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import settings

ADDON_ID = __package__.rpartition(".")[0]  # the extension's own package name


class FACEDET3D_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_python: StringProperty(
        name="Backend interpreter",
        description="Python 3.11 interpreter of the backend environment (with torch). "
                    "Empty: $FACEDET3D_BACKEND_PYTHON, else .venv-backend beside the add-on",
        subtype="FILE_PATH",
        default="",
    )
    model_dir: StringProperty(
        name="Model folder",
        description="Folder of the face model (ICT-FaceKit Light: holds ict_facekit_light.npz). "
                    "Empty: $FACEDET3D_MODEL_DIR, else shared/models/ict-facekit of a checkout",
        subtype="DIR_PATH",
        default="",
    )
    cache_dir: StringProperty(
        name="Cache folder",
        description="Where reconstructions of unsaved files are kept until the .blend is saved. "
                    "Empty: the extension's user folder",
        subtype="DIR_PATH",
        default="",
    )

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "backend_python")
        col.label(text="Using: " + settings.backend_python(self.backend_python), icon="CONSOLE")
        col.prop(self, "model_dir")
        col.label(text="Using: " + (settings.model_dir(self.model_dir) or "(none found: set a folder)"),
                  icon="MESH_MONKEY")
        col.prop(self, "cache_dir")
        col.operator("facedet3d.backend_check", icon="CHECKMARK")


def prefs(context=None) -> FACEDET3D_AP_preferences | None:
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


CLASSES = (FACEDET3D_AP_preferences,)
