"""Where converted face models are kept (a Basel Face Model file, the ICT-FaceKit release's OBJs):
``$FACEDET3D_CACHE_DIR/models`` (the add-on sets it to its extension user folder), else
``$XDG_CACHE_HOME/facedet3d/models``, else ``~/.cache/facedet3d/models``."""

from __future__ import annotations

import os
from pathlib import Path


def stat_key(p: Path) -> str:
    """A file as a cache key sees it: where it is, its size and modification time."""
    st = p.stat()
    return f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def cache_dir() -> Path:
    env = os.environ.get("FACEDET3D_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facedet3d" / "models"
