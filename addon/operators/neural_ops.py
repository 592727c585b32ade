"""Neural Pass: the backend trains the person's neural renderer (once per photo), then for the current
frame (or every frame of the scene's range) Blender renders the rasters, the backend the neural
image, and the compositor lays it on the Cycles render (addon/scene/neural_pass.py). Plain Render
turns the compositor off again."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty

from ...protocol import methods
from ...protocol.methods import NeuralFrameParams, NeuralTrainParams
from ..link import jobs
from ..scene import neural_pass
from .add_details import chosen_face, face_job_dir, face_object
from .backend_job import BackendJobMixin


def make_frames(context, obj, job_dir: Path, frames: list[int], client, log=print) -> list[Path]:
    """Rasters and neural image of each frame; the scene's frame is put back. Each image replaces
    its file only when complete (the backend writes it atomically)."""
    scene = context.scene
    current = scene.frame_current
    written = []
    try:
        for i, f in enumerate(frames):
            t0 = time.perf_counter()
            # the frame set on the user's scene too: drivers and animation are evaluated there
            # (setting it on the raster scene alone left every frame at the current one's expression)
            scene.frame_set(f)
            exr = neural_pass.render_rasters(context, obj, f, neural_pass.raster_path(job_dir, f))
            res = client.call(methods.NEURAL_FRAME, NeuralFrameParams(
                job_dir=str(job_dir), rasters=str(exr), out=str(neural_pass.frame_image(job_dir, f))), timeout=600)
            exr.unlink(missing_ok=True)  # the rasters are remade from the scene whenever needed
            written.append(Path(res["image"]))
            log(f"neural frame {f} ({i + 1} of {len(frames)}): {time.perf_counter() - t0:.1f} s")
    finally:
        scene.frame_set(current)
    return written


class FACEDET3D_OT_neural_pass(BackendJobMixin, bpy.types.Operator):
    """Render the face with its neural renderer (FaceDet3D's rendering network, trained on the photo
    the first time: a few minutes) and composite it over the Cycles render of the current frame,
    or of every frame. Run it again after changing the expression, the camera or the details"""

    bl_idname = "facedet3d.neural_pass"
    bl_label = "Neural Pass"
    bl_options = {"REGISTER"}
    label_running = "FaceDet3D neural renderer"

    all_frames: BoolProperty(name="All Frames", default=False,
                             description="Neural images for every frame of the scene's range (an animation), not "
                                         "only the current frame")

    steps: IntProperty(name="Training Steps", default=600, min=1, max=100_000,
                       description="Steps of the renderer's training on the photo (done once per photo: about 3 "
                                   "minutes for 600 on a laptop CPU)")

    @classmethod
    def poll(cls, context):
        return face_object(context) is not None

    def start(self, context):
        obj = chosen_face(self, context)
        if context.scene.camera is None:
            raise jobs.InputError("The scene has no camera: the neural pass renders through the scene's camera.")
        ng = context.scene.compositing_node_group
        if ng is not None and not neural_pass._ours(ng):
            raise jobs.InputError(f"The scene composites through its own node group {ng.name!r}; remove it from the "
                                  "scene's compositor first (the neural pass does not replace it).")
        return methods.NEURAL_TRAIN, NeuralTrainParams(job_dir=str(face_job_dir(obj)), steps=self.steps)

    def finish(self, context, result):
        obj = bpy.data.objects[self._obj_name]
        job_dir = Path(result["job_dir"])
        scene = context.scene
        frames = list(range(scene.frame_start, scene.frame_end + 1)) if self.all_frames else [scene.frame_current]
        try:
            make_frames(context, obj, job_dir, frames, self.client(context))
        except Exception as exc:  # the compositor is not touched: the scene renders as before
            self.report({"ERROR"}, f"Neural Pass failed: {jobs.describe(exc)}")
            return {"CANCELLED"}
        neural_pass.composite(scene, job_dir)
        obj.facedet3d.neural = True
        trained = "trained on the photo" if result.get("trained") else "already trained"
        self.report({"INFO"}, f"{obj.name}: neural pass for {len(frames)} frame(s) ({trained}); render (F12) to see it")
        return {"FINISHED"}


class FACEDET3D_OT_plain_render(bpy.types.Operator):
    """Back to the plain Cycles render: the neural compositor off (its images stay, to turn it on again)"""

    bl_idname = "facedet3d.plain_render"
    bl_label = "Plain Render"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = face_object(context)
        return obj is not None and obj.facedet3d.neural

    def execute(self, context):
        obj = face_object(context)
        neural_pass.plain(context.scene)
        obj.facedet3d.neural = False
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_neural_pass, FACEDET3D_OT_plain_render)
