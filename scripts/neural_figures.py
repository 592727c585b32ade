"""#18's pictures and input-view figures of the neural pass, made the way a user makes them: the bundled
photo reconstructed, lit by its own light (Photo Lighting), the person's renderer trained (the
backend's ``neural_train``), then for the photo's own expression and two presets, with that
expression's detail maps as displacement (neutral and two presets, as the issue asks, and the
photo's own smile, the input view): the plain Cycles render and the Cycles render with the
neural pass composited (addon/scene/neural_pass.py, the same code the Neural Pass operator runs).

    .venv-blender/bin/python scripts/neural_figures.py [--out out/neural_figures] [--size 768]

Writes the renders, ``metrics.json`` (face-pixel PSNR/SSIM of both against the photo, on the
photo's expression: the input view), ``timings.json`` and docs/neural_render.jpg (face crops:
rows plain / neural, columns the photo's expression, neutral, surprise, anger; the photo at the left).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import bpy

REPO = Path(__file__).resolve().parents[1]
BACKEND = REPO / ".venv-backend" / "bin" / "python"
EXPRESSIONS = ("photo", "neutral", "surprise", "anger")

METRICS = r"""
import json, sys
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity
from backend.core.image_io import load_rgb
photo_path, out, face_json, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
photo = load_rgb(photo_path)
s = size / photo.shape[1]
photo = np.asarray(Image.fromarray(photo).resize((size, size), Image.Resampling.LANCZOS)).astype(np.float64) / 255
l, t, r, b = (int(round(v * s)) for v in json.load(open(face_json))["detection"]["box"])
alpha = np.asarray(Image.open(f"{out}/neural_image_photo.png"))[..., 3] / 255.0
m = np.zeros(alpha.shape, bool)
m[t:b, l:r] = True
m &= alpha > 0.99  # the face tile's pixels, inside the detected face
res = {}
for mode in ("plain", "neural"):
    im = np.asarray(Image.open(f"{out}/{mode}_photo.png").convert("RGB")).astype(np.float64) / 255
    mse = float(((im[m] - photo[m]) ** 2).mean())
    ssim = structural_similarity(photo, im, channel_axis=2, data_range=1.0, full=True)[1].mean(-1)
    res[mode] = {"psnr_db": round(10 * np.log10(1 / mse), 2), "ssim": round(float(ssim[m].mean()), 4),
                 "face_pixels": int(m.sum())}
# the strip: face crops (twice the detection box), rows plain / neural, the photo at the left
w = int((r - l) * 1.6)
cx, cy = (l + r) // 2, (t + b) // 2 - int(0.08 * w)
box = (cx - w // 2, cy - w // 2, cx + w // 2, cy + w // 2)
tile = 384
def crop(path):
    return Image.open(path).convert("RGB").crop(box).resize((tile, tile), Image.Resampling.LANCZOS)
names = sys.argv[6].split(",")
sheet = Image.new("RGB", (tile * (len(names) + 1), tile * 2), (40, 40, 40))
sheet.paste(Image.fromarray((photo * 255).astype(np.uint8)).crop(box).resize((tile, tile), Image.Resampling.LANCZOS), (0, tile // 2))
for j, e in enumerate(names):
    sheet.paste(crop(f"{out}/plain_{e}.png"), (tile * (j + 1), 0))
    sheet.paste(crop(f"{out}/neural_{e}.png"), (tile * (j + 1), tile))
sheet.save(sys.argv[5], quality=92)
json.dump(res, open(f"{out}/metrics.json", "w"), indent=1)
print(json.dumps(res))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=str(REPO / "assets" / "astronaut.jpg"))
    ap.add_argument("--out", default=str(REPO / "out" / "neural_figures"))
    ap.add_argument("--size", type=int, default=768, help="render size (the photo is square)")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--figure", default=str(REPO / "docs" / "neural_render.jpg"))
    args = ap.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    job = out / "job"
    if not (job / "face.json").is_file():
        subprocess.run([str(BACKEND), "-m", "backend", "reconstruct", "--image", args.image, "--out", str(job)],
                       cwd=REPO, check=True)
    spec = importlib.util.spec_from_file_location("facedet3d_bootstrap", REPO / "facedet3d.py")
    boot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(boot)
    pkg = boot.load_package()
    pkg.register()
    addon, proto = pkg.addon, pkg.protocol
    from_json = proto._typed.from_json
    client = addon.link.session.get_client(str(BACKEND))
    timings = {}
    try:
        client.call(proto.methods.PHOTO_LIGHTING, proto.methods.PhotoLightingParams(job_dir=str(job)), timeout=3600)
        t0 = time.perf_counter()
        res = client.call(proto.methods.NEURAL_TRAIN, proto.methods.NeuralTrainParams(job_dir=str(job), steps=args.steps),
                          timeout=24 * 3600)
        timings["neural_train_s"] = round(time.perf_counter() - t0, 1)
        timings["neural_train_stats"] = res["stats"]
        rig = from_json(proto.scene.FaceRig, client.call(proto.methods.RIG, proto.methods.RigParams(), timeout=600))
        bpy.ops.wm.read_factory_settings(use_empty=True)
        built = addon.scene.builder.build_face(bpy.context, job, name="neural")
        obj, sc = built.obj, bpy.context.scene
        addon.scene.photo_light.apply(bpy.context, obj, job)
        sc.render.resolution_x = sc.render.resolution_y = args.size
        sc.render.resolution_percentage = 100
        sc.cycles.samples = args.samples
        for e in EXPRESSIONS:
            values = None if e == "photo" else rig.values(e)
            if values is not None:
                addon.scene.au_rig.apply_values(obj, values)
            info = proto.details.DetailInfo.from_dict(client.call(proto.methods.DETAILS, proto.methods.DetailsParams(
                job_dir=str(job), sizes=[1024, 4096], model="physical", controls=values), timeout=3600))
            addon.scene.displacement.attach(obj, job / info.largest(), vertex_range=info.vertex_range,
                                            material_name=info.material)
            addon.scene.neural_pass.plain(sc)
            sc.render.filepath = str(out / f"plain_{e}.png")
            t0 = time.perf_counter()
            bpy.ops.render.render(write_still=True)
            timings[f"cycles_{e}_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            written = addon.operators.neural_ops.make_frames(bpy.context, obj, job, [sc.frame_current], client)
            timings[f"neural_frame_{e}_s"] = round(time.perf_counter() - t0, 1)
            (out / f"neural_image_{e}.png").write_bytes(written[0].read_bytes())
            addon.scene.neural_pass.composite(sc, job)
            sc.render.filepath = str(out / f"neural_{e}.png")
            bpy.ops.render.render(write_still=True)
    finally:
        addon.link.session.shutdown()
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    subprocess.run([str(BACKEND), "-c", METRICS, args.image, str(out), str(job / "face.json"), str(args.size),
                    args.figure, ",".join(EXPRESSIONS)], cwd=REPO, check=True)
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
