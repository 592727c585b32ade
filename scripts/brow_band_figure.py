"""docs/brow_bands.jpg: the brows read off the image (backend.vision.brow_band) against MediaPipe's
brows, on the mean face textured with a job's projected photo, neutral and surprise, frontal.
With ``--table``: docs/au_accuracy.md's table instead -- how far the bands and the landmarks'
brows move from the same view's neutral, per prototype, on the mean face and one N(0, 1)
identity (seed 3), yaw -30, 0 and 30 deg (front light, side light at 30), painted and
photo-textured (84 expression renders, ~1 min).

    .venv-backend/bin/python scripts/brow_band_figure.py --job out/demo/astronaut_job [--out docs/brow_bands.jpg]
    .venv-backend/bin/python scripts/brow_band_figure.py --job out/demo/astronaut_job --table

The job: any reconstruct of the bundled photo (scripts/demo.sh makes out/demo/astronaut_job).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.models import emotions  # noqa: E402
from backend.models.loader import load_model  # noqa: E402
from backend.reconstruct import closed_loop  # noqa: E402
from backend.reconstruct.mesh_landmarks import generic_albedo, view_camera  # noqa: E402
from backend.reconstruct.render import render  # noqa: E402
from backend.vision import brow_band, landmarks  # noqa: E402

BAND, LANDMARKS = (0, 255, 0), (255, 0, 0)


def panel(model, tiles, controls: dict[str, float]) -> np.ndarray:
    rig = emotions.au_rig(model)
    w = emotions.weights_from_controls(rig, list(model.expression_names), controls)
    V = model.shape(None, w)
    cam = view_camera(model, 0.0, 0.0, size=512, fov_deg=30.0, distance=600.0, vertices=V)
    img = render(model, V, cam, tiles, sh=closed_loop.light_sh("front", np.asarray(cam.rotation))).image.copy()
    det = landmarks.detect_face(img)
    origin, axes, iod, brows = brow_band.landmark_brows(det.dense_points)
    for k, (x, eye_y, height) in enumerate(brows):
        for h, colour in ((det.brows[k], BAND), (height, LANDMARKS)):
            ends = np.array([[x - 0.12, eye_y - h], [x + 0.12, eye_y - h]]) * iod @ axes.T + origin
            cv2.line(img, tuple(int(v) for v in ends[0]), tuple(int(v) for v in ends[1]), colour, 2)
    return img[90:330, 120:392]  # the upper face


def heights(model, tiles, identity, controls, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """(bands, landmarks' brows) per side, IOD over the eyes, on one render (tiles None: painted)."""
    rig = emotions.au_rig(model)
    w = emotions.weights_from_controls(rig, list(model.expression_names), controls)
    V = model.shape(identity, w)
    cam = view_camera(model, yaw, 0.0, size=512, fov_deg=30.0, distance=600.0, vertices=V)
    sh = closed_loop.light_sh("side" if yaw > 0 else "front", np.asarray(cam.rotation))
    if tiles is None:
        img = render(model, V, cam, sh=sh, vertex_rgb=generic_albedo(model, model.shape(identity))).image
    else:
        img = render(model, V, cam, tiles, sh=sh).image
    det = landmarks.detect_face(img)
    return np.asarray(det.brows[:2]), np.array([h for _, _, h in brow_band.landmark_brows(det.dense_points)[3]])


def table(model, tiles) -> None:
    rig = emotions.au_rig(model)
    presets = emotions.preset_controls(model, rig)
    neutral = {c["key"]: 0.0 for c in rig}
    identities = [np.zeros(50), np.random.default_rng(3).standard_normal(50)]
    print("look     prototype  bands (change, IOD)   landmarks' brows")
    for look, t in (("painted", None), ("photo", tiles)):
        base = {(i, yaw): heights(model, t, ident, neutral, yaw)
                for i, ident in enumerate(identities) for yaw in (-30.0, 0.0, 30.0)}
        for name, controls in presets.items():
            moved = [np.subtract(heights(model, t, ident, controls, yaw), base[i, yaw])
                     for i, ident in enumerate(identities) for yaw in (-30.0, 0.0, 30.0)]
            band = np.concatenate([m[0] for m in moved])
            lm = np.concatenate([m[1] for m in moved])
            print(f"{look:8s} {name:9s}  {band.min():+.2f} to {band.max():+.2f}      {lm.min():+.2f} to {lm.max():+.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", required=True, help="a reconstruct job of the bundled photo (its projected texture)")
    ap.add_argument("--out", default="docs/brow_bands.jpg")
    ap.add_argument("--table", action="store_true", help="print docs/au_accuracy.md's table instead of the figure")
    args = ap.parse_args()
    model = load_model()
    tiles = closed_loop.photo_tiles(args.job)
    if args.table:
        table(model, tiles)
        return 0
    rig = emotions.au_rig(model)
    neutral = {c["key"]: 0.0 for c in rig}
    surprise = emotions.preset_controls(model, rig)["surprise"]
    both = np.hstack([panel(model, tiles, neutral), panel(model, tiles, surprise)])
    Image.fromarray(both).resize((both.shape[1] * 2, both.shape[0] * 2)).save(args.out, quality=88)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
