"""Writing a job folder's array files atomically (temporary name, then rename), so a crash or a
cancel never leaves a file that looks complete. JSON files: ``protocol.jsonfile.write_atomic``,
shared with the Blender side; EXR maps: ``exr_io``; PNGs: ``image_io``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def atomic_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
