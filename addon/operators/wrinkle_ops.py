"""Wrinkles Follow Animation: per-AU wrinkle maps mixed live by the AU controls, plus exact
maps at every keyed expression, cross-faded between keys (addon/wrinkle_mix.py)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty

from ...protocol.details import WrinkleRig
from ..link import jobs
from ..scene import wrinkle_mix
from .add_details import face_job_dir, face_object
from .backend_job import BackendJobMixin, detail_model_items


class FACEDET3D_OT_animate_wrinkles(BackendJobMixin, bpy.types.Operator):
    """Make the face's wrinkles follow its AU controls and keyframes: per-AU maps mixed live,
    exact maps at each keyed expression (run again after changing keys)"""

    bl_idname = "facedet3d.animate_wrinkles"
    bl_label = "Wrinkles Follow Animation"
    bl_options = {"REGISTER", "UNDO"}
    label_running = "FaceDet3D wrinkles"

    size: EnumProperty(name="Wrinkle map size", default="1024", items=[
        ("512", "512", "Fast preview"), ("1024", "1024", "Default: ~0.25 mm texels"),
        ("2048", "2048", "Close-ups (4x the memory and time)")])
    base_size: EnumProperty(name="Detail map size", default="4096", items=[
        ("1024", "1024", "Preview"), ("2048", "2048", "Medium shots"),
        ("4096", "4096", "Final renders: pores and fine lines")],
        description="Size of the person's own detail map (pores, lines) under the wrinkles")
    age: FloatProperty(name="Age", description="Age for wrinkle depth (0: estimate from the photo)",
                       default=0.0, min=0.0, max=110.0)
    seed: IntProperty(name="Seed", default=0, min=0)
    detail_model: EnumProperty(name="Model", items=detail_model_items,
                               description="What makes the maps (the backend's detail models)")
    which: EnumProperty(name="AUs", default="ALL", items=[
        ("ALL", "All AUs", "A wrinkle map for every AU control: every slider moves the wrinkles live "
                           "(about a second per AU at 1024)"),
        ("ANIMATED", "Animated AUs", "Only the AUs that are keyed or set now: faster; other sliders then "
                                     "move the face but not its wrinkles")])

    @classmethod
    def poll(cls, context):
        obj = face_object(context)
        return obj is not None and len(obj.facedet3d.aus) > 0

    def start(self, context):
        obj = face_object(context)
        if obj is None or not len(obj.facedet3d.aus):
            raise jobs.InputError("Select a face made by FaceDet3D's Import Photo first.")
        face_job_dir(obj)  # the files are still there
        self._obj_name = obj.name
        params = wrinkle_mix.request(obj, self.size, self.base_size, self.seed, self.detail_model, self.age,
                                     animated_only=self.which == "ANIMATED")
        if params.controls == []:
            raise jobs.InputError("No AU is keyed or set on this face: set an emotion or move a slider first, "
                                  "or choose 'All AUs'.")
        return "wrinkles", params

    def finish(self, context, result):
        obj = bpy.data.objects[self._obj_name]
        rig = WrinkleRig.from_dict(result)
        wrinkle_mix.attach(obj, rig)  # raises before changing the object when a map is unreadable
        self.report({"INFO"}, f"Wrinkles follow {obj.name}'s AUs: {sum(len(p.controls) for p in rig.packs)} "
                              f"AU maps in {len(rig.packs)} images, {len(rig.keys)} keyed expressions "
                              f"({rig.model} model, age {rig.age_years:.0f})")
        return {"FINISHED"}


class FACEDET3D_OT_remove_wrinkles(bpy.types.Operator):
    """Stop the wrinkles following the animation (the person's detail map stays)"""

    bl_idname = "facedet3d.remove_wrinkles"
    bl_label = "Remove Animated Wrinkles"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = face_object(context)
        return obj is not None and bool(obj.facedet3d.wrinkle_rig)

    def execute(self, context):
        wrinkle_mix.detach(face_object(context))
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_animate_wrinkles, FACEDET3D_OT_remove_wrinkles)
