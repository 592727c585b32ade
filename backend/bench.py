"""Backend benchmark: median wall time of each stage on the bundled photo.

Prints figures; asserts nothing (speed targets live here, never in timed tests).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "assets" / "astronaut.jpg"


def _median(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def cold_start(repeat: int) -> float:
    """Server process start -> first `health` answer (imports torch, as a real start does)."""
    req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "health", "params": {}}) + "\n"
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "backend.server"], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        p.stdin.write(req)
        p.stdin.flush()
        p.stdout.readline()
        times.append(time.perf_counter() - t0)
        p.stdin.close()
        p.wait(timeout=30)
    return statistics.median(times)


def run_bench(repeat: int = 3, model_dir: str | None = None) -> int:
    from . import fitting, landmarks, texture
    from .face_model import load_model
    from .image_io import load_rgb

    rows = []
    rows.append(("backend cold start (process -> health)", cold_start(repeat)))
    t, model = _median(lambda: load_model(model_dir), 1)
    rows.append(("model load (first, uncached)", t))
    img = load_rgb(PHOTO)
    landmarks.detect_face(img)  # load dlib's weights once; we time detection itself
    t, det = _median(lambda: landmarks.detect_face(img), repeat)
    rows.append(("detection + 68 landmarks (512x512)", t))
    h, w = img.shape[:2]
    t, fit = _median(lambda: fitting.fit_model(model, det, (w, h)), repeat)
    rows.append(("fit (pose, identity, expression)", t))
    posed = model.shape(np.asarray(fit.identity), np.asarray(fit.expression))
    t, _ = _median(lambda: texture.project_texture(model, posed, fit.camera, img, model.regions["face"][1],
                                                   0, 2048), repeat)
    rows.append(("texture 2048^2 (face tile)", t))
    from .pipeline import reconstruct

    with tempfile.TemporaryDirectory() as d:
        t, _ = _median(lambda: reconstruct(str(PHOTO), os.path.join(d, "job")), 1)
    rows.append(("whole reconstruct (in process, incl. writes)", t))
    print(f"backend bench: median of {repeat} (whole reconstruct: 1 run)")
    for name, secs in rows:
        print(f"  {name:48s} {secs * 1000:9.1f} ms")
    return 0
