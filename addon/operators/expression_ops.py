"""Emotion presets and AU keyframes on a face object (no backend needed)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty

from ..scene import au_rig

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


CLASSES = (FACEDET3D_OT_set_emotion, FACEDET3D_OT_keyframe_aus)
