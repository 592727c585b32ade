"""Evaluate and render frames of a .blend as a plain Blender does: what a render-farm worker or a
colleague without the FaceDet3D add-on gets from our files.

    .venv-blender/bin/python scripts/blend_frames.py FILE.blend OUT_DIR --frames 1,3,5 [--render 64]
    blender -b --python scripts/blend_frames.py -- FILE.blend OUT_DIR --frames 1,3,5

Writes OUT_DIR/vertices_<frame>.npy (the evaluated mesh of every object with shape keys, world
space, objects in name order), OUT_DIR/frame_<frame>.png with --render N (N pixels wide, 2
samples, a fixed seed and thread count, no denoiser: the same file renders the same pixels) or
--render-as-is (the file's own render settings, as a stock `blender -b` render job) and
OUT_DIR/report.json (whether the add-on was registered; every driver that does not evaluate).
``--with-addon`` registers the add-on of this checkout first, to compare against.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bpy
import numpy as np


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("blend")
    p.add_argument("out")
    p.add_argument("--frames", default="1", help="comma-separated frame numbers")
    p.add_argument("--render", type=int, default=0, help="also render each frame, this many pixels wide")
    p.add_argument("--render-as-is", action="store_true",
                   help="also render each frame with the file's own settings, as `blender -b FILE -o OUT -f N` "
                        "does (a stock farm job such as Flamenco's Simple Blender Render)")
    p.add_argument("--with-addon", action="store_true", help="register this checkout's add-on first")
    return p.parse_args(argv)


def broken_drivers() -> list[str]:
    """Every driver in the file that does not evaluate (its owner and path)."""
    owners = list(bpy.data.objects) + list(bpy.data.shape_keys) + list(bpy.data.materials) \
        + list(bpy.data.node_groups)
    bad = []
    for idb in owners:
        ad = getattr(idb, "animation_data", None)
        trees = [idb.node_tree] if getattr(idb, "node_tree", None) else []
        for a in [ad] + [t.animation_data for t in trees]:
            for fc in (a.drivers if a else []):
                if not (fc.is_valid and fc.driver.is_valid):
                    bad.append(f"{idb.name}: {fc.data_path}")
    return bad


def evaluated_vertices() -> np.ndarray:
    dg = bpy.context.evaluated_depsgraph_get()
    parts = []
    for obj in sorted((o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys), key=lambda o: o.name):
        ev = obj.evaluated_get(dg)
        me = ev.to_mesh()
        co = np.empty(len(me.vertices) * 3, np.float32)
        me.vertices.foreach_get("co", co)
        m = np.array(ev.matrix_world, np.float64)
        ev.to_mesh_clear()
        co = co.reshape(-1, 3).astype(np.float64)
        parts.append((co @ m[:3, :3].T + m[:3, 3]).astype(np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.float32)


def main(argv) -> int:
    a = _args(argv)
    if a.with_addon:
        root = Path(__file__).resolve().parents[1]
        sys.path.insert(0, str(root))
        import facedet3d

        facedet3d.load_package().register()
    bpy.ops.wm.open_mainfile(filepath=str(Path(a.blend).resolve()))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    scene = bpy.context.scene
    frames = [int(f) for f in a.frames.split(",") if f.strip()]
    if a.render:
        r = scene.render
        r.resolution_y = max(1, round(a.render * r.resolution_y / r.resolution_x))
        r.resolution_x, r.resolution_percentage = a.render, 100
        r.threads_mode, r.threads = "FIXED", 2
        r.image_settings.file_format = "PNG"
        if r.engine == "CYCLES":
            scene.cycles.samples = 2
            scene.cycles.seed, scene.cycles.use_animated_seed = 0, False
            scene.cycles.use_denoising = False
    for f in frames:
        scene.frame_set(f)
        np.save(out / f"vertices_{f}.npy", evaluated_vertices())
        if a.render or a.render_as_is:
            scene.render.filepath = str(out / f"frame_{f}.png")
            bpy.ops.render.render(write_still=True)
    report = {"addon_registered": hasattr(bpy.types.Object, "facedet3d"), "frames": frames,
              "broken_drivers": broken_drivers()}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]))
