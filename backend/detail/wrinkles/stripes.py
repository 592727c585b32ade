"""The phase of the wrinkle field: a stripe-pattern solve on a coarse UV grid (Knöppel, Crane,
Pinkall & Schröder 2015) relaxed by Ginzburg-Landau steps, and its phase-exact evaluation at any
texel (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage

from ...core.imaging import smooth_noise
from ..strain import SurfaceMesh, direction_from_dir2, mm_per_uv, texel_grid, triangle_strain, vertex_strain
from .mechanics import SkinParams, Thickness, buckling, thickness_field


@dataclass
class StripeNodes:
    n: int
    valid: np.ndarray  # (n, n) bool: node is in the solve domain
    psi: np.ndarray  # (n, n) complex64
    k: np.ndarray  # (n, n, 2) float32, rad per UV unit (du, dv)
    comp: np.ndarray  # (n, n) float32
    stats: dict


def _wave_vectors(dir_uv: np.ndarray, g: np.ndarray, lam_mm: np.ndarray) -> np.ndarray:
    """k_uv = (2π/λ) G d / sqrt(dᵀ G d) for unit UV directions d (...,2), metric g (...,3) =
    (g_uu, g_uv, g_vv) of the expressed surface (mm² per UV²), λ in mm."""
    du, dv = dir_uv[..., 0], dir_uv[..., 1]
    gd_u = g[..., 0] * du + g[..., 1] * dv
    gd_v = g[..., 1] * du + g[..., 2] * dv
    nrm = np.sqrt(np.maximum(du * gd_u + dv * gd_v, 1e-12))
    s = 2.0 * np.pi / np.maximum(lam_mm, 1e-6) / nrm
    return np.stack([gd_u * s, gd_v * s], -1).astype(np.float32)


def _rotate_in_metric(d: np.ndarray, g: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate UV directions d (...,2) by ``angle`` measured on the surface (metric g (...,3)),
    returning unit UV vectors."""
    gd_u = g[..., 0] * d[..., 0] + g[..., 1] * d[..., 1]
    gd_v = g[..., 1] * d[..., 0] + g[..., 2] * d[..., 1]
    n1 = np.sqrt(np.maximum(d[..., 0] * gd_u + d[..., 1] * gd_v, 1e-12))
    p = np.stack([-gd_v, gd_u], -1)  # G-orthogonal to d
    gp_u = g[..., 0] * p[..., 0] + g[..., 1] * p[..., 1]
    gp_v = g[..., 1] * p[..., 0] + g[..., 2] * p[..., 1]
    n2 = np.sqrt(np.maximum(p[..., 0] * gp_u + p[..., 1] * gp_v, 1e-12))
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    out = c * d / n1[..., None] + s * p / n2[..., None]
    return (out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _assemble(idx: np.ndarray, k: np.ndarray, d: np.ndarray, n: int) -> sp.csc_matrix:
    """Connection Laplacian (2N×2N real) over grid edges between valid nodes ``idx`` (n,n)
    (−1 = not in the domain). Edge i→j: ψ_j ≈ S R(ω) ψ_i, S = conj where d_i·d_j < 0."""
    rows, cols, vals = [], [], []
    N = int(idx.max()) + 1
    diag = np.zeros(N, np.float64)
    for dr, dc in ((0, 1), (1, 0)):  # right and down neighbours
        r0, r1 = slice(0, n - dr), slice(dr, n)
        c0, c1 = slice(0, n - dc), slice(dc, n)
        i = idx[r0, c0]
        j = idx[r1, c1]
        ok = (i >= 0) & (j >= 0)
        if not ok.any():
            continue
        i, j = i[ok], j[ok]
        ki, kj = k[r0, c0][ok].astype(np.float64), k[r1, c1][ok].astype(np.float64)
        di, dj = d[r0, c0][ok], d[r1, c1][ok]
        s = np.where(np.einsum("ij,ij->i", di, dj) >= 0, 1.0, -1.0)
        duv = np.array([dc / n, -dr / n])  # moving +col is +u, +row is -v
        omega = 0.5 * ((ki + s[:, None] * kj) @ duv)
        w = 1.0
        c, sn = np.cos(omega), np.sin(omega)
        # Q = S R, R = [[c, -s], [s, c]], S = diag(1, s)
        q00, q01, q10, q11 = c, -sn, s * sn, s * c
        diag[i] += w
        diag[j] += w
        # A_ji -= w Q, A_ij -= w Q^T
        for (a, b, q) in ((0, 0, q00), (0, 1, q01), (1, 0, q10), (1, 1, q11)):
            rows.append(2 * j + a)
            cols.append(2 * i + b)
            vals.append(-w * q)
            rows.append(2 * i + b)
            cols.append(2 * j + a)
            vals.append(-w * q)
    dr_ = np.repeat(np.arange(N) * 2, 2) + np.tile([0, 1], N)
    rows.append(dr_)
    cols.append(dr_)
    vals.append(np.repeat(diag, 2))
    A = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(2 * N, 2 * N))
    return A.tocsc()


