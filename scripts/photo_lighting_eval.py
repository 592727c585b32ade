"""#18's first measurement: the Cycles render through the photo's camera against the photo, on the
face's pixels — the photo texture under the studio world and key light, against the albedo under
the photo's own lighting (backend ``photo_lighting``).

    .venv-blender/bin/python scripts/photo_lighting_eval.py --image assets/astronaut.jpg --out out/photo_lighting

Reconstructs the photo (backend), makes the photo lighting files, renders both with Cycles
(film transparent: the head's alpha), then has the backend environment compute PSNR and SSIM
(scikit-image) over the face's pixels: the head's alpha inside the detected face box. Writes the
renders, a side-by-side picture and ``metrics.json`` into --out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import bpy

REPO = Path(__file__).resolve().parents[1]
BACKEND = REPO / ".venv-backend" / "bin" / "python"

METRICS = r"""
import json, sys
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity
from backend.core.image_io import load_rgb
out = sys.argv[2]
photo = load_rgb(sys.argv[1]).astype(np.float64) / 255
face = json.load(open(sys.argv[3]))
l, t, r, b = (int(round(v)) for v in face["detection"]["box"])
res, tiles = {}, [Image.fromarray((photo * 255).astype(np.uint8))]
for mode in ("studio", "photo"):
    im = np.asarray(Image.open(f"{out}/{mode}.png")).astype(np.float64) / 255
    rgb, alpha = im[..., :3], im[..., 3]
    m = np.zeros(alpha.shape, bool)
    m[t:b, l:r] = True
    m &= alpha > 0.99
    mse = float(((rgb[m] - photo[m]) ** 2).mean())
    ssim = structural_similarity(photo, rgb, channel_axis=2, data_range=1.0, full=True)[1].mean(-1)
    res[mode] = {"psnr_db": round(10 * np.log10(1 / mse), 2), "ssim": round(float(ssim[m].mean()), 4),
                 "face_pixels": int(m.sum())}
    bg = Image.new("RGB", alpha.shape[::-1], (46, 46, 46))
    bg.paste(Image.fromarray((im * 255).astype(np.uint8)), (0, 0), Image.fromarray((alpha * 255).astype(np.uint8)))
    tiles.append(bg)
w = (r - l) * 2
cx, cy = (l + r) // 2, (t + b) // 2
box = (max(cx - w // 2, 0), max(cy - w // 2, 0), cx + w // 2, cy + w // 2)
crops = [im.crop(box) for im in tiles]
side = Image.new("RGB", (sum(c.size[0] for c in crops), crops[0].size[1]))
x = 0
for c in crops:
    side.paste(c, (x, 0)); x += c.size[0]
side.save(f"{out}/side_by_side.png")
json.dump(res, open(f"{out}/metrics.json", "w"), indent=1)
print(json.dumps(res))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=str(REPO / "assets" / "astronaut.jpg"))
    ap.add_argument("--out", default=str(REPO / "out" / "photo_lighting"))
    ap.add_argument("--samples", type=int, default=64)
    args = ap.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    job = out / "job"
    for cmd in (["reconstruct", "--image", args.image, "--out", str(job)],):
        subprocess.run([str(BACKEND), "-m", "backend", *cmd], cwd=REPO, check=True)
    subprocess.run([str(BACKEND), "-c", "import sys; from backend.detail.photo.relight import photo_lighting; "
                    "photo_lighting(sys.argv[1])", str(job)], cwd=REPO, check=True)
    spec = importlib.util.spec_from_file_location("facedet3d_bootstrap", REPO / "facedet3d.py")
    boot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(boot)
    pkg = boot.load_package()
    pkg.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    built = pkg.addon.scene.builder.build_face(bpy.context, job, name="eval")
    sc = bpy.context.scene
    sc.cycles.samples = args.samples
    sc.render.film_transparent = True
    sc.render.image_settings.color_mode = "RGBA"
    for mode in ("studio", "photo"):
        if mode == "photo":
            pkg.addon.scene.photo_light.apply(bpy.context, built.obj, job)
        sc.render.filepath = str(out / f"{mode}.png")
        bpy.ops.render.render(write_still=True)
    subprocess.run([str(BACKEND), "-c", METRICS, args.image, str(out), str(job / "face.json")], cwd=REPO, check=True)
    print(json.dumps(json.loads((out / "metrics.json").read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
