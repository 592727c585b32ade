"""Displacement maps as OpenEXR: one half-float channel, ZIP-compressed.

Row order: our arrays hold row 0 = v=1 (the top of the UV tile), as textures do. EXR stores
scanlines top-down and Blender reads the first scanline as the top row (v=1), so the array
is written as it is; an array in Blender's pixel order (row 0 = v=0, as ``Image.pixels``
gives it) must be flipped first. ZIP, never ZSTD: Blender cannot read ZSTD EXRs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenEXR

CHANNEL = "Y"  # single-channel luminance: Blender reads it as grey in R, G and B
UNIT_ATTRIBUTE = "facedet3dUnit"
CONVENTION = "displacement along the smooth proxy normal, mm, 0 = proxy surface, + outward"


def write_map(path: str | os.PathLike, values: np.ndarray, unit: str = "mm") -> Path:
    """Write a (H, W) map as half-float ZIP EXR, atomically (tmp + rename)."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValueError(f"a detail map is 2-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("a detail map must be finite everywhere")
    half = np.ascontiguousarray(arr.astype(np.float16))
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp.exr")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              UNIT_ATTRIBUTE: unit, "comments": CONVENTION}
    with OpenEXR.File(header, {CHANNEL: half}) as f:
        f.write(str(tmp))
    os.replace(tmp, p)
    return p


def read_map(path: str | os.PathLike) -> np.ndarray:
    """A map written by :func:`write_map` (or any one-channel EXR) as float32, row 0 = v=1."""
    with OpenEXR.File(str(path)) as f:
        chans = f.channels()
        name = CHANNEL if CHANNEL in chans else next(iter(chans))
        return np.asarray(chans[name].pixels, np.float32)
