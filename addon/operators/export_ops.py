"""Export the face as glTF (mesh, named expression morph targets) with its detail maps beside it."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper

from ..scene import gltf_export
from .add_details import face_object


class FACEDET3D_OT_export_gltf(bpy.types.Operator, ExportHelper):
    """Export the selected face as glTF with its shape keys, and its detail and wrinkle maps
    (EXR, millimetres) plus a JSON recipe in a folder beside it"""

    bl_idname = "facedet3d.export_gltf"
    bl_label = "Export glTF + Maps"
    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb;*.gltf", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return face_object(context) is not None

    def execute(self, context):
        obj = face_object(context)
        try:
            info = gltf_export.export(obj, self.filepath)
        except (OSError, ValueError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Export failed: {exc}")
            return {"CANCELLED"}
        n = (1 if info["base"] else 0) + len(info["packs"]) + len(info["keys"])
        self.report({"INFO"}, f"Wrote {self.filepath} and {n} maps beside it")
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_export_gltf,)
