"""Where things are: the backend interpreter, the model folder, the cache and job folders.

Preferences win; empty preferences fall back to environment variables and then to the
layout of a development checkout (``.venv-backend`` in the repository, the model in
``../shared/models/ict-facekit``). Nothing here imports bpy, so headless tools share it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ...protocol.models import default_model_folder

EXTENSION_ROOT = Path(__file__).resolve().parents[2]  # holds backend/ and protocol/
ADDON_ID = __package__.rsplit(".", 2)[0]  # the extension's own package name (root of addon.link)


def _resolve(pref: str, env_var: str, fallback: Path) -> str:
    """The preference if set, else the environment variable, else the checkout's default."""
    if pref:
        return os.path.abspath(os.path.expanduser(pref))
    return os.environ.get(env_var) or str(fallback)


def backend_python(pref: str = "") -> str:
    exe = "Scripts/python.exe" if sys.platform == "win32" else "bin/python"
    return _resolve(pref, "FACEDET3D_BACKEND_PYTHON", EXTENSION_ROOT / ".venv-backend" / exe)


def model_dir(pref: str = "") -> str:
    """'' when nothing is configured and no model is beside us (a checkout's, or one fetched
    into .models/): callers say so."""
    if pref or os.environ.get("FACEDET3D_MODEL_DIR"):
        return _resolve(pref, "FACEDET3D_MODEL_DIR", EXTENSION_ROOT)
    found = default_model_folder(EXTENSION_ROOT)
    return str(found) if found is not None else ""


MODEL_CHOICES = (
    ("DEFAULT", "Default (ICT-FaceKit Light)", "The open default model, from the model folder"),
    ("BFM2009", "Basel Face Model 2009", "Your 01_MorphableModel.mat (converted once, then cached)"),
    ("BFM2017", "Basel Face Model 2017", "Your model2017-1_*.h5 (converted once, then cached)"),
)
BFM_SUFFIXES = (".mat", ".h5", ".hdf5")  # what a Basel Face Model file is named


def face_model(choice: str, default_dir: str, bfm2009_file: str = "", bfm2017_file: str = "") -> str:
    """What the backend loads: the default model's folder, or the chosen BFM file ('' if unset).
    The default model's folder stays the reference a BFM is registered to (see model_dir)."""
    if choice == "BFM2009":
        return os.path.abspath(os.path.expanduser(bfm2009_file)) if bfm2009_file else ""
    if choice == "BFM2017":
        return os.path.abspath(os.path.expanduser(bfm2017_file)) if bfm2017_file else ""
    return default_dir


def slug(name: str) -> str:
    """A folder name from a photo name: keeps letters (any script), digits, - and _."""
    keep = "".join(c if (c.isalnum() or c in "-_") else "_" for c in name).strip("_")
    return keep[:60] or "face"


def unique_dir(parent: Path, stem: str) -> Path:
    """``parent/stem``, or ``parent/stem_2`` … when taken: a new import never overwrites."""
    cand = parent / stem
    i = 2
    while cand.exists():
        cand = parent / f"{stem}_{i}"
        i += 1
    return cand
