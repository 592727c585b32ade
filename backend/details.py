"""Detail maps for a reconstructed face and a target expression (the physical baseline).

    D(y) = D(I_x) + W(y)

D(I_x): the person's own detail from the photo (``photo_detail``), computed once per face at
1024² and cached in the job folder. W(y): physically based expression wrinkles for the target
expression y plus skin micro-relief (``wrinkles``), deeper with age and where D(I_x) already
has lines. Generated at 4096² and written, with 1024² and 256² reductions, as half-float EXR
in millimetres (docs/detail_maps.md). The learned DetH net (a later issue) replaces W with its
mask-blended hallucination.

With ``detail_model`` "deth" (or "auto" when its weights are installed) the map is DetH's
hallucination for the target expression, super-resolved by RCAN (``learned/serve.py``), and the
sidecar names the nets that made it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from . import exr_io, facs
from .errors import BadRequestError
from .face_data import FaceReconstruction
from .face_model import load_model
from .image_io import load_rgb
from .job_files import atomic_json
from .progress import Job

SIZES = (256, 1024, 4096)
PHOTO_DETAIL_SIZE = 1024
DETAIL_FILE = "detail_photo_1024.exr"


def resample(m: np.ndarray, size: int) -> np.ndarray:
    """Area-average down or cubic up to size x size (row 0 stays v=1)."""
    n = m.shape[0]
    if n == size:
        return m.astype(np.float32)
    if n > size and n % size == 0:
        k = n // size
        return m.reshape(size, k, size, k).mean(axis=(1, 3)).astype(np.float32)
    return ndimage.zoom(m, size / n, order=3, mode="nearest").astype(np.float32)


def photo_detail(job_dir: Path, rec: FaceReconstruction, model, job: Job) -> np.ndarray:
    """D(I_x) at 1024², cached as an EXR in the job folder."""
    path = job_dir / DETAIL_FILE
    if path.is_file():
        return exr_io.read_map(path)
    from .photo_detail import extract_photo_detail

    photo = load_rgb(rec.image)
    res = extract_photo_detail(model, rec, photo, size=PHOTO_DETAIL_SIZE, job=job)
    exr_io.write_map(path, res.displacement)
    return res.displacement.astype(np.float32)


DETAIL_MODELS = ("auto", "physical", "deth")


def resolve_detail_model(choice: str) -> str:
    """"physical" or "deth": "auto" takes DetH when its weights are installed."""
    from .learned import serve

    if choice not in DETAIL_MODELS:
        raise BadRequestError(f"unknown detail model {choice!r}; one of {', '.join(DETAIL_MODELS)}")
    if choice == "physical":
        return "physical"
    if serve.available():
        return "deth"
    if choice == "deth":
        from .learned.weights import weights_dir

        raise BadRequestError(f"the DetH and RCAN weights are not installed in {weights_dir()}",
                              "Use the physical model, or train and export them (docs/deth.md).")
    return "physical"


def target_tag(expression: np.ndarray, age: float, seed: int, variant: str = "") -> str:
    """A short stable name for everything a map depends on, so an identical request reuses the
    maps and a different age, seed or model never overwrites maps a scene already uses.
    ``variant``: the learned nets' name ("" for the physical model)."""
    q = np.round(np.asarray(expression, np.float64), 3)
    key = q.tobytes() + f"|{round(float(age), 1)}|{int(seed)}".encode() + (f"|{variant}".encode() if variant else b"")
    return hashlib.sha1(key).hexdigest()[:10]


def _cached(jd: Path, tag: str, sizes) -> dict | None:
    """The sidecar of an earlier identical request whose maps are all still there."""
    side = jd / f"detail_{tag}.json"
    if not side.is_file():
        return None
    info = json.loads(side.read_text(encoding="utf-8"))
    files = info.get("files", {})
    if all(str(s) in files and (jd / files[str(s)]).is_file() for s in sizes):
        return info
    return None


def build_details(job_dir: str, expression: list[float] | None = None, aus: dict | None = None,
                  age: float | None = None, sizes=SIZES, seed: int = 0, job: Job | None = None,
                  detail_model: str = "auto") -> dict:
    """Write detail maps for the target expression; returns their paths and figures.

    The target is ``expression`` (weights by the model's shape order), else ``aus``, else the
    photo's own fitted expression. ``detail_model``: "auto", "physical" or "deth".
    """
    job = job or Job()
    which = resolve_detail_model(detail_model)
    jd = Path(job_dir)
    rec = FaceReconstruction.load(jd)
    model = load_model(rec.model_dir)
    if expression is not None:
        if len(expression) != model.n_expressions:
            raise ValueError(f"expression has {len(expression)} weights; the model has {model.n_expressions}")
        target = np.clip(np.asarray(expression, np.float64), 0.0, 1.0)
    elif aus:
        target = facs.weights_from_aus(model, aus)
    else:
        target = np.asarray(rec.fit.expression, np.float64)
    years = float(age) if age is not None else float((rec.age or {}).get("years", 35.0))
    nets = None
    if which == "deth":
        from .learned import serve

        nets = serve.get()
    tag = target_tag(target, years, seed, nets.name if nets else "")
    cached = _cached(jd, tag, sizes)
    if cached is not None:
        job.report(1.0, "Details already made for this expression, age and seed")
        return {**cached, "job_dir": str(jd.resolve())}
    t0 = time.perf_counter()

    job.stage(0.0, 0.3).report(0.0, "Extracting the person's detail from the photo")
    d_photo = photo_detail(jd, rec, model, job)
    big = max(sizes)
    if nets is None:
        from .wrinkles import wrinkle_map

        job.stage(0.3, 0.9).report(0.0, "Simulating expression wrinkles")
        person = resample(d_photo, big)
        w = wrinkle_map(model, np.asarray(rec.fit.identity), target, size=big, age=years, person_detail=person,
                        seed=seed, job=job)
        total = person + w.displacement
        del person
    else:
        from .learned import serve

        job.stage(0.3, 0.9).report(0.0, f"Hallucinating details with {nets.name}")
        inp = serve.face_inputs(jd, rec, model, job)
        y = serve.controls_vector(inp["rig"], model.expression_names, target)
        total = nets.to_size(nets.map_for(inp, y[None], years)[0], big, job)

    job.stage(0.9, 1.0).report(0.0, "Writing EXR maps")
    files = {}
    for size in sorted(sizes, reverse=True):
        m = resample(total, size)
        name = f"detail_{tag}_{size}.exr"
        exr_io.write_map(jd / name, m)
        files[str(size)] = name
        job.check()
    info = {
        "tag": tag, "files": files, "unit": "mm", "model": nets.name if nets else "physical",
        "expression": [round(float(x), 4) for x in target],
        "aus": {k: v for k, v in facs.aus_from_weights(model, target).items() if v > 0},
        "age_years": years, "seed": seed,
        "vertex_range": list(model.regions["face"][0]), "material": "skin_face",
        "stats": {"rms_mm": float(np.sqrt(np.mean(total ** 2))), "min_mm": float(total.min()),
                  "max_mm": float(total.max()), "seconds": round(time.perf_counter() - t0, 2)},
    }
    atomic_json(jd / f"detail_{tag}.json", info)
    job.report(1.0, "Details done")
    return {**info, "job_dir": str(jd.resolve())}
