"""AU animation in and out of the face: Live Link Face and OpenFace CSV (``protocol.au_curves``)
keyed onto the AU controls, and the controls' animation written as Live Link Face CSV.

ARKit shapes reach the controls through the rig the drivers encode (``au_rig.control_shapes``):
a control takes the mean of its shapes' ARKit values (most controls drive one shape; AU28 drives
both lip rolls, so two different roll values meet as their mean — the one loss of a round trip).
Written back, each shape gets its control's value and an ARKit column that the model splits by
side (BrowInnerUp, CheekPuff) the mean of the two sides. TongueOut has no shape here.
"""

from __future__ import annotations

import math

import bpy
from mathutils import Euler, Quaternion

from ...protocol import au_curves
from . import au_rig, wrinkle_mix


def _shape_columns() -> dict[str, str]:
    """Shape name -> ARKit column (sided shapes of a bare ARKit name map to it too)."""
    out = {}
    for name in au_curves.ARKIT:
        shape = au_curves.arkit_to_shape(name)
        out[shape] = name
        if not shape.endswith(("_L", "_R")):
            out[shape + "_L"] = out[shape + "_R"] = name
    return out


def controls_from_arkit(obj, curves: au_curves.Curves) -> tuple[dict[str, list[float]], list[str]]:
    """Per control, its value at each of ``curves.frames``; and the controls no column feeds."""
    cols = _shape_columns()
    out, unfed = {}, []
    for control, shapes in au_rig.control_shapes(obj).items():
        fed = [cols[s] for s in shapes if s in cols and cols[s] in curves.values]
        if not fed:
            unfed.append(control)
            continue
        out[control] = [sum(curves.values[c][i] for c in fed) / len(fed) for i in range(len(curves.frames))]
    return out, unfed


def controls_from_aus(obj, curves: au_curves.Curves) -> tuple[dict[str, list[float]], list[str]]:
    """OpenFace AU intensities -> every control of that AU (both sides); AUs the rig lacks."""
    by_au: dict[int, list[str]] = {}
    for item in obj.facedet3d.aus:
        by_au.setdefault(item.au, []).append(item.name)
    out, missing = {}, []
    for au, vals in curves.values.items():
        n = int(au[2:])
        if n not in by_au:
            missing.append(au)
        for control in by_au.get(n, []):
            out[control] = vals
    return out, missing


def key_curves(obj, frames: list[int], per_control: dict[str, list[float]]) -> None:
    """Replace the AU controls' animation with a key per frame (controls not given: 0)."""
    scene = bpy.context.scene
    au_rig.apply_values(obj, {k: v[0] for k, v in per_control.items()})
    au_rig.keyframe(obj, frames[0])  # makes every control's F-curve in the AU group
    curves = wrinkle_mix._au_fcurves(obj)
    for item in obj.facedet3d.aus:
        fc = curves[item.name]
        vals = per_control.get(item.name, [0.0] * len(frames))
        fc.keyframe_points.clear()
        fc.keyframe_points.add(len(frames))
        co = [x for f, v in zip(frames, vals) for x in (float(f), float(v))]
        fc.keyframe_points.foreach_set("co", co)
        fc.update()  # handles as keyframe_insert makes them
    scene.frame_start, scene.frame_end = frames[0], frames[-1]
    scene.frame_set(scene.frame_current)


def key_capture(obj, cap, start_frame: int, head: bool = False) -> tuple[int, int]:
    """Replace the AU controls' animation with a video capture's reduced keys (protocol.capture),
    placed at the scene's frame rate from ``start_frame`` (keys between frames keep their
    sub-frame time) with linear interpolation, which the capture's key tolerance is measured
    against. ``head``: the head's turn is keyed too, a key per video frame on the face object's
    delta rotation (the whole head and neck turn about the model's origin; the camera stays).
    Returns the scene frame range the clip covers."""
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    first = {k: v[0][1] for k, v in cap.keys.items() if v}
    au_rig.apply_values(obj, first)
    au_rig.keyframe(obj, start_frame)  # makes every control's F-curve in the AU group
    curves = wrinkle_mix._au_fcurves(obj)
    for item in obj.facedet3d.aus:
        fc = curves[item.name]
        keys = cap.keys.get(item.name) or [[0.0, 0.0]]
        fc.keyframe_points.clear()
        fc.keyframe_points.add(len(keys))
        fc.keyframe_points.foreach_set("co", [x for t, v in keys for x in (start_frame + t * fps, v)])
        fc.keyframe_points.foreach_set("interpolation", [bpy.types.Keyframe.bl_rna.properties["interpolation"]
                                                         .enum_items["LINEAR"].value] * len(keys))
        fc.update()
    if head and cap.head_quaternion:
        key_head(obj, [start_frame + t * fps for t in cap.times], cap.head_quaternion)
    end = start_frame + round(cap.times[-1] * fps)
    scene.frame_start, scene.frame_end = start_frame, max(end, start_frame)
    scene.frame_set(scene.frame_current)
    return start_frame, end


