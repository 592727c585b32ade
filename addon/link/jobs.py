"""Running a reconstruction job: shared by the Import Photo operator and the headless CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

from ...protocol.methods import ReconstructParams
from ...protocol.models import ICT_ARCHIVE, ICT_RELEASE_FOLDER, ICT_RELEASE_NEUTRAL, ict_layout
from . import settings
from .client import BackendError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class InputError(Exception):
    """Bad input found before the backend is asked: message says what to do."""


def check_inputs(image: str, model_dir: str, reference_dir: str = "") -> None:
    """``model_dir``: the default model's folder, or a Basel Face Model file; a BFM also needs
    ``reference_dir``, the default model's folder it is registered to."""
    p = Path(image)
    if not image or not p.is_file():
        raise InputError(f"No photo at '{image}'. Choose an existing image file.")
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(f"'{p.name}' is not a supported photo type. Use one of: "
                         + ", ".join(IMAGE_EXTENSIONS))
    if not model_dir:
        raise InputError("No face model folder is set. Set 'Model folder' in Preferences > Add-ons > "
                         "FaceDet3D (headless: --model-dir or FACEDET3D_MODEL_DIR) to the folder holding "
                         "ict_facekit_light.npz, or, with 'Face model' on a Basel Face Model, set its file.")
    if Path(model_dir).is_file():
        if Path(model_dir).suffix.lower() not in settings.BFM_SUFFIXES:
            raise InputError(f"'{Path(model_dir).name}' is not a Basel Face Model file. Choose 01_MorphableModel.mat "
                             "(BFM 2009) or model2017-1_*.h5 (BFM 2017) in Preferences > Add-ons > FaceDet3D, or "
                             "switch 'Face model' back to Default.")
        if not reference_dir or not Path(reference_dir).is_dir():
            raise InputError("A Basel Face Model is registered to the default model, whose folder is not set. Set "
                             "'Model folder' in Preferences > Add-ons > FaceDet3D to the folder holding "
                             "ict_facekit_light.npz.")
        return
    if Path(model_dir).suffix.lower() in settings.BFM_SUFFIXES:
        raise InputError(f"The Basel Face Model file '{model_dir}' does not exist. Fix the BFM file in "
                         "Preferences > Add-ons > FaceDet3D (headless: --model-dir).")
    if not Path(model_dir).is_dir():
        raise InputError(f"The model folder '{model_dir}' does not exist. Fix 'Model folder' in "
                         "Preferences > Add-ons > FaceDet3D (headless: --model-dir or FACEDET3D_MODEL_DIR).")
    if ict_layout(model_dir) is None:
        raise InputError(f"The model folder '{model_dir}' holds neither ICT-FaceKit Light's {ICT_ARCHIVE} nor its "
                         f"release ({ICT_RELEASE_NEUTRAL} and the other OBJs, in the folder or its "
                         f"{ICT_RELEASE_FOLDER}/). Point 'Model folder' in Preferences > Add-ons > FaceDet3D at a "
                         "download or checkout of the ICT-FaceKit release.")


def reconstruct_params(image: str, job_dir: Path, model_dir: str, options: dict | None = None) -> ReconstructParams:
    return ReconstructParams(image=str(Path(image).resolve()), out_dir=str(job_dir), model_dir=model_dir,
                             options=options or {})


def discard(job_dir: Path) -> None:
    """Remove a job folder whose job failed: nothing half-made is left behind."""
    if job_dir.is_dir():
        shutil.rmtree(job_dir, ignore_errors=True)


def describe(exc: BaseException) -> str:
    if isinstance(exc, BackendError):
        if not hasattr(exc, "message"):
            return str(exc)
        hint = getattr(exc, "hint", "")
        # backend messages are clauses without a full stop ("... are not installed in DIR")
        sep = " " if exc.message.rstrip().endswith((".", "!", "?", ":")) else ". "
        return f"{exc.message.rstrip()}{sep}{hint}" if hint else exc.message
    return str(exc)


__all__ = ["InputError", "check_inputs", "reconstruct_params", "discard", "describe", "settings"]
