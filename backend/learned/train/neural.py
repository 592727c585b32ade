"""The generic neural renderer over a folder of photos (``python -m backend train-neural``): a
development and data-owner's tool, like the other trainers (the extension leaves it out); each
person's own training is ``backend.learned.neural.training``."""

from __future__ import annotations

import os
from pathlib import Path

from protocol import job as job_files

from ...reconstruct.pipeline import reconstruct
from .. import weights as weights_io
from ..neural import frame
from ..neural.subject import prepare
from ..neural.training import NeuralTrainConfig, train


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def photo_folder(folder: str | os.PathLike) -> list[Path]:
    """The photos of a generic training folder: ``*.jpg``, ``*.jpeg``, ``*.png`` directly in it,
    one person's face each (the largest face is used), any size the reconstruction accepts."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}: give a folder of photos (one face each, .jpg or .png)")
    photos = sorted(p for p in root.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise FileNotFoundError(f"no .jpg or .png photos in {root}")
    return photos


def train_generic(photos_dir, out_dir, steps: int = 4000, prepare_only: bool = False, log=print,
                  expression: float = 0.1) -> dict:
    """The generic renderer over a folder of photos (``python -m backend train-neural``): each photo
    reconstructed into ``<out>/jobs/<stem>`` once (resumable; failures listed and skipped), its views
    prepared, then one renderer trained on all (torchrun: the ranks split each step's subjects).
    Reconstruct first without torchrun (``prepare_only``): every rank prepares the views itself.
    ``expression``: the expression adversarial loss's weight (each photo's AU readout its target)."""
    out = Path(out_dir)
    jobs = out / "jobs"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ready, failed = [], {}
    for p in photo_folder(photos_dir):
        jd = jobs / p.stem
        if not (jd / job_files.FACE_JSON).is_file():
            if world > 1:
                raise ValueError(f"{p.name} is not reconstructed yet: run train-neural once with --prepare-only "
                                 "(without torchrun), then train under torchrun")
            try:
                reconstruct(str(p), str(jd))
            except Exception as exc:  # a photo without a usable face: listed, the others train
                failed[p.name] = str(exc)
                log(f"skipped {p.name}: {exc}")
                continue
        ready.append(jd)
    if not ready:
        raise ValueError(f"none of the photos in {photos_dir} could be reconstructed")
    if prepare_only:
        return {"reconstructed": len(ready), "failed": failed}
    subjects = []
    for jd in ready:
        subjects.append(prepare(jd))
        log(f"prepared {jd.name}")
    R, _, last = train(subjects, NeuralTrainConfig(steps=steps, expression=expression), out_dir=out / "run", log=log)
    info = {"name": f"neural-{out.name}", "data": {"photos": len(subjects), "folder": str(photos_dir),
                                                   "failed": failed}, "steps": steps, "expression_loss": expression,
            "last_losses": last}
    if int(os.environ.get("RANK", "0")) == 0:
        weights_io.export(R, "neural", out / "neural.safetensors", info, nets=frame.NETS)
    return info
