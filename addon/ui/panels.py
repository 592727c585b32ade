"""The "FaceDet3D" tab in the 3D view sidebar."""

from __future__ import annotations

import json
import os

import bpy

from ...protocol.models import ict_layout
from ..link import settings
from ..prefs import ADDON_ID, chosen_model, prefs
from ..scene import au_rig, wrinkle_mix


class _Sidebar:
    """Where every FaceDet3D panel lives: the 3D view's sidebar, in the "FaceDet3D" tab."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FaceDet3D"


def first_run_steps(p) -> list[tuple[str, str, str]]:
    """What must be done before Import Photo can run, in order: (words, operator, its button
    text). Empty when the backend's interpreter and the default model are both there."""
    steps = []
    py = settings.backend_python(p.backend_python if p else "")
    if not os.path.isfile(py):
        steps.append(("Set up the backend (a Python environment with PyTorch, ~2 GB, once)",
                      "facedet3d.setup_backend", "Set Up Backend"))
    folder = settings.model_dir(p.model_dir if p else "")
    if not folder or ict_layout(folder) is None:
        steps.append(("Get the default face model (ICT-FaceKit, MIT, ~400 MB, once), or set its folder in the "
                      "preferences", "facedet3d.get_default_model", "Get the Default Model"))
    return steps


class FACEDET3D_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "FaceDet3D"
    bl_idname = "FACEDET3D_PT_main"

    def draw(self, context):
        layout = self.layout
        p = prefs(context)
        steps = first_run_steps(p)
        if steps:  # a first run: the steps in order, instead of buttons that cannot work yet
            col = layout.column()
            col.label(text="Before the first face:", icon="INFO")
            for i, (words, op, button) in enumerate(steps, 1):
                box = col.box()
                box.label(text=f"{i}. {words}")
                box.operator(op, text=button)
            col.operator("preferences.addon_show", text="Preferences", icon="PREFERENCES").module = ADDON_ID
            return
        if p is not None:  # the model Import Photo builds on (the file paths live in the preferences)
            layout.prop(p, "face_model", text="Model")
            if p.face_model != "DEFAULT" and not chosen_model(p)[0]:
                layout.label(text="Set the BFM file in the preferences", icon="ERROR")
        layout.operator("facedet3d.import_photo", icon="IMAGE_DATA")
        obj = context.active_object
        fd = getattr(obj, "facedet3d", None) if obj else None
        if fd is None or not fd.job_dir:
            layout.label(text="Select a FaceDet3D face to see its data.", icon="INFO")
            return
        layout.operator("facedet3d.add_details", icon="MOD_DISPLACE")
        row = layout.row(align=True)
        if fd.lighting == "PHOTO":
            row.operator("facedet3d.studio_lighting", icon="LIGHT_AREA")
        else:
            row.operator("facedet3d.photo_lighting", icon="WORLD")
        row = layout.row(align=True)
        row.operator("facedet3d.neural_pass", icon="NODE_COMPOSITING")
        if fd.neural:
            row.operator("facedet3d.plain_render", icon="RENDER_STILL")
        layout.operator("facedet3d.export_gltf", icon="EXPORT")
        box = layout.box()
        box.label(text=obj.name, icon="USER")
        box.label(text=f"Model: {fd.model}")
        box.label(text=f"Fit error: {fd.fit_error_iod * 100:.1f}% of eye distance")
        if fd.detail_tag:
            box.label(text=f"Details by: {fd.detail_model or 'physical'}")
            box.prop(fd, "viewport_relief", expand=True)
        aus = json.loads(fd.aus_json or "{}")
        active = sorted(((k, v) for k, v in aus.items() if v >= 0.05 and k[-1] not in "LR"),
                        key=lambda kv: -kv[1])
        if active:
            col = box.column(align=True)
            col.label(text="Photo's Action Units:")
            for k, v in active[:8]:
                col.label(text=f"  {k}: {v:.2f}")
        else:
            box.label(text="Photo's expression: neutral")


class FACEDET3D_PT_expression(_Sidebar, bpy.types.Panel):
    bl_label = "Expression"
    bl_idname = "FACEDET3D_PT_expression"
    bl_parent_id = "FACEDET3D_PT_main"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        fd = getattr(obj, "facedet3d", None) if obj else None
        return fd is not None and len(fd.aus) > 0

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        fd = obj.facedet3d
        grid = layout.grid_flow(columns=4, align=True)
        for ident, label, _ in (("happy", "Happy", ""), ("sad", "Sad", ""), ("surprise", "Surprise", ""),
                                ("fear", "Fear", ""), ("anger", "Anger", ""), ("disgust", "Disgust", ""),
                                ("contempt", "Contempt", ""), ("neutral", "Neutral", "")):
            grid.operator("facedet3d.set_emotion", text=label).emotion = ident
        layout.operator("facedet3d.keyframe_aus", icon="KEY_HLT")
        row = layout.row(align=True)
        row.operator("facedet3d.import_au_curves", text="Import CSV", icon="IMPORT")
        row.operator("facedet3d.export_au_curves", text="Export CSV", icon="EXPORT")
        layout.operator("facedet3d.animate_from_video", icon="FILE_MOVIE")
        box = layout.box()
        if fd.wrinkle_rig:
            box.label(text=f"Wrinkles follow the AUs ({len(fd.wrinkle_keys)} exact keys)", icon="CHECKMARK")
            if wrinkle_mix.stale_keys(context.active_object):
                box.label(text="AU keys changed since: wrinkles at keys are not exact", icon="ERROR")
            row = box.row(align=True)
            row.operator("facedet3d.animate_wrinkles", text="Update", icon="FILE_REFRESH")
            row.operator("facedet3d.remove_wrinkles", text="", icon="X")
        else:
            box.operator("facedet3d.animate_wrinkles", icon="MOD_DISPLACE")
        col = layout.column(align=True)
        shown = set()
        for item in fd.aus:
            if item.au in shown:
                continue
            shown.add(item.au)
            row = col.row(align=True)
            row.label(text=f"AU{item.au} {item.label}")
            for other in fd.aus:
                if other.au == item.au:
                    row.prop(obj, au_rig.path(other.name), text=other.side or "", slider=True)


class FACEDET3D_PT_backend(_Sidebar, bpy.types.Panel):
    bl_label = "Backend"
    bl_idname = "FACEDET3D_PT_backend"
    bl_parent_id = "FACEDET3D_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        row = self.layout.row(align=True)
        row.operator("facedet3d.backend_check", icon="CHECKMARK")
        row.operator("facedet3d.backend_restart", icon="FILE_REFRESH")


CLASSES = (FACEDET3D_PT_main, FACEDET3D_PT_expression, FACEDET3D_PT_backend)
