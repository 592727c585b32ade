"""docs/gallery.jpg: the bundled photo's face under several expressions, with their wrinkles.

Real renders: the demo's .blend, the backend's `details` method for each expression (by AUs),
the add-on's displacement wiring, Cycles. Run after scripts/demo.sh:

    .venv-blender/bin/python scripts/gallery.py out/demo/astronaut.blend docs/gallery.png [physical|deth]

The third argument picks the detail model (default physical; deth: the learned nets, which
must be installed).
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("facedet3d_bootstrap", ROOT / "facedet3d.py")
boot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(boot)
boot.load_package().register()
from docs_figures import look_from  # noqa: E402  (scripts/ is on sys.path when run as a script)
from facedet3d_ext.addon.link import session  # noqa: E402
from facedet3d_ext.addon.scene import displacement  # noqa: E402

# (label, AUs). EMFACS prototypes restricted to the AUs the default model has (no AU23/AU26:
# AU24 and AU27 stand in).
EXPRESSIONS = [
    ("neutral", {}),
    ("happy  AU6+12", {"AU6": 1.0, "AU12": 1.0}),
    ("surprise  AU1+2+5+27", {"AU1": 1.0, "AU2": 1.0, "AU5": 0.6, "AU27": 0.4}),
    ("anger  AU4+5+7+24", {"AU4": 1.0, "AU5": 0.4, "AU7": 0.8, "AU24": 0.6}),
    ("disgust  AU9+15+16", {"AU9": 1.0, "AU15": 0.6, "AU16": 0.4}),
]


def map_tile(exr: Path, size: int) -> np.ndarray:
    img = bpy.data.images.load(str(exr))
    img.colorspace_settings.name = "Non-Color"
    img.scale(size, size)
    px = np.empty(size * size * 4, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    g = np.clip(px.reshape(size, size, 4)[..., 0] / 0.5, -1, 1) * 0.5 + 0.5  # mid-grey = 0 mm
    return np.dstack([g, g, g, np.ones_like(g)])


def main(blend: str, out: str, model: str = "physical", size: int = 384, samples: int = 32) -> None:
    bpy.ops.wm.open_mainfile(filepath=blend)
    scene = bpy.context.scene
    scene.cycles.samples = samples
    scene.render.resolution_x = scene.render.resolution_y = size
    face = next(o for o in scene.objects if o.type == "MESH" and o.facedet3d.job_dir)
    job_dir = Path(bpy.path.abspath(face.facedet3d.job_dir))
    co = np.empty(len(face.data.vertices) * 3, np.float32)
    face.data.vertices.foreach_get("co", co)
    centre = Vector(co.reshape(-1, 3)[:9409].mean(0).tolist()) + Vector((0, 0.02, 0.01))
    cam = scene.camera
    cam.data.lens, cam.data.shift_x, cam.data.shift_y = 85.0, 0.0, 0.0
    look_from(cam, centre, 20.0, 8.0, 0.52)
    client = session.get_client()
    keys = face.data.shape_keys.key_blocks
    tmp = Path(tempfile.mkdtemp())
    tiles, maps = [], []
    for label, aus in EXPRESSIONS:
        expression = [0.0] * (len(keys) - 1)
        params = {"job_dir": str(job_dir), "model": model, **({"aus": aus} if aus else {"expression": expression})}
        res = client.call("details", params, timeout=1800)
        # Shapes outside the AU rig take the target's weights; the rig's AU controls (which
        # drive the rest) take the AU values, unsided AUs on both sides.
        for k, w in zip(keys[1:], res["expression"]):
            k.value = w
        for item in face.facedet3d.aus:
            item.value = float(aus.get(item.name, aus.get(f"AU{item.au}", 0.0)))
        displacement.attach(face, job_dir / res["files"]["4096"], vertex_range=res["vertex_range"],
                            material_name=res["material"])
        scene.render.filepath = str(tmp / f"{len(tiles)}.png")
        bpy.ops.render.render(write_still=True)
        img = bpy.data.images.load(scene.render.filepath)
        px = np.empty(size * size * 4, np.float32)
        img.pixels.foreach_get(px)
        tiles.append(px.reshape(size, size, 4))
        maps.append(map_tile(job_dir / res["files"]["1024"], size))
        print(f"{label}: {res['model']}, RMS {res['stats']['rms_mm']:.3f} mm", flush=True)
    session.shutdown()
    # Top row: renders. Bottom row: the detail map, +-0.5 mm as white/black (map rows are
    # top-first; Blender's pixel rows bottom-first, hence the stacking order).
    strip = np.concatenate([np.concatenate(maps, axis=1), np.concatenate(tiles, axis=1)], axis=0)
    img = bpy.data.images.new("gallery", strip.shape[1], strip.shape[0], alpha=True)
    img.pixels.foreach_set(strip.ravel())
    img.filepath_raw = out
    img.file_format = "PNG"
    img.save()
    print("labels:", " | ".join(label for label, _ in EXPRESSIONS))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]))
