"""Emotion presets and AU keyframes on a face object (no backend needed)."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ...protocol import au_curves, methods
from ...protocol.atomic import replacing
from ...protocol.capture import Capture
from ...protocol.methods import CaptureParams
from ..link import jobs
from ..scene import au_curves as scene_curves
from ..scene import au_rig
from .add_details import face_job_dir, face_object
from .backend_job import BackendJobMixin

EMOTIONS = [(k, k.capitalize(), f"EMFACS prototype for {k}") for k in
            ("happy", "sad", "surprise", "fear", "anger", "disgust", "contempt")]
EMOTIONS.append(("neutral", "Neutral", "Every AU at 0"))


def rigged(context):
    obj = context.active_object
    fd = getattr(obj, "facedet3d", None) if obj else None
    return obj if fd is not None and len(fd.aus) else None


class FACEDET3D_OT_set_emotion(bpy.types.Operator):
    """Set the face's Action Units to an emotion prototype (EMFACS), optionally keyframing them"""

    bl_idname = "facedet3d.set_emotion"
    bl_label = "Set Emotion"
    bl_options = {"REGISTER", "UNDO"}

    emotion: EnumProperty(name="Emotion", items=EMOTIONS, default="happy")
    keyframe: BoolProperty(name="Keyframe", description="Also key every AU at the current frame",
                           default=False)

    @classmethod
    def poll(cls, context):
        return rigged(context) is not None

    def execute(self, context):
        obj = rigged(context)
        table = au_rig.presets(obj)
        if self.emotion != "neutral" and self.emotion not in table:
            self.report({"ERROR"}, f"This face has no '{self.emotion}' preset; re-import it with this version.")
            return {"CANCELLED"}
        au_rig.apply_values(obj, table.get(self.emotion, {}))
        if self.keyframe:
            au_rig.keyframe(obj)
        self.report({"INFO"}, f"{obj.name}: {self.emotion}" + (" (keyframed)" if self.keyframe else ""))
        return {"FINISHED"}


class FACEDET3D_OT_keyframe_aus(bpy.types.Operator):
    """Insert a keyframe on every Action Unit of the face at the current frame"""

    bl_idname = "facedet3d.keyframe_aus"
    bl_label = "Keyframe AUs"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return rigged(context) is not None

    def execute(self, context):
        au_rig.keyframe(rigged(context))
        return {"FINISHED"}


class _AUCurveFile:
    """A CSV of AU curves for the active rigged face (import and export share this)."""

    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return rigged(context) is not None


class FACEDET3D_OT_import_au_curves(_AUCurveFile, bpy.types.Operator, ImportHelper):
    """Key the face's AU controls from a capture: a Live Link Face CSV (ARKit blendshapes) or an
    OpenFace 2.x CSV (AU intensities), one key per scene frame from the current one"""

    bl_idname = "facedet3d.import_au_curves"
    bl_label = "Import AU Curves (CSV)"
    bl_options = {"REGISTER", "UNDO"}

    head_rotation: BoolProperty(name="Head rotation", default=True,
                                description="Also key the head's turn from a Live Link Face take (HeadYaw, HeadPitch, "
                                            "HeadRoll) on the face object; the camera stays")

    def execute(self, context):
        obj = rigged(context)
        scene = context.scene
        fps = scene.render.fps / scene.render.fps_base
        try:
            text = Path(self.filepath).read_text(encoding="utf-8-sig")
            what, curves = au_curves.read_curve_file(text, fps, scene.frame_current)
        except (OSError, UnicodeDecodeError, au_curves.CurveFileError) as exc:
            self.report({"ERROR"}, f"{Path(self.filepath).name}: {exc}")
            return {"CANCELLED"}
        keyed, skipped = scene_curves.key_curve_file(obj, what, curves, self.head_rotation)
        turned = " and the head's turn" if curves.head and self.head_rotation else ""
        note = f"; left out: {'; '.join(skipped)}" if skipped else ""
        self.report({"INFO"}, f"{what}: {len(curves.frames)} frames keyed ({curves.frames[0]}–{curves.frames[-1]}) on "
                              f"{keyed} AU controls{turned}{note}")
        return {"FINISHED"}


