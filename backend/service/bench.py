"""Backend benchmark: median wall time of each stage on the bundled photo.

Prints figures; asserts nothing (speed targets live here, never in timed tests).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
import torch

from protocol import rpc
from protocol.job import FaceReconstruction

from ..core import exr_io
from ..core.image_io import load_rgb
from ..detail import microrelief
from ..detail.face import ReconstructedFace
from ..detail.creases import generator
from ..detail.creases.generator import crease_map
from ..detail.photo.extract import extract_photo_detail
from ..learned import serve, sr, weights
from ..learned.nets import DetH, DExp
from ..models.bfm import convert as bfm_model
from ..models.bfm import files as bfm_files
from ..models.bfm.synthetic import make_truth, write_bfm2009
from ..models.ict import default_model_dir
from ..models.loader import load_model
from ..capture import synthetic, track
from ..reconstruct import closed_loop, fitting, texture
from ..reconstruct.pipeline import reconstruct
from ..vision import landmarks

try:  # training ships with a checkout, not with the extension zip: its rows need it
    from ..learned.train import data
    from ..learned.train import deth as train
except ImportError:
    data = train = None

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "assets" / "astronaut.jpg"


def _times(fn, repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def _median(fn, repeat: int) -> tuple[float, object]:
    times, out = _times(fn, repeat)
    return statistics.median(times), out


def cold_start(repeat: int) -> float:
    """Server process start -> first `health` answer (imports torch, as a real start does)."""
    req = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "health", "params": {}}) + "\n"
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", rpc.SERVER_MODULE], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        p.stdin.write(req)
        p.stdin.flush()
        p.stdout.readline()
        times.append(time.perf_counter() - t0)
        p.stdin.close()
        p.wait(timeout=30)
    return statistics.median(times)


def run_bench(repeat: int = 3, model_dir: str | None = None, only: str = "") -> int:
    if only == "bfm":
        return _print(bench_bfm(repeat), repeat)
    if only == "neural":
        return _print(bench_neural(repeat), repeat, "(partial: --only neural)")
    rows = []
    if only != "details":
        rows.append(("backend cold start (process -> health)", cold_start(repeat)))
    t, model = _median(lambda: load_model(model_dir), 1)
    rows.append(("model load (first, uncached)", t))
    img = load_rgb(PHOTO)
    landmarks.detect_face(img)  # load dlib's weights once; we time detection itself
    if only == "details":  # the detail maps' and the learned nets' rows (a partial run)
        det = landmarks.detect_face(img)
        fit = fitting.fit_model(model, det, (img.shape[1], img.shape[0]))
        rows += bench_details(model, fit, img, det, repeat) + bench_learned(repeat)
        return _print(rows, repeat, "(partial: --only details)")
    t, det = _median(lambda: landmarks.detect_face(img), repeat)
    rows.append((f"detection + landmarks (512x512, {det.detector})", t))
    t, _ = _median(lambda: landmarks.detect_face(img, landmarker="dlib"), repeat)
    rows.append(("detection + 68 landmarks, dlib only (512x512)", t))
    h, w = img.shape[:2]
    t, fit = _median(lambda: fitting.fit_model(model, det, (w, h)), repeat)
    rows.append((f"fit (pose, identity, expression; {'dense' if det.dense else '68'} points)", t))
    rows += bench_au_loop(model)
    rows += bench_capture(model)
    posed = model.shape(np.asarray(fit.identity), np.asarray(fit.expression))
    t, _ = _median(lambda: texture.project_texture(model, posed, fit.camera, img, model.regions["face"][1],
                                                   0, 2048), repeat)
    rows.append(("texture 2048^2 (face tile)", t))
    with tempfile.TemporaryDirectory() as d:
        runs = iter(range(1000))
        reconstruct(str(PHOTO), os.path.join(d, "warm"))  # the age net and layouts load once per process
        times, _ = _times(lambda: reconstruct(str(PHOTO), os.path.join(d, f"job{next(runs)}")), max(repeat, 5))
    rows.append(("whole reconstruct, warm process (photo -> job on disk)", statistics.median(times)))
    # the ≤ 2 s bound is per photo, so the slowest run too (its swings were the allocator's: run 15)
    rows.append(("  slowest of those warm runs", max(times)))
    if only == "photo":
        return _print(rows, repeat, "(partial: --only photo; whole reconstruct: median of max(repeat, 5) warm runs)")
    rows += bench_details(model, fit, img, det, repeat)
    rows += bench_learned(repeat)
    rows += bench_neural(repeat)
    rows += bench_bfm(repeat)
    return _print(rows, repeat, "(whole reconstruct: median of max(repeat, 5) warm runs)")


def _print(rows: list[tuple], repeat: int, note: str = "") -> int:
    print(f"backend bench: median of {repeat} {note}".rstrip())
    for name, value, *unit in rows:  # seconds, or a value in the unit given (fractions to 3 places)
        if not unit:
            text = f"{value * 1000:9.1f} ms"
        elif unit[0] in ("AU", "share"):
            text = f"{value:9.3f} {unit[0]}"
        else:
            text = f"{value:9.1f} {unit[0]}"
        print(f"  {name:48s} {text}")
    print(f"  {'peak memory of this process (max RSS)':48s} {peak_rss_mb():9.1f} MB")
    return 0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def bench_au_loop(model) -> list[tuple]:
    """The closed-loop AU figures on a small set (one identity, yaw 0 and 40, front light); the
    full set is `python -m backend au-eval` (docs/au_accuracy.md)."""
    job = Path(__file__).resolve().parents[2] / "out" / "demo" / "astronaut_job"
    if not (job / "texture.png").is_file():
        print(f"  (no texture job at {job}: run scripts/demo.sh for the closed-loop AU rows)")
        return []
    res = closed_loop.evaluate(model, job, 1, yaws=(0.0, 40.0), lights=("front",), log=None)
    proto = [v for v in res["prototypes"].values()]
    return [("closed-loop AU MAE (7 prototypes, yaw 0/40)", res["mae_all"], "AU"),
            ("  prototype AUs read >= 0.3 (share of cases)", float(np.mean([v["prototype_read"] for v in proto])), "share"),
            ("  other AUs <= 0.15 (share of cases)", float(np.mean([v["others_quiet"] for v in proto])), "share"),
            ("  seconds per case (render + detect + fit)", res["seconds_per_case"], "s")]


def bench_capture(model) -> list[tuple]:
    """Animate from Video on a synthetic 640x480 clip (48 frames): tracking + fit per frame."""
    with tempfile.TemporaryDirectory() as d:
        Image.fromarray(synthetic.neutral_frame(model)).save(os.path.join(d, "face.png"))
        reconstruct(os.path.join(d, "face.png"), os.path.join(d, "job"),
                    options={"texture_size": 256, "head_texture_size": 128})
        clip = synthetic.write_clip(os.path.join(d, "clip.mp4"), synthetic.frames(model))
        res = track.capture(os.path.join(d, "job"), str(clip))
    st = res["stats"]
    n = st["frames"]
    return [("capture 640x480: frames per second (decode+track+fit)", st["frames_per_second"], "fps"),
            ("  tracking per frame", st["track_s"] / n),
            ("  fit per frame (identity fixed)", st["fit_s"] / n)]


def bench_bfm(repeat: int) -> list[tuple]:
    """Converting a BFM-sized model: a BFM 2009 layout file of 53.6k vertices and 199 components
    (bfm_synthetic, subdivided, with the inner mouth), read, registered, transferred, UV-mapped."""
    truth = make_truth(load_model(), seed=0, n_components=199, subdivide=True, with_mouth=True)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        path = write_bfm2009(os.path.join(d, "01_MorphableModel.mat"), truth)
        t, data = _median(lambda: bfm_files.read_bfm(path), repeat)
        rows.append((f"BFM 2009 .mat read ({data.n_vertices} vertices, {data.identity.shape[0]} components)", t))
        reports = []

        def convert():
            model, rep = bfm_model.convert(str(path), str(default_model_dir()))
            reports.append(rep)
            return model

        t, model = _median(convert, repeat)
        rows.append(("BFM conversion, whole (read + all below)", t))
        for key, name in (("registration_s", "  registration (render, landmarks, NICP)"),
                          ("transfer_s", "  transfer (landmarks, regions, 57 shapes)"), ("uv_s", "  UV maps")):
            rows.append((name, statistics.median(r["timings"][key] for r in reports)))
        target = Path(d) / "cache.npz"
        bfm_model.save_cache(model, reports[-1], target)
        t, _ = _median(lambda: bfm_model.load_cache(target, str(path)), repeat)
        rows.append(("converted model load from the cache", t))
    return rows


def bench_details(model, fit, img, det, repeat: int) -> list[tuple[str, float]]:
    """D(I_x) at 1024², one 4096² wrinkle map, and the 4096² EXR write (the floor)."""
    rec = FaceReconstruction(image=str(PHOTO), image_size=[img.shape[1], img.shape[0]], model=model.name,
                             model_dir=model.source, detection=det, fit=fit)
    rows = []
    t, pd = _median(lambda: extract_photo_detail(model, rec, img, size=1024), repeat)
    rows.append(("photo detail D(I_x) 1024^2", t))
    smile = np.zeros(model.n_expressions)
    for name in ("mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R"):
        smile[model.expression_index(name)] = 1.0
    ident = np.asarray(fit.identity)
    brows = np.zeros(model.n_expressions)
    for name in ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R"):
        brows[model.expression_index(name)] = 1.0

    def first():
        generator.forget_face_caches()  # a face's first map: micro relief and UV coverage made
        return crease_map(model, ident, smile, size=4096, age=35.0)

    t, w = _median(first, repeat)
    rows.append(("wrinkle map 4096^2 (AU6+12, the face's first: with micro-relief)", t))
    t, _ = _median(lambda: crease_map(model, ident, brows, size=4096, age=35.0), repeat)
    rows.append(("wrinkle map 4096^2 (AU1+2, the face's next: micro-relief kept)", t))
    with tempfile.TemporaryDirectory() as d:
        t, _ = _median(lambda: exr_io.write_map(os.path.join(d, "m.exr"), w.displacement), repeat)
    rows.append(("EXR write 4096^2 half ZIP", t))
    person = pd.displacement
    t, _ = _median(lambda: crease_map(model, ident, smile, size=1024, age=35.0, person_detail=person,
                                       micro=False), repeat)
    rows.append(("key wrinkle map 1024^2 (AU6+12, no micro)", t))
    return rows


def bench_learned(repeat: int) -> list[tuple]:
    """DetH's training costs (one synthetic identity, one training step) and, when the weights are
    installed, serving: DetH, RCAN ×4 and ×4×4 to 4096² (in a child process, whose peak memory
    is printed too)."""
    if train is None:
        print("  (no training code in this install: no DetH training rows)")
        return []
    syn = data.Synth.load()
    seeds = iter(range(10 ** 6))
    t, _ = _median(lambda: syn.samples(next(seeds)), repeat)
    rows = [("synthetic identity: 4 expressions, 4 pairs 256^2", t)]
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

    def warm():
        train.g_step(G, D, og, batches.get(cfg.batch), cfg, full=False)

    one()  # first step allocates
    t, _ = _median(one, repeat)
    rows.append((f"DetH training step (batch {cfg.batch}, 256^2, {torch.get_num_threads()} threads)", t))
    t, _ = _median(warm, repeat)
    rows.append((f"DetH warm-up step (paired losses only, batch {cfg.batch})", t))
    if not weights.available("rcan"):
        print("  (no RCAN weights installed: no serving rows)")
        return rows
    code = f"from backend.service.bench import serve_child; serve_child({repeat})"
    out = subprocess.run([sys.executable, "-c", code],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    rows += [(name, secs) for name, secs in res["rows"]]
    rows.append(("serving process peak memory (max RSS)", res["peak_rss_mb"], "MB"))
    return rows


def bench_neural(repeat: int) -> list[tuple]:
    """The neural renderer in a child process (its peak memory its own): one person's whole
    training (prepare + the default steps) and a 512² frame from rasters."""
    code = f"from backend.service.bench import neural_child; neural_child({repeat})"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return [(name, secs) for name, secs in res["rows"]] + [("neural process peak memory (max RSS)",
                                                            res["peak_rss_mb"], "MB")]


def neural_child(repeat: int) -> None:
    from ..learned.neural import frame, rasters
    from ..learned.neural import training as neural_train

    rows = []
    with tempfile.TemporaryDirectory() as d:
        job = os.path.join(d, "job")
        reconstruct(str(PHOTO), job)
        t0 = time.perf_counter()
        res = neural_train.train_subject(job)
        rows.append((f"neural renderer: one person's training (prepare + {res['stats']['steps']} steps)",
                     time.perf_counter() - t0))
        rows.append(("  of which preparing the views and fake details", res["stats"]["prepare_s"]))
        loaded = frame.load(job)
        face = ReconstructedFace.open(job)
        v = face.model.shape(face.identity, np.asarray(face.rec.fit.expression, np.float64))
        r = rasters.from_model(face.model, v, face.rec.fit.camera, loaded.assets.fade, size=(512, 512))
        frame.render(loaded, r)  # first call allocates
        t, _ = _median(lambda: frame.render(loaded, r), repeat)
        rows.append(("neural frame 512^2 (shading + Tex2Im, from rasters)", t))
    print(json.dumps({"rows": rows, "peak_rss_mb": peak_rss_mb()}))


def serve_child(repeat: int) -> None:
    """RCAN 256²→1024² and 256²→4096² (tiled) and, when installed, DetH 256², on a synthetic
    map; prints JSON (its own process, so its peak memory is its own)."""
    rcan, _ = weights.load("rcan")
    m = np.random.default_rng(0).normal(0, 0.05, (256, 256)).astype(np.float32)
    rows = []
    with torch.inference_mode():
        if serve.available():
            nets = serve.get()
            inp = {"dx": m, "uv": np.ones((256, 256), np.float32), "x": np.zeros(47, np.float32),
                   "identity": np.zeros(50, np.float32)}
            y = np.zeros((1, 47), np.float32)
            y[0, :4] = 1.0
            t, _ = _median(lambda: nets.map_for(inp, y, 40.0), repeat)
            rows.append(("DetH forward 256^2 (one target)", t))
        t, big = _median(lambda: sr.upscale(rcan, m), repeat)
        rows.append(("RCAN x4 256^2 -> 1024^2", t))
        # above 1024² a learned map is RCAN's bicubic-upsampled plus the face's fine relief
        # (serve.LearnedDetails.to_size); the fine relief is the physical model's, kept per face
        model = load_model()
        fresh = time.perf_counter()
        microrelief.face_line_direction(model, None)
        rows.append(("fine-line direction field (once per backend process)", time.perf_counter() - fresh))
        fresh = time.perf_counter()
        fine = generator.face_micro_relief(model, None, 4096, 40.0)
        rows.append(("fine relief 4096^2 (a face's first map; kept after)", time.perf_counter() - fresh))
        if serve.available():  # what serving does after DetH: RCAN, bicubic, the face's fine relief
            t, _ = _median(lambda: nets.to_size(m, 4096, fine=fine), repeat)
            rows.append(("DetH's 256^2 -> 4096^2 as served (RCAN x4, bicubic, fine relief)", t))
        else:
            t, _ = _median(lambda: sr.upsample_with_fine(big, 4096, fine), repeat)
            rows.append(("1024^2 -> 4096^2: bicubic + the face's fine relief", t))
    # VmHWM, not getrusage: Linux carries ru_maxrss over fork and exec, so a child started by a
    # big parent would report the parent's peak
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(json.dumps({"rows": rows, "peak_rss_mb": hwm / 1024.0}))
