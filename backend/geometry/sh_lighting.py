"""Second-order spherical-harmonic (SH) lighting of a Lambertian surface.

Distant lighting seen by a convex Lambertian surface is, to within a few percent, a
quadratic function of the surface normal (Ramamoorthi & Hanrahan 2001): the irradiance is
``E(n) = sum_k l_k Y_k(n)`` over the 9 real SH basis functions of degree <= 2. The
clamped-cosine convolution (pi, 2pi/3, pi/4 per band) is folded into the coefficients
``l``, so they are fitted directly; a colour ``I = albedo * E(n)`` per channel. This is the
lighting model of the 3DMM-fitting literature (DECA, FaceDet3D) and the one
:mod:`backend.detail.photo` inverts and the backend's own renders (:mod:`backend.reconstruct.render`) use.

Normals are unit vectors in the frame the lighting is expressed in (photo_detail uses the
camera-facing frame: x image right, y image up, z towards the camera).
"""

from __future__ import annotations

import numpy as np

# Normalisation constants of the real SH basis Y_00, Y_1m, Y_2m.
C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
C2 = 1.0925484305920792  # sqrt(15 / (4 pi))
C3 = 0.31539156525252005  # sqrt(5 / (16 pi))
C4 = 0.5462742152960396  # sqrt(15 / (16 pi))

# Order: 1, y, z, x, xy, yz, 3z^2 - 1, xz, x^2 - y^2 (the usual l, m ordering).
NAMES = ("1", "y", "z", "x", "xy", "yz", "3z2-1", "xz", "x2-y2")


def sh_basis(n: np.ndarray) -> np.ndarray:
    """The 9 basis functions at unit normals ``n`` (..., 3) -> (..., 9)."""
    n = np.asarray(n)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    one = np.ones_like(x)
    return np.stack([C0 * one, C1 * y, C1 * z, C1 * x, C2 * x * y, C2 * y * z,
                     C3 * (3.0 * z * z - 1.0), C2 * x * z, C4 * (x * x - y * y)], axis=-1)


