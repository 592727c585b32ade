"""Export a face through Blender's own glTF exporter, with its detail maps beside it.

glTF has no displacement, so the mesh goes out as the exporter writes it (UVs, materials,
the expression shape keys as morph targets, named) and the maps are copied into
``<name>_maps/`` with ``facedet3d_maps.json`` saying how to use them: unit (mm along the
normal), UV convention, which AU control drives which morph targets, the per-AU wrinkle packs
and their channels, the key maps with frames and AU values, and the AU keyframes. A game
engine or DCC can rebuild D(t) = B + Σ v_c W_c + Σ β_k C_k from that file alone.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import bpy

from ...protocol.details import UNIT, WrinkleRig, wrinkle_sidecar
from . import au_rig, displacement, wrinkle_mix

MAPS_JSON = "facedet3d_maps.json"


def _image_file(img, dest_dir: Path) -> str:
    """Copy (or write, when packed) an image's file into dest_dir; returns its file name."""
    name = Path(bpy.path.abspath(img.filepath)).name or f"{img.name}.exr"
    dest = dest_dir / name
    if img.packed_file is not None:
        dest.write_bytes(img.packed_file.data)
    else:
        src = Path(bpy.path.abspath(img.filepath))
        if not src.is_file():
            raise FileNotFoundError(f"the map {src} is missing: rebuild the details before exporting")
        shutil.copyfile(src, dest)
    return name


def _node_image(nt, name):
    node = nt.nodes.get(name) if nt else None
    return node.image if node is not None else None


def export(obj, path: str | os.PathLike) -> dict:
    """Write ``path`` (.glb or .gltf) with ``obj`` only, and its maps beside it; returns the
    maps description. The scene's selection and active object are restored."""
    path = Path(path)
    if path.suffix.lower() not in (".glb", ".gltf"):
        raise ValueError(f"'{path.name}': export to a .glb or .gltf file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = obj.facedet3d
    skin = next((m for m in obj.data.materials if m and m.node_tree and m.node_tree.nodes.get(displacement.IMAGE_NODE)),
                None)
    maps_dir = path.parent / f"{path.stem}_maps"
    info: dict = {"unit": UNIT, "convention": "displacement along the surface normal, 0 = the mesh, + outward",
                  "uv": "the mesh's TEXCOORD_0; the maps' top row is v = 1",
                  "formula": "D(t) = base + sum_c value_c(t) * pack[c] + sum_k weight_k(t) * key_k",
                  "key_weights": "weight_k is 1 at key k's frame and eases to 0 at the neighbouring keys' "
                                 "frames (held outside the keyed range); without keys all are 0",
                  "material": skin.name if skin else None, "base": None, "packs": [], "keys": [],
                  "au_controls": {}, "au_keyframes": {}}
    # The AU controls' morph targets and keyframes: what the drivers do, for other tools.
    driven = au_rig.control_shapes(obj)
    for item in fd.aus:
        info["au_controls"][item.name] = {"au": item.au, "side": item.side,
                                          "morph_targets": driven.get(item.name, [])}
    for k in wrinkle_mix.animation_keys(obj):
        info["au_keyframes"][str(k["frame"])] = k["values"]

    sel = [o for o in bpy.context.view_layer.objects if o.select_get()]
    active = bpy.context.view_layer.objects.active
    try:
        for o in sel:
            o.select_set(False)
        obj.select_set(True)
        bpy.context.view_layer.objects.active = obj
        bpy.ops.export_scene.gltf(filepath=str(path), use_selection=True, export_morph=True,
                                  export_morph_normal=False, export_apply=False, export_animations=False,
                                  export_extras=False, export_cameras=False, export_lights=False,
                                  export_format="GLB" if path.suffix.lower() == ".glb" else "GLTF_SEPARATE")
    finally:
        obj.select_set(False)
        for o in sel:
            o.select_set(True)
        bpy.context.view_layer.objects.active = active

    maps_dir.mkdir(exist_ok=True)
    base = _node_image(skin.node_tree, displacement.IMAGE_NODE) if skin else None
    if base is not None:
        info["base"] = _image_file(base, maps_dir)
    group = bpy.data.node_groups.get(f"{wrinkle_mix.SHADER_GROUP} {obj.name}") if fd.wrinkle_rig else None
    if group is not None:
        images = {Path(bpy.path.abspath(n.image.filepath)).name: n.image
                  for n in group.nodes if n.type == "TEX_IMAGE" and n.image is not None}
        for k in sorted(fd.wrinkle_keys, key=lambda k: k.frame):
            img = images.get(f"{k.name}.exr")
            if img is not None:
                info["keys"].append({"file": _image_file(img, maps_dir), "frame": k.frame,
                                     "values": json.loads(k.values_json or "{}")})
        job_dir = Path(bpy.path.abspath(fd.job_dir))
        side = job_dir / wrinkle_sidecar(fd.wrinkle_rig)
        packs = WrinkleRig.load(job_dir, fd.wrinkle_rig).packs if side.is_file() else []
        for p in packs:
            if p.file in images:
                info["packs"].append({"file": _image_file(images[p.file], maps_dir), "channels": p.controls})
    (maps_dir / MAPS_JSON).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info
