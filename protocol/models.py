"""The default face model's files, as both sides look for them (the add-on checks a folder the
user picks; the backend loads it).

ICT-FaceKit Light comes two ways: the repacked archive (``ict_facekit_light.npz``, one file, see
the model folder's DATA_CARD.md) or the public release's folder of OBJ files
(``FaceXModel/`` of the ICT-FaceKit repository), which the backend converts once and caches.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

ICT_ARCHIVE = "ict_facekit_light.npz"
ICT_RELEASE_NEUTRAL = "generic_neutral_mesh.obj"
ICT_RELEASE_FOLDER = "FaceXModel"  # where the release repository keeps the model's OBJs
VERTEX_INDICES = "vertex_indices.json"
# where `python -m backend fetch-model` (scripts/setup.sh on a clone without a model) puts the
# release, relative to the extension root (ignored by git and left out of the extension zip)
FETCHED_MODEL = Path(".models") / "ict-facekit"


def default_model_folder(root: str | os.PathLike) -> Optional[Path]:
    """The default model folder of an extension root when none is configured: a development
    checkout's ``../shared/models/ict-facekit``, else the release fetched into ``.models/``."""
    r = Path(root)
    for cand in (r.parent / "shared" / "models" / "ict-facekit", r / FETCHED_MODEL):
        if cand.is_dir():
            return cand
    return None


def ict_layout(folder: str | os.PathLike) -> Optional[tuple[str, Path]]:
    """("archive", folder) when ``folder`` holds the repacked archive; ("release", the OBJ folder)
    when it is the release's model folder or a checkout of the release repository; else None."""
    f = Path(folder).expanduser()
    if (f / ICT_ARCHIVE).is_file():
        return "archive", f
    for cand in (f, f / ICT_RELEASE_FOLDER):
        if (cand / ICT_RELEASE_NEUTRAL).is_file():
            return "release", cand
    return None
