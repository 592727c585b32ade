"""AU animation in and out of the face: Live Link Face and OpenFace CSV (``protocol.au_curves``)
keyed onto the AU controls, and the controls' animation written as Live Link Face CSV.

ARKit shapes reach the controls through the rig the drivers encode (``au_rig.control_shapes``):
a control takes the mean of its shapes' ARKit values (most controls drive one shape; AU28 drives
both lip rolls, so two different roll values meet as their mean — the one loss of a round trip).
Written back, each shape gets its control's value and an ARKit column that the model splits by
side (BrowInnerUp, CheekPuff) the mean of the two sides. TongueOut has no shape here.
"""

from __future__ import annotations

import bpy

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
        obj.rotation_mode = "QUATERNION"  # keeps the base turn (model -> Blender) as a quaternion
        for t, q in zip(cap.times, cap.head_quaternion):
            obj.delta_rotation_quaternion = q
            obj.keyframe_insert("delta_rotation_quaternion", frame=start_frame + t * fps, group="FaceDet3D Head")
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
