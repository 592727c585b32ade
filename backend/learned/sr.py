"""RCAN ×4 on detail maps, at inference: tiled, so memory is bounded by a tile, not by the map.
Training and its metrics live in ``train/rcan.py``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.imaging import block_reduce
from .nets import RCAN

SCALE = 4


def downsample(hr: np.ndarray) -> np.ndarray:
    """4× area average (the project's map reduction)."""
    n = hr.shape[-1] // SCALE
    return hr.reshape(*hr.shape[:-2], n, SCALE, n, SCALE).mean(axis=(-3, -1))


@torch.no_grad()
def upscale(net: RCAN, m: np.ndarray, tile: int = 256, overlap: int = 32, job=None) -> np.ndarray:
    """×4 of a (N, N) map in tiles of ``tile``² input texels, memory bounded by one tile. Each
    output texel comes from a tile in which it lies at least ``overlap`` texels from a cut edge,
    beyond the reach of the convolutions (about 30 input texels: 30 stacked 3×3 layers at input
    resolution); what still depends on the tiling is channel
    attention, a mean over the whole tile (tests bound the difference to the untiled map)."""
    dev = next(net.parameters()).device
    n = m.shape[0]
    out = np.empty((n * SCALE, n * SCALE), np.float32)
    src = torch.from_numpy(np.ascontiguousarray(m, np.float32))[None, None].to(dev)
    step = max(tile - 2 * overlap, 1) if n > tile else n
    starts = list(range(0, n, step))
    total = len(starts) ** 2
    for a, y0 in enumerate(starts):
        for b, x0 in enumerate(starts):
            # the core this tile writes, and the padded window it reads
            cy1, cx1 = min(y0 + step, n), min(x0 + step, n)
            wy0, wx0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
            wy1, wx1 = min(cy1 + overlap, n), min(cx1 + overlap, n)
            res = net(src[..., wy0:wy1, wx0:wx1])[0, 0].cpu().numpy()
            oy, ox = (y0 - wy0) * SCALE, (x0 - wx0) * SCALE
            out[y0 * SCALE:cy1 * SCALE, x0 * SCALE:cx1 * SCALE] = \
                res[oy:oy + (cy1 - y0) * SCALE, ox:ox + (cx1 - x0) * SCALE]
            if job is not None:
                job.report((a * len(starts) + b + 1) / total, f"Super-resolving {n}² → {n * SCALE}²")
    return out


def upsample_with_fine(m: np.ndarray, size: int, fine: np.ndarray | None = None) -> np.ndarray:
    """(n, n) -> (size, size) bicubically, plus what ``fine`` (size², texel-scale relief) holds
    finer than the n² grid: ``bicubic(m - area(fine)) + fine``, one upsample."""
    n = m.shape[0]
    if fine is not None:
        if size % n:
            raise ValueError(f"fine relief needs a size that is a multiple of {n}, got {size}")
        fine = np.asarray(fine, np.float32)
        m = m - block_reduce(fine, size // n)
    up = F.interpolate(torch.from_numpy(np.ascontiguousarray(m, np.float32))[None, None], size=(size, size),
                       mode="bicubic", align_corners=False)[0, 0].numpy()
    return up + fine if fine is not None else up