def sh_basis_gradient(n: np.ndarray) -> np.ndarray:
    """d Y_k / d n at ``n`` (..., 3) -> (..., 9, 3). Only the component tangent to the unit
    sphere is meaningful (the basis is extended off the sphere by its polynomial form); callers
    project it onto the surface's tangent plane."""
    n = np.asarray(n)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    zero = np.zeros_like(x)
    c1 = C1 * np.ones_like(x)
    rows = [
        (zero, zero, zero),
        (zero, c1, zero),
        (zero, zero, c1),
        (c1, zero, zero),
        (C2 * y, C2 * x, zero),
        (zero, C2 * z, C2 * y),
        (zero, zero, 6.0 * C3 * z),
        (C2 * z, zero, C2 * x),
        (2.0 * C4 * x, -2.0 * C4 * y, zero),
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def shade(n: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """Irradiance at normals ``n`` (..., 3) for coefficients ``sh`` (9,) or (9, C) -> (...) or (..., C)."""
    return sh_basis(n) @ np.asarray(sh)


def shade_gradient(n: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """d irradiance / d n (..., 3) for ``sh`` (9,), or (..., C, 3) for ``sh`` (9, C)."""
    g = sh_basis_gradient(n)  # (..., 9, 3)
    sh = np.asarray(sh)
    if sh.ndim == 1:
        return np.einsum("...kd,k->...d", g, sh)
    return np.einsum("...kd,kc->...cd", g, sh)


def fibonacci_sphere(n: int = 2000) -> np.ndarray:
    """``n`` nearly even unit directions (a Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    phi = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def in_frame(sh: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The coefficients of ``sh`` re-expressed in another frame: ``shade(d, out) == shade(d @
    rotation.T, sh)`` for unit ``d`` (``rotation`` takes the new frame's directions to the old's).
    Exact by least squares on even directions: a rotation keeps each SH band."""
    d = fibonacci_sphere()
    values = shade(d @ np.asarray(rotation, np.float64).T, np.asarray(sh, np.float64))
    out, *_ = np.linalg.lstsq(sh_basis(d), values, rcond=None)
    return out


def directional_sh(direction, intensity: float = 1.0, ambient: float = 0.0) -> np.ndarray:
    """SH coefficients (9,) of a distant directional light of irradiance ``intensity`` on a
    surface facing it (clamped cosine, projected to degree 2), plus a uniform ``ambient``
    irradiance. For tests and defaults: ``shade(n, directional_sh(d))`` ~ max(n . d, 0)."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    # Clamped cosine in SH: E(n) = sum A_l Y_lm(d) Y_lm(n), A_0 = pi, A_1 = 2pi/3, A_2 = pi/4
    # (Ramamoorthi & Hanrahan 2001); E(d) = 1.0625, E(-d) = -0.0625 (ringing of the cut-off).
    a = np.pi * np.array([1.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 0.25, 0.25, 0.25, 0.25, 0.25])
    coef = intensity * a * sh_basis(d)
    coef[0] += ambient / C0
    return coef


# The camera-facing frame lighting is expressed in (x image right, y image up, z towards the
# camera), from the camera's OpenCV frame: ``CAMERA_FACING @ camera.rotation`` takes model
# directions into it.
CAMERA_FACING = np.diag([1.0, -1.0, -1.0])


def camera_light(direction_cam, camera_rotation: np.ndarray, intensity: float = 1.0,
                 ambient: float = 0.0) -> np.ndarray:
    """:func:`directional_sh` of a light given in the camera-facing frame (a key "above the
    camera"), expressed in the model frame of a camera with rotation ``camera_rotation``."""
    to_cam = CAMERA_FACING @ np.asarray(camera_rotation, np.float64)
    d = np.asarray(direction_cam, np.float64)
    return directional_sh(to_cam.T @ (d / np.linalg.norm(d)), intensity, ambient=ambient)


def fit_sh(normals: np.ndarray, values: np.ndarray, scale: np.ndarray | None = None,
           weights: np.ndarray | None = None, iterations: int = 6,
           ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Robust least squares for ``values ~ scale * shade(normals, sh)`` (one channel).

    ``normals`` (N,3), ``values`` (N,), ``scale`` (N,) a known per-sample factor (the albedo)
    or None, ``weights`` (N,) prior confidences. Iteratively reweighted with Tukey's biweight
    on residuals relative to the prediction, at 4.685 robust sigmas (MAD): hair strands,
    specular highlights and cast shadows the proxy cannot explain are outliers to this model,
    not noise. Returns (sh (9,), final weights (N,) = prior * robust weight).
    """
    a = sh_basis(np.asarray(normals, np.float64))
    v = np.asarray(values, np.float64)
    if scale is not None:
        a = a * np.asarray(scale, np.float64)[:, None]
    w0 = np.ones(len(v)) if weights is None else np.asarray(weights, np.float64)
    w = w0.copy()
    sh = np.zeros(9)
    # ridge relative to the data's own energy, so it only guards near-singular designs
    for _ in range(max(iterations, 1)):
        aw = a * w[:, None]
        m = aw.T @ a
        m += ridge * np.trace(m) / 9.0 * np.eye(9)
        sh = np.linalg.solve(m, aw.T @ v)
        pred = a @ sh
        rel = (v - pred) / np.maximum(np.abs(pred), 1e-3 * max(float(np.median(np.abs(v))), 1e-9))
        sel = w0 > 0
        sigma = 1.4826 * float(np.median(np.abs(rel[sel] - np.median(rel[sel])))) if sel.any() else 0.0
        sigma = max(sigma, 1e-3)  # clean synthetic data: do not reject on rounding noise
        t = rel / (4.685 * sigma)
        w = w0 * np.where(np.abs(t) < 1.0, (1.0 - t * t) ** 2, 0.0)
    return sh, w