def _node_fields(mesh: SurfaceMesh, deformed: np.ndarray, n: int, thickness: Thickness,
                 params: SkinParams, age: float, job_check):
    """Strain, direction line field, expressed metric and wavelength on the n×n solve grid."""
    grid = texel_grid(mesh, n, job_check)
    vs = vertex_strain(mesh, triangle_strain(mesh, deformed))
    comp = np.zeros(n * n, np.float32)
    comp[grid.flat] = np.clip(grid.interp(mesh, vs.compression), 0.0, None)
    dir2 = np.zeros((n * n, 2), np.float32)
    dir2[grid.flat] = grid.interp(mesh, vs.dir2)
    gdef = np.zeros((n * n, 3), np.float32)
    gdef[grid.flat] = grid.interp(mesh, vs.g_def)
    h = thickness_field(thickness, n, params.default_thickness_mm)
    lam, eps_c, _ = buckling(h, 0.0, params, age)
    return (grid.mask, comp.reshape(n, n), dir2.reshape(n, n, 2), gdef.reshape(n, n, 3),
            lam.astype(np.float32), eps_c)


NODES_PER_WAVELENGTH = 8.0  # solve-grid resolution: nodes per local wavelength (95th percentile)
INVERSE_ITERATIONS = 12  # inverse-iteration steps of the stripe eigenproblem
GL_ITERATIONS = 12  # Ginzburg-Landau relaxation steps after it
GL_SCREEN = 0.02  # μ: healing length ~1/√μ ≈ 7 nodes (about one wavelength)
CREASE_PULL = 0.5  # weight of a full-strength crease node's pull towards φ = π


def solve_stripes(mesh: SurfaceMesh, deformed: np.ndarray, n_max: int, thickness: Thickness,
                   params: SkinParams, age: float, rng: np.random.Generator,
                   crease_fn: Optional[Callable[[int], np.ndarray]],
                   job_check: Optional[Callable[[], None]], irregularity: float = 1.0) -> StripeNodes:
    """Phase field ψ on the solve grid (see the module docstring). The grid is the coarsest
    (≥ 64, ≤ ``n_max``) with NODES_PER_WAVELENGTH nodes per local wavelength over the
    compressed area."""
    n = int(n_max)
    covered, comp, dir2, gdef, lam, eps_c = _node_fields(mesh, deformed, n, thickness, params, age, job_check)
    hot = covered & (comp * params.strain_transfer > 0.9 * eps_c)
    if hot.any():
        # local surface mm per UV unit: (det G)^(1/4)
        mmuv_local = np.sqrt(np.sqrt(np.maximum(gdef[..., 0] * gdef[..., 2] - gdef[..., 1] ** 2, 1e-12)))
        need = float(np.percentile(mmuv_local[hot] / lam[hot], 95)) * NODES_PER_WAVELENGTH
        n_new = int(np.clip(16 * math.ceil(need / 16.0), 64, n_max))
        if n_new < n:
            n = n_new
            covered, comp, dir2, gdef, lam, eps_c = _node_fields(mesh, deformed, n, thickness, params, age,
                                                                  job_check)
    crease = crease_fn(n) if crease_fn is not None else None

    # seeded irregularity: direction (±5° on the surface) and wavelength (±6 %) jitter,
    # correlated over ~1.5 wavelengths (faster changes would only tear the stripes apart)
    mm_node = mm_per_uv(mesh) / n
    lam_med = float(np.median(lam[covered])) if covered.any() else float(np.median(lam))
    sig = max(1.5 * lam_med / mm_node, 1.0)
    dtheta = np.deg2rad(5.0) * irregularity * smooth_noise((n, n), sig, rng)
    lam = lam * (1.0 + 0.06 * irregularity * smooth_noise((n, n), sig, rng))
    d = _rotate_in_metric(direction_from_dir2(dir2), gdef, dtheta)
    k = _wave_vectors(d, gdef, lam)

    eps = comp * params.strain_transfer
    active = covered & (eps > 0.7 * eps_c)
    if crease is not None:
        active |= covered & (crease > 0) & (eps > 0.3 * eps_c)
    stats: dict[str, Any] = {"solve_size": n, "solve_mm_per_node": round(mm_node, 3)}
    psi = np.zeros((n, n), np.complex64)
    if not active.any():
        stats["solve_nodes"] = 0
        return StripeNodes(n, active, psi, k, comp, stats)
    # grow the domain by about one wavelength so waves fade in smoothly
    lam_nodes = float(np.median(lam[active])) / mm_node
    grow = int(max(2, round(lam_nodes)))
    domain = ndimage.binary_dilation(active, iterations=grow) & covered
    labels, ncomp = ndimage.label(domain, structure=np.ones((3, 3)))
    idx = np.full((n, n), -1, np.int64)
    N = int(domain.sum())
    idx[domain] = np.arange(N)
    comp_of = labels[domain] - 1  # component of each unknown node
    stats.update(solve_nodes=N, solve_components=int(ncomp),
                 solve_nodes_per_wavelength=round(lam_nodes, 2))
    if job_check:
        job_check()
    A = _assemble(idx, k.astype(np.float64), d, n)
    # one factorisation of the screened operator K = A + μI serves both steps:
    # (1) inverse iteration towards the smallest eigenvector (the most coherent wave field);
    # (2) Ginzburg-Landau relaxation z <- K⁻¹ μ z/|z|: the eigenvector can be localised (tiny,
    #     with unconverged phase, far from its least frustrated area); this lifts it to unit
    #     modulus everywhere, so its phase heals into smooth stripes with isolated forks.
    mu = GL_SCREEN
    K = (A + mu * sp.identity(2 * N, format="csc")).tocsc()
    lu = spla.splu(K, permc_spec="MMD_AT_PLUS_A")

    def normalise(x):
        z = x[0::2] + 1j * x[1::2]
        nrm = np.sqrt(np.bincount(comp_of, np.abs(z) ** 2, minlength=ncomp) /
                      np.maximum(np.bincount(comp_of, minlength=ncomp), 1))
        z = z / np.maximum(nrm[comp_of], 1e-30)
        out = np.empty(2 * N)
        out[0::2], out[1::2] = z.real, z.imag
        return out, z

    x = rng.standard_normal(2 * N)
    x, z = normalise(x)
    for it in range(INVERSE_ITERATIONS):
        x, z = normalise(lu.solve(x))
        if job_check:
            job_check()
    target = None
    if crease is not None and (crease[domain] > 0).any():
        # pull troughs (φ = π) onto existing creases: rotate each component's global phase to
        # fit the creases best, then relax with a data term: (K + W) z = μ z/|z| + W t, t = −1.
        w = crease[domain].astype(np.float64)
        fit = np.bincount(comp_of, (w * (-np.conj(z))).real, minlength=ncomp) + \
            1j * np.bincount(comp_of, (w * (-np.conj(z))).imag, minlength=ncomp)
        rot = np.where(np.abs(fit) > 0, fit / np.maximum(np.abs(fit), 1e-30), 1.0)
        z = z * rot[comp_of]
        W = np.repeat(w * CREASE_PULL, 2)
        lu = spla.splu((K + sp.diags(W)).tocsc(), permc_spec="MMD_AT_PLUS_A")
        target = np.zeros(2 * N)
        target[0::2] = -W[0::2]
        stats["crease_nodes"] = int((w > 0).sum())
    for it in range(GL_ITERATIONS):
        u = z / np.maximum(np.abs(z), 1e-30)
        rhs = np.empty(2 * N)
        rhs[0::2], rhs[1::2] = mu * u.real, mu * u.imag
        if target is not None:
            rhs += target
        x = lu.solve(rhs)
        z = x[0::2] + 1j * x[1::2]
        if job_check:
            job_check()
    psi[domain] = z.astype(np.complex64)
    return StripeNodes(n, domain, psi, k, comp, stats)


