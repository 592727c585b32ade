"""AU controls on the face object, driving the expression shape keys.

Each control (``obj.facedet3d.aus["AU12L"].value``) is saved in the .blend and keyframable.
Each driven shape key has a driver with the simple expression ``v`` (no Python), so animation
plays and renders without the backend, after reopening the file, and with Python-expression
auto-run off. The rig and the presets come from the backend (scene.json): nothing here decides
which shapes make an AU.
"""

from __future__ import annotations

import json

import bpy

from ...protocol.scene import RigControl


def install(obj, rig: list[RigControl], values: dict[str, float], presets: dict[str, dict[str, float]]) -> None:
    fd = obj.facedet3d
    fd.aus.clear()
    keys = obj.data.shape_keys
    for c in rig:
        item = fd.aus.add()
        item.name = c.key
        item.au = c.au
        item.side = c.side
        item.label = c.name
        item.value = float(values.get(c.key, 0.0))
        for shape in c.shapes:
            kb = keys.key_blocks.get(shape)
            if kb is None:
                raise KeyError(f"the rig names shape {shape!r}, which the mesh does not have")
            drive(kb, "value", obj, f'facedet3d.aus["{c.key}"].value')
    fd.presets_json = json.dumps(presets)


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


def apply_values(obj, values: dict[str, float]) -> None:
    for item in obj.facedet3d.aus:
        item.value = float(values.get(item.name, 0.0))


def keyframe(obj, frame: int | None = None) -> None:
    """Key every AU control at the frame (default: the current one)."""
    scene = bpy.context.scene
    f = scene.frame_current if frame is None else frame
    for i, _item in enumerate(obj.facedet3d.aus):
        obj.keyframe_insert(data_path=f"facedet3d.aus[{i}].value", frame=f, group="FaceDet3D AUs")
    # New keys do not re-run the animation at the current frame by themselves: without this the
    # evaluated face keeps the old curve's values until the frame changes.
    scene.frame_set(scene.frame_current)
