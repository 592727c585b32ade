"""Import Photo: photo -> reconstructed, textured face object, camera and light."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..link import jobs
from ..prefs import chosen_model, prefs
from ..scene import builder, storage
from .backend_job import BackendJobMixin


class FACEDET3D_OT_import_photo(BackendJobMixin, bpy.types.Operator, ImportHelper):
    """Reconstruct a textured 3D face from one photo"""

    bl_idname = "facedet3d.import_photo"
    bl_label = "Import Photo"
    bl_options = {"REGISTER", "UNDO"}
    label_running = "FaceDet3D import"

    filter_glob: StringProperty(default="*" + ";*".join(jobs.IMAGE_EXTENSIONS), options={"HIDDEN"})
    filter_image: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    view: EnumProperty(name="View", default="photo", items=[
        ("photo", "Photo", "The photo's own camera and framing"),
        ("portrait", "Portrait", "A three-quarter close-up with a raking key light: relief and wrinkles show")])
    face: IntProperty(name="Face", default=-1, min=-1,
                      description="Which face of a photo with several: its number from the left (0 = leftmost); "
                                  "-1: the largest")

    _job_dir: Path | None = None

    def start(self, context):
        p = prefs(context)
        model_dir, reference = chosen_model(p)
        if p is not None and p.face_model != "DEFAULT" and not model_dir:
            raise jobs.InputError(f"'Face model' is {p.face_model[:3]} {p.face_model[3:]} but no file is set: set it in "
                                  "Preferences > Add-ons > FaceDet3D, or switch 'Face model' back to Default.")
        jobs.check_inputs(self.filepath, model_dir, reference)
        self._job_dir = storage.new_job_dir(self.filepath, context)
        options = {"face": self.face} if self.face >= 0 else {}
        return "reconstruct", jobs.reconstruct_params(self.filepath, self._job_dir, model_dir, options)

    def discard(self, context):
        if self._job_dir is not None:
            jobs.discard(self._job_dir)

    def finish(self, context, result):
        built = builder.build_face(context, self._job_dir, view=self.view)
        for o in context.view_layer.objects:
            o.select_set(False)
        built.obj.select_set(True)
        context.view_layer.objects.active = built.obj
        self.report({"INFO"}, f"Imported {built.obj.name} (fit error "
                              f"{built.obj.facedet3d.fit_error_iod * 100:.1f}% of eye distance)")
        for w in (result or {}).get("warnings", []):
            self.report({"WARNING"}, w[:1].upper() + w[1:].replace("(--face)", "(Import Photo's Face option)"))
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_import_photo,)
