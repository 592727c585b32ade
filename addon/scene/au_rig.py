"""AU controls on the face object, driving the expression shape keys.

Each control's value is a plain custom property of the face object (``obj["AU12L"]``, 0–1),
saved in the .blend and keyframable. Plain, not a property the add-on registers: a Blender
without the add-on (a farm worker, a colleague) evaluates drivers and F-curves on custom
properties, while a registered property's RNA path does not resolve there and every driver
reading it fails silently (the face would not move). The add-on keeps only the controls'
description in ``obj.facedet3d.aus`` (AU number, side, label) and draws the custom properties
as its sliders. Each driven shape key has a driver with the simple expression ``v`` (no
Python), so animation plays and renders without the backend, after reopening the file, and
with Python-expression auto-run off. The rig and the presets come from the backend
(scene.json): nothing here decides which shapes make an AU.
"""

from __future__ import annotations

import json

import bpy

from ...protocol.scene import RigControl


def path(key: str) -> str:
    """The data path (on the face object) of control or weight ``key``'s value."""
    return f'["{key}"]'


def key_of(data_path: str) -> str | None:
    """The inverse of :func:`path`: the property a data path names, None for other paths."""
    if data_path.startswith('["') and data_path.endswith('"]'):
        return data_path[2:-2]
    return None


def add_value(obj, key: str, value: float, description: str) -> None:
    """A 0–1 custom property on ``obj`` that animators see as a slider (also without the add-on)."""
    obj[key] = float(value)
    obj.id_properties_ui(key).update(min=0.0, max=1.0, soft_min=0.0, soft_max=1.0, default=0.0,
                                     subtype="FACTOR", description=description)


def remove_value(obj, key: str) -> None:
    if key in obj.keys():
        del obj[key]


def value(obj, key: str) -> float:
    return float(obj.get(key, 0.0))


def install(obj, rig: list[RigControl], values: dict[str, float], presets: dict[str, dict[str, float]]) -> None:
    fd = obj.facedet3d
    for item in fd.aus:  # an earlier rig's controls
        remove_value(obj, item.name)
    fd.aus.clear()
    keys = obj.data.shape_keys
    for c in rig:
        item = fd.aus.add()
        item.name = c.key
        item.au = c.au
        item.side = c.side
        item.label = c.name
        add_value(obj, c.key, values.get(c.key, 0.0),
                  f"AU{c.au} {c.name}{f' ({c.side})' if c.side else ''}: FACS intensity, 0 (absent) to 1 (maximum, E)")
        for shape in c.shapes:
            kb = keys.key_blocks.get(shape)
            if kb is None:
                raise KeyError(f"the rig names shape {shape!r}, which the mesh does not have")
            drive(kb, "value", obj, path(c.key))
    fd.presets_json = json.dumps(presets)
    changed(obj)


def drive(owner, path: str, obj, target_path: str) -> None:
    """``owner.path`` = ``obj.target_path`` through a simple-expression driver ``v``."""
    drv = owner.driver_add(path).driver
    drv.type = "SCRIPTED"
    for v in list(drv.variables):
        drv.variables.remove(v)
    var = drv.variables.new()
    var.name = "v"
    var.type = "SINGLE_PROP"
    var.targets[0].id_type = "OBJECT"
    var.targets[0].id = obj
    var.targets[0].data_path = target_path
    drv.expression = "v"


def presets(obj) -> dict[str, dict[str, float]]:
    return json.loads(obj.facedet3d.presets_json or "{}")


def control_shapes(obj) -> dict[str, list[str]]:
    """AU control -> the shape keys its drivers move (read from the drivers: what the file does)."""
    driven: dict[str, list[str]] = {}
    ad = obj.data.shape_keys.animation_data if obj.data.shape_keys else None
    for fc in (ad.drivers if ad else []):
        if fc.data_path.startswith('key_blocks["') and fc.driver.variables:
            control = key_of(fc.driver.variables[0].targets[0].data_path)  # ["AU12L"]
            driven.setdefault(control, []).append(fc.data_path.split('"')[1])
    return driven


def values(obj) -> dict[str, float]:
    """Every control's current value."""
    return {item.name: value(obj, item.name) for item in obj.facedet3d.aus}


def changed(obj) -> None:
    """A custom property set from Python does not re-run the drivers that read it (a slider in
    the UI does): tag the face so the viewport and renders follow at once. Frame changes need
    nothing: they re-evaluate drivers."""
    obj.update_tag()
    obj.data.update_tag()
    if obj.data.shape_keys is not None:
        obj.data.shape_keys.update_tag()


def apply_values(obj, values: dict[str, float]) -> None:
    """Set the controls (those not named to 0)."""
    for item in obj.facedet3d.aus:
        obj[item.name] = float(values.get(item.name, 0.0))
    changed(obj)


def set_values(obj, values: dict[str, float]) -> None:
    """Set the named controls, leaving the others as they are."""
    names = {item.name for item in obj.facedet3d.aus}
    unknown = sorted(set(values) - names)
    if unknown:
        raise KeyError(f"no AU control {', '.join(unknown)} on {obj.name}")
    for k, v in values.items():
        obj[k] = float(v)
    changed(obj)


def keyframe(obj, frame: int | None = None) -> None:
    """Key every AU control at the frame (default: the current one)."""
    scene = bpy.context.scene
    f = scene.frame_current if frame is None else frame
    for item in obj.facedet3d.aus:
        obj.keyframe_insert(data_path=path(item.name), frame=f, group="FaceDet3D AUs")
    # New keys do not re-run the animation at the current frame by themselves: without this the
    # evaluated face keeps the old curve's values until the frame changes.
    scene.frame_set(scene.frame_current)
