"""Closed-loop measurement of how well a photo's Action Units are read.

The default model is rendered (:mod:`backend.reconstruct.render`) at known AU values -- the seven
EMFACS prototypes of models.emotions -- for several identities (coefficients drawn from the
model's N(0, 1) prior), head turns of -40..+40 deg yaw and two lightings, textured with a
projected photo (the bundled astronaut's job folder). The photo pipeline's own detection and fit
read each render back; per AU the mean absolute error, and per prototype whether its AUs read
>= PROTOTYPE_MIN and every other AU <= OTHER_MAX (the issue's split).

Truth and readings are whole AUs (the mean of an AU's left and right shapes, as the job's
``aus`` report them) on 0..1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from protocol import job as job_files

from ..core.image_io import load_rgb
from ..core.imaging import srgb_to_linear
from ..geometry.sh_lighting import camera_light
from .render import render
from ..models import emotions, facs
from ..models.morphable import MorphableModel
from ..vision import landmarks
from . import au_readout, fitting
from .mesh_landmarks import generic_albedo, view_camera

PROTOTYPE_MIN = 0.3
OTHER_MAX = 0.15
YAWS = (-40.0, -20.0, 0.0, 20.0, 40.0)
# Lightings in the camera's frame: a soft key above the camera, and a hard key from the side.
LIGHTS = {"front": ((0.25, 0.45, 1.0), 0.85, 0.30), "side": ((-0.9, 0.3, 0.5), 1.0, 0.15)}


@dataclass
class Case:
    name: str  # prototype
    identity: int
    yaw: float
    light: str
    truth: dict[str, float]  # whole AUs
    read: dict[str, float] = field(default_factory=dict)
    sd: dict[str, float] = field(default_factory=dict)
    ok: bool = False
    error: str = ""
    seconds: float = 0.0


def photo_tiles(job_dir: str | Path) -> dict[int, np.ndarray]:
    """The face and head texture tiles of a job folder, as linear RGB albedo."""
    folder = Path(job_dir)
    return {0: srgb_to_linear(load_rgb(str(folder / f"{job_files.FACE_TEXTURE}.png"))),
            1: srgb_to_linear(load_rgb(str(folder / f"{job_files.HEAD_TEXTURE}.png")))}


def whole_aus(model: MorphableModel, weights: np.ndarray) -> dict[str, float]:
    return {k: v for k, v in facs.aus_from_weights(model, weights).items() if k[-1].isdigit()}


def light_sh(name: str, camera_R: np.ndarray) -> np.ndarray:
    """SH coefficients (model frame) of a named lighting given in the camera's frame."""
    d, k, amb = LIGHTS[name]
    return camera_light(d, camera_R, k, amb)


def run_case(model: MorphableModel, case: Case, identity: np.ndarray, weights: np.ndarray,
             tiles: dict[int, np.ndarray] | None, size: int = 512, save: Path | None = None) -> Case:
    """Render one case, read it back. ``tiles`` None: the generic painted albedo (the one the
    dense correspondence was made with), carried by the posed mesh."""
    t0 = time.perf_counter()
    V = model.shape(identity, weights)
    cam = view_camera(model, case.yaw, 0.0, size=size, fov_deg=30.0, distance=600.0, vertices=V)
    sh = light_sh(case.light, np.asarray(cam.rotation))
    img = (render(model, V, cam, tiles, sh=sh) if tiles else
           render(model, V, cam, sh=sh, vertex_rgb=generic_albedo(model, model.shape(identity)))).image
    if save is not None:
        Image.fromarray(img).save(save)
    try:
        det = landmarks.detect_face(img)
        fit = fitting.fit_model(model, det, (size, size))
    except Exception as exc:  # a miss is a result of the loop, counted and named
        case.error = f"{type(exc).__name__}: {exc}"
        case.seconds = time.perf_counter() - t0
        return case
    aus, _ = au_readout.read_aus(model, fit, det)  # what a job reports
    case.read = {k: v for k, v in aus.items() if k[-1].isdigit()}
    case.sd = au_readout.au_sd(model, fit.expression_sd)
    case.ok = True
    case.seconds = time.perf_counter() - t0
    return case


def cases(model: MorphableModel, n_identities: int = 3, yaws=YAWS, lights=tuple(LIGHTS), seed: int = 0):
    """(Case, identity coefficients, expression weights) for every prototype x identity x yaw x light."""
    rng = np.random.default_rng(seed)
    ids = [np.zeros(50)] + [rng.standard_normal(50) for _ in range(n_identities - 1)]
    rig = emotions.au_rig(model)
    presets = emotions.preset_controls(model, rig)
    for name, controls in presets.items():
        w = emotions.weights_from_controls(rig, list(model.expression_names), controls)
        truth = whole_aus(model, w)
        for i, ident in enumerate(ids):
            for yaw in yaws:
                for light in lights:
                    yield Case(name, i, float(yaw), light, dict(truth)), ident, w