def evaluate_phase(nodes: StripeNodes, rows: np.ndarray, cols: np.ndarray, size: int):
    """Phase-exact upsampling at texels (rows, cols) of a size² map: (phase, coherence)."""
    n = nodes.n
    yc = (rows + 0.5) * (n / size) - 0.5
    xc = (cols + 0.5) * (n / size) - 0.5
    r0 = np.floor(yc).astype(np.int64)
    c0 = np.floor(xc).astype(np.int64)
    fy = (yc - r0).astype(np.float32)
    fx = (xc - c0).astype(np.float32)
    corners = ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx))
    ws, ks, ps, dus, dvs = [], [], [], [], []
    for dr, dc, w in corners:
        rr = np.clip(r0 + dr, 0, n - 1)
        cc = np.clip(c0 + dc, 0, n - 1)
        ok = nodes.valid[rr, cc]
        ws.append(np.where(ok, w, 0.0).astype(np.float32))
        ks.append(nodes.k[rr, cc])
        ps.append(nodes.psi[rr, cc])
        # texel minus node, in UV (u right, v up)
        dus.append(((xc - (c0 + dc)) / n).astype(np.float32))
        dvs.append((-(yc - (r0 + dr)) / n).astype(np.float32))
    W = np.stack(ws)
    ref = np.argmax(W, axis=0)
    kref = np.take_along_axis(np.stack(ks), ref[None, :, None], 0)[0]
    z = np.zeros(len(rows), np.complex64)
    mag = np.zeros(len(rows), np.float32)
    for w, kk, p, du, dv in zip(ws, ks, ps, dus, dvs):
        flip = (kk[:, 0] * kref[:, 0] + kk[:, 1] * kref[:, 1]) < 0
        p = np.where(flip, np.conj(p), p)
        kx = np.where(flip, -kk[:, 0], kk[:, 0])
        ky = np.where(flip, -kk[:, 1], kk[:, 1])
        adv = kx * du + ky * dv
        z += (w * p * np.exp(1j * adv)).astype(np.complex64)
        mag += w * np.abs(p)
    coherence = np.abs(z) / np.maximum(mag, 1e-12)
    total_w = W.sum(0)
    return np.angle(z).astype(np.float32), (coherence * np.clip(total_w, 0, 1)).astype(np.float32), \
        (mag / np.maximum(total_w, 1e-12)).astype(np.float32)
