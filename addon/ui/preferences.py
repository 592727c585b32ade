"""Add-on preferences: backend interpreter, model folder, cache folder."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from ..link import backend_env, session, settings
from ..prefs import ADDON_ID


class FACEDET3D_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_python: StringProperty(
        name="Backend interpreter",
        description="Python 3.11 interpreter of the backend environment (with torch). "
                    "Empty: $FACEDET3D_BACKEND_PYTHON, else .venv-backend beside the add-on",
        subtype="FILE_PATH",
        default="",
    )
    setup_python: StringProperty(
        name="Python for the backend",
        description="A Python 3.11 that Set Up Backend makes the environment with. Empty: Blender's own if it "
                    "fits, else one found on this machine",
        subtype="FILE_PATH",
        default="",
    )
    model_dir: StringProperty(
        name="Model folder",
        description="Folder of the default face model, ICT-FaceKit Light: a download or checkout of its release "
                    "(the OBJs of FaceXModel/, converted once) or the folder holding ict_facekit_light.npz; "
                    "a Basel Face Model is registered to it. "
                    "Empty: $FACEDET3D_MODEL_DIR, else shared/models/ict-facekit of a checkout",
        subtype="DIR_PATH",
        default="",
    )
    face_model: EnumProperty(
        name="Face model",
        description="The morphable model Import Photo builds the face on",
        items=settings.MODEL_CHOICES,
        default="DEFAULT",
    )
    bfm2009_file: StringProperty(
        name="BFM 2009 file",
        description="01_MorphableModel.mat of the Basel Face Model 2009 (optional beside it: Exp_Pca.bin, "
                    "std_exp.txt, BFM_exp_idx.mat for the FaceWarehouse expressions; <name>_uv.obj for your UVs)",
        subtype="FILE_PATH",
        default="",
    )
    bfm2017_file: StringProperty(
        name="BFM 2017 file",
        description="model2017-1_bfm_nomouth.h5 or model2017-1_face12_nomouth.h5 of the Basel Face Model 2017",
        subtype="FILE_PATH",
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
        box = col.box()
        env = session.user_folder("backend") / "env"
        st = backend_env.state(env)
        box.label(text="Backend environment: " + st.detail,
                  icon={"ready": "CHECKMARK", "broken": "ERROR"}.get(st.status, "INFO"))
        row = box.row()
        row.operator("facedet3d.setup_backend", text="Set Up Backend" if st.status == "missing" else "Repair",
                     icon="CONSOLE")
        if st.status != "missing":
            row.operator("facedet3d.remove_backend", icon="TRASH")
        box.prop(self, "setup_python")
        col.prop(self, "backend_python")
        col.label(text="Using: " + settings.backend_python(self.backend_python), icon="CONSOLE")
        col.prop(self, "model_dir")
        col.label(text="Using: " + (settings.model_dir(self.model_dir) or "(none found: set a folder)"),
                  icon="MESH_MONKEY")
        col.operator("facedet3d.get_default_model", icon="IMPORT")
        col.prop(self, "face_model")
        if self.face_model == "BFM2009":
            col.prop(self, "bfm2009_file")
        elif self.face_model == "BFM2017":
            col.prop(self, "bfm2017_file")
        if self.face_model != "DEFAULT":
            col.label(text="Converted on first use (~25 s at the BFM's size), then cached in the extension's "
                           "user folder",
                      icon="INFO")
        col.prop(self, "cache_dir")
        col.operator("facedet3d.backend_check", icon="CHECKMARK")


CLASSES = (FACEDET3D_AP_preferences,)
