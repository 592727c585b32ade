"""docs/brow_bands.jpg: the brows read off the image (backend.vision.brow_band) against MediaPipe's
brows, on the mean face textured with a job's projected photo, neutral and surprise, frontal.

    .venv-backend/bin/python scripts/brow_band_figure.py --job out/demo/astronaut_job [--out docs/brow_bands.jpg]

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
from backend.reconstruct.mesh_landmarks import view_camera  # noqa: E402
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--job", required=True, help="a reconstruct job of the bundled photo (its projected texture)")
    ap.add_argument("--out", default="docs/brow_bands.jpg")
    args = ap.parse_args()
    model = load_model()
    tiles = closed_loop.photo_tiles(args.job)
    rig = emotions.au_rig(model)
    neutral = {c["key"]: 0.0 for c in rig}
    surprise = emotions.preset_controls(model, rig)["surprise"]
    both = np.hstack([panel(model, tiles, neutral), panel(model, tiles, surprise)])
    Image.fromarray(both).resize((both.shape[1] * 2, both.shape[0] * 2)).save(args.out, quality=88)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