def arkit_from_animation(obj, frames: list[int]) -> dict[str, list[float]]:
    """The ARKit values of the face's AU animation at ``frames``."""
    curves = wrinkle_mix._au_fcurves(obj)
    shapes = au_rig.control_shapes(obj)
    per_shape: dict[str, list[float]] = {}
    for item in obj.facedet3d.aus:
        fc = curves.get(item.name)
        vals = [float(fc.evaluate(f)) if fc else au_rig.value(obj, item.name) for f in frames]
        for s in shapes.get(item.name, []):
            per_shape[s] = vals
    out = {}
    for shape, col in _shape_columns().items():
        if shape in per_shape:
            out.setdefault(col, []).append(per_shape[shape])
    return {col: [sum(v) / len(lists) for v in zip(*lists)] for col, lists in out.items()}


HEAD_GROUP = "FaceDet3D Head"
# Euler angles (x, y, z) of Blender's order YXZ (R = Rz Rx Ry: roll first, yaw last) from the
# head's (yaw, pitch, roll): the face looks down -Y and its left is +X (MODEL_TO_BLENDER), so yaw +
# (towards the subject's left) is +Z, pitch + (chin up) is -X, roll + (to the right shoulder) is -Y.
HEAD_EULER_ORDER = "YXZ"


def head_quaternion(yaw: float, pitch: float, roll: float) -> Quaternion:
    """The head's turn (degrees, ``protocol.au_curves`` conventions) as the face object's delta
    rotation in Blender's world frame."""
    return Euler((math.radians(-pitch), math.radians(-roll), math.radians(yaw)), HEAD_EULER_ORDER).to_quaternion()


def head_angles(q) -> tuple[float, float, float]:
    """Inverse of :func:`head_quaternion`: (yaw, pitch, roll) in degrees."""
    e = Quaternion(q).to_euler(HEAD_EULER_ORDER)
    return math.degrees(e.z), -math.degrees(e.x), -math.degrees(e.y)


def key_head(obj, frames: list[float], quats) -> None:
    """Replace the face object's head-turn animation with a key per frame (delta rotation, so the
    base turn the builder set stays; the whole head and neck turn about the model's origin)."""
    obj.rotation_mode = "QUATERNION"  # keeps the base turn (model -> Blender) as a quaternion
    bag = wrinkle_mix._channelbag(obj)
    if bag is not None:
        for fc in [fc for fc in bag.fcurves if fc.data_path == "delta_rotation_quaternion"]:
            bag.fcurves.remove(fc)
    quats = [tuple(q) for q in quats]
    if not quats:
        return
    obj.delta_rotation_quaternion = quats[0]
    obj.keyframe_insert("delta_rotation_quaternion", frame=frames[0], group=HEAD_GROUP)  # makes the 4 curves
    bag = wrinkle_mix._channelbag(obj)
    for fc in (fc for fc in bag.fcurves if fc.data_path == "delta_rotation_quaternion"):
        # all keys at once, as key_curves does: one keyframe_insert per frame costs ~0.2 ms a key
        fc.keyframe_points.clear()
        fc.keyframe_points.add(len(frames))
        fc.keyframe_points.foreach_set("co", [x for f, q in zip(frames, quats) for x in (float(f), q[fc.array_index])])
        fc.update()  # handles as keyframe_insert makes them


def head_from_animation(obj, frames: list[int]) -> dict[str, list[float]] | None:
    """The head's turn at ``frames`` (degrees), or None when the face's head is not animated."""
    bag = wrinkle_mix._channelbag(obj)
    fcs = {fc.array_index: fc for fc in (bag.fcurves if bag else []) if fc.data_path == "delta_rotation_quaternion"}
    if not fcs:
        return None
    rest = obj.delta_rotation_quaternion
    out: dict[str, list[float]] = {"yaw": [], "pitch": [], "roll": []}
    for f in frames:
        q = [fcs[i].evaluate(f) if i in fcs else rest[i] for i in range(4)]
        for k, v in zip(("yaw", "pitch", "roll"), head_angles(q)):
            out[k].append(v)
    return out


def key_curve_file(obj, kind: str, curves: au_curves.Curves, head: bool) -> tuple[int, list[str]]:
    """Key the face from a read curve file (``au_curves.read_curve_file``): the AU controls, and
    with ``head`` a Live Link Face take's head turn. Returns the number of controls keyed from the
    file and what was left out, in words (the curves' own notes, the controls no column feeds)."""
    notes = list(curves.skipped)
    if kind == au_curves.LIVE_LINK_FACE:
        per_control, unfed = controls_from_arkit(obj, curves)
        if unfed:
            notes.append(f"{', '.join(unfed)}: no ARKit column (keyed at 0)")
    else:
        per_control, unfed = controls_from_aus(obj, curves)
        if unfed:
            notes.append(f"{', '.join(unfed)}: not on this face's rig")
    key_curves(obj, curves.frames, per_control)
    if curves.head:
        if head:
            key_head(obj, [float(f) for f in curves.frames],
                     [head_quaternion(*v) for v in zip(curves.head["yaw"], curves.head["pitch"], curves.head["roll"])])
        else:
            notes.append("the head turn (Head rotation is off)")
    return len(per_control), notes
