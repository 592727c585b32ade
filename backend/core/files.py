"""Writing a job folder's files atomically (temporary name, then rename).

A crash or a cancel never leaves a file that looks complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from protocol.jsonfile import write_atomic as atomic_json  # noqa: F401 - one JSON writer for both sides


def atomic_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
