"""Which morphable model a folder or file is, loaded (the one entry point every stage uses)."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import ModelNotFoundError
from .bfm.convert import load_bfm_model
from .ict import default_model_dir, load_ict_facekit
from .morphable import MorphableModel


def load_model(folder: str | os.PathLike | None = None, reference: str | os.PathLike | None = None,
               job=None) -> MorphableModel:
    """The model at ``folder``: a default-model folder, or a Basel Face Model file (.mat / .h5),
    converted on first use with the default model in ``reference`` (None: the default folder)
    and cached (see :mod:`backend.models.bfm.convert`)."""
    if not folder:
        folder = default_model_dir()
        if folder is None:
            raise ModelNotFoundError(
                "No model folder is configured.",
                "Set the model folder in the add-on preferences (or --model-dir / FACEDET3D_MODEL_DIR).",
            )
    if Path(folder).expanduser().is_file():
        return load_bfm_model(folder, reference, job)
    return load_ict_facekit(folder, job)