def random_cases(model: MorphableModel, n: int = 60, seed: int = 1000):
    """Expressions outside the prototypes: one to three AUs of the rig (both sides) at random
    intensities 0.3-1, random identity and yaw, the front light. A test the readout's prototype
    share of training cannot flatter (its training seeds are below 1000)."""
    rng = np.random.default_rng(seed)
    rig = emotions.au_rig(model)
    aus = sorted({c["au"] for c in rig if c["au"] < 60 and c["au"] != 33})
    for i in range(n):
        controls = {c["key"]: 0.0 for c in rig}
        for au in rng.choice(aus, size=rng.integers(1, 4), replace=False):
            v = float(rng.uniform(0.3, 1.0))
            for c in rig:
                if c["au"] == au:
                    controls[c["key"]] = v
        w = emotions.weights_from_controls(rig, list(model.expression_names), controls)
        yield (Case("random", i, float(rng.uniform(-40, 40)), "front", whole_aus(model, w)),
               rng.standard_normal(50), w)


def summarize(model: MorphableModel, done: list[Case]) -> dict:
    ok = [c for c in done if c.ok]
    keys = sorted({k for c in ok for k in c.truth}, key=lambda k: int(k[2:]))
    per_au = {}
    for k in keys:
        err = np.array([abs(c.read.get(k, 0.0) - c.truth.get(k, 0.0)) for c in ok])
        on = np.array([c.truth.get(k, 0.0) > 0 for c in ok])
        sd = np.array([c.sd.get(k, 0.0) for c in ok])
        per_au[k] = {"mae": round(float(err.mean()), 3) if len(err) else None,
                     "mae_when_present": round(float(err[on].mean()), 3) if on.any() else None,
                     "mae_when_absent": round(float(err[~on].mean()), 3) if (~on).any() else None,
                     "within_2sd": round(float((err <= 2 * sd + 1e-9).mean()), 3) if len(err) else None}
    split = {}
    for name in emotions.EMFACS:
        cs = [c for c in ok if c.name == name]
        if not cs:
            continue
        proto = [k for k, v in cs[0].truth.items() if v > 0]
        hit = [all(c.read.get(k, 0) >= min(PROTOTYPE_MIN, 0.75 * c.truth[k]) for k in proto) for c in cs]
        clean = [all(c.read.get(k, 0) <= OTHER_MAX for k in keys if k not in proto) for c in cs]
        worst_other = max(((c.read.get(k, 0), k) for c in cs for k in keys if k not in proto), default=(0, ""))
        split[name] = {"prototype_aus": proto,
                       # what the prototype's AUs read on average (its truth: cs[0].truth)
                       "mean_read": {k: round(float(np.mean([c.read.get(k, 0) for c in cs])), 3) for k in proto},
                       "prototype_read": round(float(np.mean(hit)), 3),
                       "others_quiet": round(float(np.mean(clean)), 3),
                       "both": round(float(np.mean([h and q for h, q in zip(hit, clean)])), 3),
                       "worst_other": [worst_other[1], round(float(worst_other[0]), 3)]}
    by_yaw = {}
    for yaw in sorted({c.yaw for c in ok}):
        cs = [c for c in ok if c.yaw == yaw]
        by_yaw[f"{yaw:+.0f}"] = round(float(np.mean([abs(c.read.get(k, 0) - c.truth.get(k, 0))
                                                     for c in cs for k in keys])), 4)
    return {"cases": len(done), "read": len(ok), "missed": [f"{c.name}/id{c.identity}/{c.yaw:+.0f}/{c.light}: {c.error}"
                                                            for c in done if not c.ok],
            "mae_all": round(float(np.mean([abs(c.read.get(k, 0) - c.truth.get(k, 0)) for c in ok for k in keys])), 4)
            if ok else None,
            "per_au": per_au, "prototypes": split, "mae_by_yaw": by_yaw,
            "seconds_per_case": round(float(np.median([c.seconds for c in done])), 3) if done else None}


def evaluate(model: MorphableModel, job_dir: str | Path | None, n_identities: int = 3, yaws=YAWS, lights=tuple(LIGHTS),
             size: int = 512, log=print) -> dict:
    """Every case of :func:`cases`, read back and summarised (plus the settings it ran with)."""
    tiles = photo_tiles(job_dir) if job_dir else None
    done = []
    for case, ident, w in cases(model, n_identities, yaws, lights):
        done.append(run_case(model, case, ident, w, tiles, size))
        if log is not None and len(done) % 20 == 0:
            log(f"  {len(done)} cases")
    out = summarize(model, done)
    rand = [run_case(model, case, ident, w, tiles, size) for case, ident, w in random_cases(model)]
    r = summarize(model, rand)
    out["random"] = {"cases": r["cases"], "read": r["read"], "mae_all": r["mae_all"],
                     "mae_present": _mean_err(rand, present=True), "mae_absent": _mean_err(rand, present=False),
                     "per_au_present": {k: v["mae_when_present"] for k, v in r["per_au"].items()
                                        if v["mae_when_present"] is not None}}
    out["settings"] = {"identities": n_identities, "yaws": list(yaws), "lights": list(lights), "size": size,
                       "texture": str(job_dir) if job_dir else "generic", "fit_points": "dense" if fitting_uses_dense() else "68",
                       "expression_prior": fitting.EXPRESSION_PRIOR, "sigma_dense": fitting.SIGMA_DENSE,
                       "aus_from": "readout" if au_readout.load() is not None else "fit"}
    return out


def _mean_err(done: list[Case], present: bool) -> float | None:
    errs = [abs(c.read.get(k, 0.0) - v) for c in done if c.ok for k, v in c.truth.items() if (v > 0) == present]
    return round(float(np.mean(errs)), 4) if errs else None


def fitting_uses_dense() -> bool:
    return landmarks.mesh_available()
