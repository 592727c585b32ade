"""Writing a job folder's array files atomically (temporary name, then rename), so a crash or a
cancel never leaves a file that looks complete. JSON files: ``protocol.jsonfile.write_atomic``,
shared with the Blender side; EXR maps: ``exr_io``; PNGs: ``image_io``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, read in chunks (model files are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def atomic_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
