"""Blurs on UV tiles: a Gaussian that runs wide kernels on a coarser grid, and normalised convolution
(a weighted local mean that ignores texels without data)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...core.imaging import block_reduce, block_upsample


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (S,S) or (S,S,C) by ``sigma`` texels. Wide kernels run on a
    block-averaged grid (a 1024² tile at sigma 50 would otherwise cost seconds per channel)
    and come back bilinearly: the result is smooth at that scale anyway."""
    a = np.asarray(a, np.float32)
    if sigma <= 0:
        return a
    k = 1
    while sigma / (2 * k) >= 3.0:
        k *= 2
    if k == 1:
        sig = (sigma, sigma) + (0,) * (a.ndim - 2)
        return ndimage.gaussian_filter(a, sig, mode="nearest")
    b = block_reduce(a, k)
    s = np.sqrt(max(sigma * sigma - (k * k - 1) / 12.0, 0.0)) / k  # the box already blurred a bit
    b = ndimage.gaussian_filter(b, (s, s) + (0,) * (a.ndim - 2), mode="nearest")
    return block_upsample(b, k, a.shape[:2])  # block centres sit at k*i + (k-1)/2


def wblur(x: np.ndarray, w: np.ndarray, sigma: float, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: the ``w``-weighted local mean of ``x`` at scale ``sigma``, so
    texels without data (weight 0) neither pull the mean down nor leave holes; also returns
    the blurred weight (how much data backs each value)."""
    w = np.asarray(w, np.float32)
    wx = x * (w[..., None] if x.ndim == 3 else w)
    num = blur(wx, sigma)
    den = blur(w, sigma)
    d = den[..., None] if x.ndim == 3 else den
    return num / np.maximum(d, eps), den
