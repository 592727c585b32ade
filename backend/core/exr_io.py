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

from protocol.atomic import replacing

from .errors import DamagedFileError

CHANNEL = "Y"  # single-channel luminance: Blender reads it as grey in R, G and B
PACK_CHANNELS = ("R", "G", "B")  # packs of three maps (per-AU wrinkle maps)
UNIT_ATTRIBUTE = "facedet3dUnit"
CONVENTION = "displacement along the smooth proxy normal, mm, 0 = proxy surface, + outward"


def write_map(path: str | os.PathLike, values: np.ndarray, unit: str = "mm") -> Path:
    """Write a (H, W) map as half-float ZIP EXR, atomically (tmp + rename)."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValueError(f"a detail map is 2-D, got shape {arr.shape}")
    return _write(path, {CHANNEL: arr}, unit)


def write_channels(path: str | os.PathLike, maps: list[np.ndarray], unit: str = "mm") -> Path:
    """Up to three (H, W) maps packed into one EXR's R, G, B channels (a missing one is 0),
    half-float ZIP, atomically. Blender samples the three at once from one image."""
    if not 1 <= len(maps) <= 3:
        raise ValueError(f"an RGB pack holds 1 to 3 maps, got {len(maps)}")
    arrs = [np.asarray(m) for m in maps]
    if any(a.ndim != 2 or a.shape != arrs[0].shape for a in arrs):
        raise ValueError("packed maps must be 2-D and the same size")
    arrs += [np.zeros_like(arrs[0])] * (3 - len(arrs))
    return _write(path, dict(zip(PACK_CHANNELS, arrs)), unit)


def _write(path, channels: dict[str, np.ndarray], unit: str) -> Path:
    for a in channels.values():
        if not np.isfinite(a).all():
            raise ValueError("a detail map must be finite everywhere")
    half = {k: np.ascontiguousarray(np.asarray(a).astype(np.float16)) for k, a in channels.items()}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              UNIT_ATTRIBUTE: unit, "comments": CONVENTION}
    with replacing(path, ".tmp.exr") as tmp, OpenEXR.File(header, half) as f:
        f.write(str(tmp))
    return Path(path)


def _channels(path) -> dict:
    try:
        with OpenEXR.File(str(path)) as f:
            return {k: np.asarray(c.pixels, np.float32) for k, c in f.channels().items()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # the OpenEXR module raises RuntimeError/OSError for a damaged file
        raise DamagedFileError(f"{path} is not a readable EXR map ({exc})",
                               "Delete it so it is made again (or rebuild the details).") from exc


def _finite(path, m: np.ndarray) -> np.ndarray:
    bad = int(np.count_nonzero(~np.isfinite(m)))
    if bad:
        raise DamagedFileError(f"{path} holds {bad} NaN or infinite values of {m.size}",
                               "Delete it so it is made again (or rebuild the details); maps hold millimetres.")
    return m


def read_channels(path: str | os.PathLike) -> list[np.ndarray]:
    """The R, G, B maps of a pack written by :func:`write_channels`, float32, row 0 = v=1;
    a damaged file or one holding NaN raises :class:`DamagedFileError` naming it."""
    chans = _channels(path)
    if "RGB" in chans:  # the OpenEXR module groups R, G, B into one (H, W, 3) array
        rgb = _finite(path, chans["RGB"])
        return [rgb[..., i] for i in range(3)]
    missing = [c for c in PACK_CHANNELS if c not in chans]
    if missing:
        raise DamagedFileError(f"{path} is not an RGB map pack (no {', '.join(missing)} channel)",
                               "Delete it so it is made again.")
    return [_finite(path, chans[c]) for c in PACK_CHANNELS]


def read_map(path: str | os.PathLike) -> np.ndarray:
    """A map written by :func:`write_map` (or any one-channel EXR) as float32, row 0 = v=1; a
    damaged file or one holding NaN raises :class:`DamagedFileError` naming it."""
    chans = _channels(path)
    if not chans:
        raise DamagedFileError(f"{path} has no channels", "Delete it so it is made again.")
    return _finite(path, chans[CHANNEL] if CHANNEL in chans else next(iter(chans.values())))
