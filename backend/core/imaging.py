"""Small image and map helpers every stage uses: one home, so a resampling rule is written once.

Maps are square (S, S[, C]) arrays in the UV convention (row 0 = v = 1); texel centres sit at
``(i + 0.5) / S``. ``resize_bilinear`` is the texel-centre-aligned resize used wherever a smooth
field (thickness, distance, noise) changes size; ``resample`` is how the project reduces and
enlarges detail *maps* (area average down, cubic up); ``block_reduce`` / ``block_upsample`` and
``upsample2`` are the coarse-grid tricks of wide blurs and the pull-push fill.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage, sparse

LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 luminance of linear RGB


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 below e0, 1 above e1, the cubic Hermite ramp between."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 (or float 0..1) sRGB -> float32 linear (IEC 61966-2-1)."""
    x = np.asarray(rgb)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear float (0..1) -> sRGB float 0..1 (IEC 61966-2-1), the inverse of srgb_to_linear."""
    x = np.clip(np.asarray(x, np.float64), 0.0, None)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _axis(n: int, size: int):
    c = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
    i0 = np.floor(c).astype(np.int64)
    return i0, np.minimum(i0 + 1, n - 1), (c - i0).astype(np.float32)


def _axis_matrix(n: int, size: int) -> sparse.csr_matrix:
    """:func:`_axis` as a (size, n) interpolation matrix."""
    i0, i1, f = _axis(n, size)
    r = np.arange(size)
    return sparse.csr_matrix((np.concatenate([1 - f, f]), (np.concatenate([r, r]), np.concatenate([i0, i1]))),
                             shape=(size, n), dtype=np.float32)


def resize_bilinear(a: np.ndarray, size: int) -> np.ndarray:
    """Resample a square (n, n[, k]) grid to (size, size[, k]) with texel centres aligned,
    edges clamped (separable linear interpolation), float32."""
    n = a.shape[0]
    if n == size:
        return np.asarray(a, np.float32).copy()
    a = np.asarray(a, np.float32)
    if a.ndim == 2:
        # as two sparse products (two weights per output row), which beats gathering
        # 2 x size² texels by index: a 4096² upsample ~0.12 s instead of 0.2-0.4 s; same values
        w = _axis_matrix(n, size)
        return np.ascontiguousarray(np.asarray(w @ np.asarray(w @ a, np.float32).T, np.float32).T)
    i0, i1, f = _axis(n, size)
    shp = (-1,) + (1,) * (a.ndim - 1)
    tmp = a[i0] * (1 - f).reshape(shp) + a[i1] * f.reshape(shp)
    shp2 = (1, -1) + (1,) * (a.ndim - 2)
    return (tmp[:, i0] * (1 - f).reshape(shp2) + tmp[:, i1] * f.reshape(shp2)).astype(np.float32)


def resize_bilinear_rows(a: np.ndarray, r0: int, r1: int, size: int) -> np.ndarray:
    """Rows r0..r1 of :func:`resize_bilinear` (a, size) of a 2-D grid, without making the whole map."""
    n = a.shape[0]
    cr = np.clip((np.arange(r0, r1) + 0.5) * (n / size) - 0.5, 0, n - 1)
    i0 = np.floor(cr).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = (cr - i0).astype(np.float32)[:, None]
    rows = np.asarray(a[i0], np.float32) * (1 - f) + np.asarray(a[i1], np.float32) * f  # (k, n)
    j0, j1, g = _axis(n, size)
    return rows[:, j0] * (1 - g[None, :]) + rows[:, j1] * g[None, :]


def resample(m: np.ndarray, size: int) -> np.ndarray:
    """A detail map at another size: area average down by an integer factor, cubic otherwise
    (row 0 stays v = 1)."""
    n = m.shape[0]
    if n == size:
        return m.astype(np.float32)
    if n > size and n % size == 0:
        k = n // size
        return m.reshape(size, k, size, k).mean(axis=(1, 3)).astype(np.float32)
    return ndimage.zoom(m, size / n, order=3, mode="nearest").astype(np.float32)


def block_reduce(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks of (S,S,...) (edge-padded to a multiple of k)."""
    h, w = a.shape[:2]
    pad = [(0, (-h) % k), (0, (-w) % k)] + [(0, 0)] * (a.ndim - 2)
    b = np.pad(a, pad, mode="edge")
    return b.reshape((b.shape[0] // k, k, b.shape[1] // k, k) + b.shape[2:]).mean(axis=(1, 3))


def block_upsample(a: np.ndarray, k: int, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """Back from a k-times coarser grid (block centres at k*i + (k-1)/2) to ``shape``, float32."""
    if k == 1:
        return a.astype(np.float32)
    ry = (np.arange(shape[0]) - (k - 1) / 2.0) / k
    rx = (np.arange(shape[1]) - (k - 1) / 2.0) / k
    gy, gx = np.meshgrid(ry, rx, indexing="ij")
    chans = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]
    out = [ndimage.map_coordinates(np.asarray(c, np.float64), [gy, gx], order=order, mode="nearest")
           for c in chans]
    return (out[0] if a.ndim == 2 else np.stack(out, axis=-1)).astype(np.float32)


def upsample2(c: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Exact bilinear 2x upsampling of an (H, W[, C]) image (texel centres aligned, edges clamped),
    cropped to ``shape``, float32: a pull-push pyramid's step. OpenCV's INTER_LINEAR is this
    filter (weights 0.75 / 0.25, border replicated; equal to the plain-slicing version it
    replaced within 2e-7) and runs 20x faster on a 2048² RGB tile (10 vs 215 ms, measured):
    numpy's strided even/odd writes were the pull-push fill's main cost."""
    a = np.ascontiguousarray(c, np.float32)
    h, w = a.shape[:2]
    out = cv2.resize(a, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    if a.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel's axis
        out = out[..., None]
    return out[: shape[0], : shape[1]]


def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise, unit standard deviation, float32."""
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = ndimage.gaussian_filter(n, sigma, mode="wrap")
    s = float(n.std())
    return n / (s if s > 0 else 1.0)