class FACEDET3D_OT_animate_from_video(BackendJobMixin, bpy.types.Operator, ImportHelper):
    """Track the face through a video and key its AU controls from it (the face's identity held
    fixed, the curves smoothed and reduced to keys); wrinkles follow as they do for any keys"""

    bl_idname = "facedet3d.animate_from_video"
    bl_label = "Animate from Video"
    bl_options = {"REGISTER", "UNDO"}
    label_running = "FaceDet3D capture"

    filter_glob: StringProperty(default="*.mp4;*.mov;*.mkv;*.avi;*.webm;*.m4v", options={"HIDDEN"})
    tolerance: FloatProperty(name="Key tolerance", default=0.02, min=0.0, max=0.5,
                             description="Keys are dropped while the curve stays within this of their straight "
                                         "lines (0: a key on every video frame)")
    smoothing: BoolProperty(name="Smooth", default=True,
                            description="Take the landmark jitter out (One Euro filter, forwards and backwards)")
    head_rotation: BoolProperty(name="Head rotation", default=False,
                                description="Also key the head's turn (the face object turns about its origin; "
                                            "the camera stays)")

    @classmethod
    def poll(cls, context):
        return rigged(context) is not None and face_object(context) is not None

    def start(self, context):
        obj = rigged(context)
        if obj is None:
            raise jobs.InputError("Select a face made by FaceDet3D's Import Photo first.")
        if not Path(self.filepath).is_file():
            raise jobs.InputError(f"No video at {self.filepath}: choose a clip (MP4, MOV, MKV, AVI).")
        self._obj_name = obj.name
        self._start = context.scene.frame_current
        return methods.CAPTURE, CaptureParams(job_dir=str(face_job_dir(obj)), video=str(Path(self.filepath).resolve()),
                                              tolerance=self.tolerance, smoothing=self.smoothing)

    def finish(self, context, result):
        obj = bpy.data.objects[self._obj_name]
        cap = Capture.load(result["job_dir"], result["name"])
        first, last = scene_curves.key_capture(obj, cap, self._start, head=self.head_rotation)
        lost = len(cap.lost)
        note = f"; {lost} frames without a face were interpolated" if lost else ""
        for w in result.get("warnings", []):
            self.report({"WARNING"}, w)
        self.report({"INFO"}, f"{Path(cap.video).name}: {len(cap.times)} frames -> frames {first}-{last}, "
                              f"{cap.stats.get('keys', 0)} keys{note}")
        return {"FINISHED"}


class FACEDET3D_OT_export_au_curves(_AUCurveFile, bpy.types.Operator, ExportHelper):
    """Write the face's AU animation (the scene's frame range) as a Live Link Face CSV, with the
    head's turn when it is animated"""

    bl_idname = "facedet3d.export_au_curves"
    bl_label = "Export AU Curves (Live Link Face CSV)"

    def execute(self, context):
        obj, scene = rigged(context), context.scene
        frames = list(range(scene.frame_start, scene.frame_end + 1))
        text = au_curves.write_live_link_face(frames, scene_curves.arkit_from_animation(obj, frames),
                                              scene.render.fps / scene.render.fps_base,
                                              head=scene_curves.head_from_animation(obj, frames))
        path = Path(self.filepath)
        try:
            with replacing(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.report({"ERROR"}, f"Could not write {path} ({exc.strerror or exc}); choose another folder.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {len(frames)} frames to {path.name}")
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_set_emotion, FACEDET3D_OT_keyframe_aus, FACEDET3D_OT_import_au_curves,
           FACEDET3D_OT_export_au_curves, FACEDET3D_OT_animate_from_video)
