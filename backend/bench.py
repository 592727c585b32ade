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
    rows += bench_details(model, fit, img, det, repeat)
    rows += bench_learned(repeat)
    print(f"backend bench: median of {repeat} (whole reconstruct: 1 run)")
    for name, secs in rows:
        print(f"  {name:48s} {secs * 1000:9.1f} ms")
    print(f"  {'peak memory of this process (max RSS)':48s} {peak_rss_mb():9.1f} MB")
    return 0


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def bench_details(model, fit, img, det, repeat: int) -> list[tuple[str, float]]:
    """D(I_x) at 1024², one 4096² wrinkle map, and the 4096² EXR write (the floor)."""
    from . import exr_io
    from .face_data import FaceReconstruction
    from .photo_detail import extract_photo_detail
    from .wrinkles import wrinkle_map

    rec = FaceReconstruction(image=str(PHOTO), image_size=[img.shape[1], img.shape[0]], model=model.name,
                             model_dir=model.source, detection=det, fit=fit)
    rows = []
    t, pd = _median(lambda: extract_photo_detail(model, rec, img, size=1024), repeat)
    rows.append(("photo detail D(I_x) 1024^2", t))
    smile = np.zeros(model.n_expressions)
    for name in ("mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R"):
        smile[model.expression_index(name)] = 1.0
    ident = np.asarray(fit.identity)
    t, w = _median(lambda: wrinkle_map(model, ident, smile, size=4096, age=35.0), repeat)
    rows.append(("wrinkle map 4096^2 (AU6+12, with micro-relief)", t))
    with tempfile.TemporaryDirectory() as d:
        t, _ = _median(lambda: exr_io.write_map(os.path.join(d, "m.exr"), w.displacement), repeat)
    rows.append(("EXR write 4096^2 half ZIP", t))
    person = pd.displacement
    t, _ = _median(lambda: wrinkle_map(model, ident, smile, size=1024, age=35.0, person_detail=person,
                                       micro=False), repeat)
    rows.append(("key wrinkle map 1024^2 (AU6+12, no micro)", t))
    return rows


def bench_learned(repeat: int) -> list[tuple[str, float]]:
    """DetH's training costs: one synthetic sample, one training step (batch 4, 256²)."""
    import torch

    from .learned import data, train
    from .learned.nets import DetH, DExp

    syn = data.Synth.load()
    seeds = iter(range(10 ** 6))
    t, _ = _median(lambda: syn.sample(next(seeds)), repeat)
    rows = [("synthetic DetH training pair 256^2", t)]
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n = 8
    d = {"dx": rng.normal(0, 0.2, (n, 256, 256)).astype(np.float16), "x": rng.random((n, 47), np.float32),
         "age": np.full(n, 40.0, np.float32), "identity": np.zeros((n, 50), np.float32), "seed": np.arange(n),
         "mask": np.ones((256, 256), bool)}
    d["dy"], d["y"] = d["dx"][::-1].copy(), d["x"][::-1].copy()
    cfg = train.TrainConfig()
    G, D = DetH(cfg.deth), DExp(cfg.deth.n_aus)
    og, od = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    batches = train.Batches(d, np.arange(n), torch.device("cpu"), rng, cfg.deth.n_identity)
    step = iter(range(10 ** 6))

    def one():
        bt = batches.get(cfg.batch)
        train.d_step(G, D, od, bt, cfg, next(step))
        train.g_step(G, D, og, bt, cfg)

    one()  # first step allocates
    t, _ = _median(one, repeat)
    rows.append((f"DetH training step (batch {cfg.batch}, 256^2, {torch.get_num_threads()} threads)", t))
    return rows
