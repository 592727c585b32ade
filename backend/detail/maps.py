"""Detail maps for a reconstructed face and a target expression: the ``details`` method.

    D(y) = D(I_x) + W(y)

D(I_x): the person's own detail from the photo (``photo``), made once per face at 1024² and
cached in the job folder. W(y): what the chosen detail model (``registry``) makes for the target
expression y: the physical model's skin-mechanics wrinkles and micro relief, or DetH's
mask-blended hallucination super-resolved by RCAN. Written at every asked size as half-float EXR
in millimetres (docs/detail_maps.md), with a side file naming what made them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from protocol.details import SIZES, DetailInfo, detail_map, detail_sidecar, target_tag
from protocol.scene import SKIN_FACE_MATERIAL

from ..core import exr_io
from ..core.imaging import resample
from ..core.progress import Job
from ..models import emotions, facs
from . import registry
from .face import ReconstructedFace


def target_weights(face: ReconstructedFace, expression: Optional[list[float]], aus: Optional[dict],
                   controls: Optional[dict] = None) -> np.ndarray:
    """The target expression: ``expression`` (weights by the model's shape order), else
    ``controls`` (the face's AU rig controls, what Blender's drivers make of them), else ``aus``,
    else the photo's own fitted expression."""
    model = face.model
    if expression is not None:
        if len(expression) != model.n_expressions:
            raise ValueError(f"expression has {len(expression)} weights; the model has {model.n_expressions}")
        return np.clip(np.asarray(expression, np.float64), 0.0, 1.0)
    if controls is not None:
        # the shapes no control drives keep the photo's weights in Blender's scene: so here too
        return emotions.weights_from_controls(emotions.au_rig(model), model.expression_names, controls,
                                              undriven=np.asarray(face.rec.fit.expression, np.float64))
    if aus:
        return facs.weights_from_aus(model, aus)
    return np.asarray(face.rec.fit.expression, np.float64)


def complete(folder: Path, files) -> bool:
    """Every named file of an earlier request is still there (its side file can be reused)."""
    return all((folder / f).is_file() for f in files)


def _cached(folder: Path, tag: str, sizes) -> Optional[DetailInfo]:
    if not (folder / detail_sidecar(tag)).is_file():
        return None
    info = DetailInfo.load(folder, tag)
    if all(str(s) in info.files for s in sizes) and complete(folder, (info.files[str(s)] for s in sizes)):
        return info
    return None


def build_details(job_dir: str, expression: list[float] | None = None, aus: dict | None = None,
                  age: float | None = None, sizes=SIZES, seed: int = 0, job: Job | None = None,
                  detail_model: str = registry.AUTO_MODEL, controls: dict | None = None) -> DetailInfo:
    """Write detail maps for the target expression (see :func:`target_weights`) made by
    ``detail_model`` (a registry name or AUTO_MODEL); returns their side file."""
    job = job or Job()
    which = registry.resolve(detail_model)
    face = ReconstructedFace.open(job_dir)
    target = target_weights(face, expression, aus, controls)
    years = face.years(age)
    maker = which.open(face, years, seed, job)
    tag = target_tag(target, years, seed, maker.tag_variant, face.rec.source_key())
    cached = _cached(face.folder, tag, sizes)
    if cached is not None:
        job.report(1.0, "Details already made for this expression, age and seed")
        cached.job_dir = str(face.folder.resolve())
        return cached
    t0 = time.perf_counter()

    job.stage(0.0, 0.3).report(0.0, "Extracting the person's detail from the photo")
    face.photo_detail(job)
    job.stage(0.3, 0.9).report(0.0, maker.progress_message)
    total = maker.detail_map(target, max(sizes), job)

    job.stage(0.9, 1.0).report(0.0, "Writing EXR maps")
    files = {}
    for size in sorted(sizes, reverse=True):
        name = detail_map(tag, size)
        exr_io.write_map(face.folder / name, resample(total, size))
        files[str(size)] = name
        job.check()
    model = face.model
    info = DetailInfo(
        tag=tag, files=files, model=maker.made_by, expression=[round(float(x), 4) for x in target],
        aus={k: v for k, v in facs.aus_from_weights(model, target).items() if v > 0},
        age_years=years, seed=seed, vertex_range=list(model.regions["face"][0]), material=SKIN_FACE_MATERIAL,
        stats={"rms_mm": float(np.sqrt(np.mean(total ** 2))), "min_mm": float(total.min()),
               "max_mm": float(total.max()), "seconds": round(time.perf_counter() - t0, 2)},
    )
    info.save(face.folder)
    job.report(1.0, "Details done")
    info.job_dir = str(face.folder.resolve())
    return info
