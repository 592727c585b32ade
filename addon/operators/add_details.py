"""Add Details: detail maps for the face's current expression, wired as displacement."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty

from ...protocol.details import DetailInfo, detail_sizes
from ...protocol.job import FACE_JSON
from ...protocol import methods
from ...protocol.methods import DetailsParams, PhotoLightingParams
from ..link import jobs
from ..scene import displacement, photo_light, wrinkle_mix
from .backend_job import BackendJobMixin, detail_model_items


def face_object(context):
    obj = context.active_object
    fd = getattr(obj, "facedet3d", None) if obj else None
    return obj if fd is not None and fd.job_dir else None


def face_job_dir(obj) -> Path:
    """The face's job folder, or an InputError saying how to get it back."""
    job_dir = Path(bpy.path.abspath(obj.facedet3d.job_dir))
    if not (job_dir / FACE_JSON).is_file():
        raise jobs.InputError(f"The face's files are missing ({job_dir}). Re-import the photo, or "
                              "move the *_facedet3d folder back beside the .blend.")
    return job_dir


def chosen_face(op, context):
    """The active face a backend operator works on (its name kept on ``op`` for ``finish``), or an
    InputError saying how to get one."""
    obj = face_object(context)
    if obj is None:
        raise jobs.InputError("Select a face made by FaceDet3D's Import Photo first.")
    op._obj_name = obj.name
    return obj


def current_expression(context, obj) -> list[float]:
    """The expression as shown: evaluated shape-key values (after AU drivers and animation),
    in the model's order (the shape keys' own order)."""
    ev = obj.evaluated_get(context.evaluated_depsgraph_get())
    keys = ev.data.shape_keys.key_blocks if ev.data.shape_keys else []
    return [float(k.value) for k in keys[1:]]


class FACEDET3D_OT_add_details(BackendJobMixin, bpy.types.Operator):
    """Build detail maps (the person's own detail and expression wrinkles) for the face's
    current expression and attach them as displacement"""

    bl_idname = "facedet3d.add_details"
    bl_label = "Add Details"
    bl_options = {"REGISTER", "UNDO"}
    label_running = "FaceDet3D details"

    age: FloatProperty(name="Age", description="Age for wrinkle depth (0: estimate from the photo)",
                       default=0.0, min=0.0, max=110.0)
    seed: IntProperty(name="Seed", default=0, min=0)
    size: IntProperty(name="Map size", description="Largest map size (4096 for final renders)",
                      default=4096, min=256, max=8192)
    detail_model: EnumProperty(name="Model", items=detail_model_items,
                               description="What makes the maps (the backend's detail models)")

    @classmethod
    def poll(cls, context):
        return face_object(context) is not None

    def start(self, context):
        obj = chosen_face(self, context)
        job_dir = face_job_dir(obj)
        return "details", DetailsParams(job_dir=str(job_dir), expression=current_expression(context, obj),
                                        seed=self.seed, sizes=detail_sizes(self.size), model=self.detail_model,
                                        age=self.age if self.age > 0 else None)

    def finish(self, context, result):
        obj = bpy.data.objects[self._obj_name]
        info = DetailInfo.from_dict(result)
        wrinkle_mix.detach(obj)  # this map already holds the wrinkles of the current expression
        displacement.attach(obj, Path(info.job_dir) / info.largest(), vertex_range=info.vertex_range,
                            material_name=info.material)
        obj.facedet3d.detail_tag = info.tag
        obj.facedet3d.detail_model = info.model
        self.report({"INFO"}, f"Details for {obj.name}: {info.model} model, age {info.age_years:.0f}, "
                              f"RMS {info.stats['rms_mm']:.3f} mm")
        return {"FINISHED"}


class FACEDET3D_OT_photo_lighting(BackendJobMixin, bpy.types.Operator):
    """Light the face with the photo's own light: the backend separates the photo into the skin's
    albedo and its SH lighting (once per face); the skin takes the albedo, the scene a world made
    from the lighting, and the key light is left out of renders"""

    bl_idname = "facedet3d.photo_lighting"
    bl_label = "Photo Lighting"
    bl_options = {"REGISTER", "UNDO"}
    label_running = "FaceDet3D photo lighting"

    @classmethod
    def poll(cls, context):
        return face_object(context) is not None

    def start(self, context):
        obj = chosen_face(self, context)
        return methods.PHOTO_LIGHTING, PhotoLightingParams(job_dir=str(face_job_dir(obj)))

    def finish(self, context, result):
        obj = bpy.data.objects[self._obj_name]
        photo_light.apply(context, obj, Path(result["job_dir"]))
        st = result.get("stats", {})
        self.report({"INFO"}, f"{obj.name}: lit by the photo's light (albedo from "
                              f"{100 * st.get('face', {}).get('own_fraction', 0):.0f} % of the face tile's own texels, "
                              "the rest from its mirror image and the fill)")
        return {"FINISHED"}


class FACEDET3D_OT_studio_lighting(bpy.types.Operator):
    """Back to the studio lighting: the photo texture, the soft white world and the key light"""

    bl_idname = "facedet3d.studio_lighting"
    bl_label = "Studio Lighting"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = face_object(context)
        return obj is not None and obj.facedet3d.lighting == "PHOTO"

    def execute(self, context):
        obj = face_object(context)
        try:
            photo_light.studio(context, obj, face_job_dir(obj))
        except (jobs.InputError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_add_details, FACEDET3D_OT_photo_lighting, FACEDET3D_OT_studio_lighting)
