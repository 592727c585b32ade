"""Shape from shading: the shading residual the lighting does not explain, band-passed and robustly
weighted, turned into a displacement by one sparse screened-Poisson solve (steps 4-6 of the
package docstring)."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import linalg as splinalg

from ...core.imaging import LUMA, smoothstep
from ...geometry import sh_lighting
from .filters import wblur
from . import marks
from .lighting import Lighting
from .surface import TexelSurface

HIGHPASS_SIGMA_MM = 5.0  # residual high-pass (Gaussian): removes proxy shape / lighting error
SCREEN_MM = 3.0  # screening length of the solve: wavelengths >> 2 pi * this are suppressed
# Typical relative shading change per radian of tilt on a face under a directional light with
# ambient (0.5-1): the regularisers below are relative to this data strength.
SHADING_GRADIENT_REF = 0.7
MEMBRANE = 0.02  # membrane weight relative to the reference data term (fills the unobserved direction)
# High-passed residual at which a texel's weight halves (see detail_from_shading): brighter
# than modelled is mostly specular highlight, darker can be a deep crease.
ROBUST_RESIDUAL_POS = 0.2
ROBUST_RESIDUAL_NEG = 0.35
# Specular highlights: high-passed residual from SPECULAR_LO to _HI with a blue-red excess
# from SPECULAR_WHITE_LO to _HI of white light's marks one; its residual is replaced by its
# surroundings' within ~SPECULAR_GROW_MM of it (see detail_from_shading).
SPECULAR_LO, SPECULAR_HI, SPECULAR_GROW_MM = 0.09, 0.2, 2.0
SPECULAR_WHITE_LO, SPECULAR_WHITE_HI = 0.3, 0.6
RESIDUAL_CLIP = 0.5  # |r| beyond this is no linearisable tilt (the robust weight ~0 there anyway)
MAX_MM = 0.5  # skin detail lies within about +-0.5 mm
KNEE_MM = 0.3  # below this the clamp is the identity
LOWPASS_PIXELS = 0.75  # residual low-pass sigma in photo pixels: the pixel grid, bilinear
#   interpolation and JPEG noise live above the photo's Nyquist frequency (response 0.06 at
#   a 2-pixel wavelength, 0.5 at 5 pixels)
MIN_LOWPASS_TEXELS = 0.5  # residual low-pass floor (texel noise), in texels
CG_RTOL = 1e-5  # conjugate gradients: relative residual of the normal equations
CG_MAXITER = 800


def soft_clamp(d: np.ndarray, knee: float = KNEE_MM, limit: float = MAX_MM) -> np.ndarray:
    """Identity below ``knee``, then a tanh shoulder that never exceeds ``limit``."""
    a = np.abs(d)
    over = knee + (limit - knee) * np.tanh((a - knee) / (limit - knee))
    return np.where(a <= knee, d, np.sign(d) * over).astype(np.float32)


def _grid_index(domain: np.ndarray) -> np.ndarray:
    idx = np.full(domain.shape, -1, np.int64)
    idx[domain] = np.arange(int(domain.sum()))
    return idx


def _difference(idx: np.ndarray, axis: int, forward: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every domain texel whose neighbour along ``axis`` (forward: +1, else -1) is in the
    domain: (own index, neighbour index, valid mask over the grid). The difference is
    ``d[fwd] - d[own]`` forward and ``d[own] - d[bwd]`` backward."""
    sh = -1 if forward else 1
    nb = np.roll(idx, sh, axis=axis)
    edge = [slice(None), slice(None)]
    edge[axis] = slice(-1, None) if forward else slice(0, 1)
    nb[tuple(edge)] = -1  # no wrap-around
    valid = (idx >= 0) & (nb >= 0)
    return idx[valid], nb[valid], valid


def solve_displacement(c: np.ndarray, r: np.ndarray, w: np.ndarray, texel_mm: np.ndarray, domain: np.ndarray,
                       k_ref: float, screen_mm: float = SCREEN_MM, membrane: float = MEMBRANE,
                       check: Optional[Callable[[], None]] = None) -> tuple[np.ndarray, dict]:
    """Least squares for the displacement d (mm) on ``domain`` texels:

        sum_texels w (c . grad d - r)^2  +  membrane k_ref^2 |grad d / texel_mm|^2
                                         +  (k_ref / screen_mm)^2 d^2

    ``c`` (S,S,2): per texel, the directional-derivative coefficients on (d/d column, d/d row)
    in texel/mm, ``r`` the measured relative shading change, ``w`` its confidence. grad d is
    taken with all four forward/backward difference pairs (each a quarter of the weight), which
    centres the equations on the texel without the checkerboard null space of central
    differences. ``k_ref`` is a reference |shading gradient| / shading (SHADING_GRADIENT_REF):
    the membrane and screening weights are relative to what a texel with that much shading
    cue says. Solved by conjugate gradients (Jacobi-preconditioned): the screening bounds the
    condition number by ~(screen_mm / texel_mm)^2, so the iterations grow only linearly with
    the tile size (~100 at 512², ~200 at 1024²).
    """
    idx = _grid_index(domain)
    n = int(domain.sum())
    if n == 0:
        return np.zeros(domain.shape, np.float32), {"unknowns": 0}
    rows, cols, vals, rhs = [], [], [], []
    row0 = 0
    diffs = {}
    for axis in (0, 1):
        for fwd in (True, False):
            own, nb, valid = _difference(idx, axis, fwd)
            diffs[(axis, fwd)] = (own, nb, valid)
    # how many of the four pairs exist per texel (domain edges have fewer)
    count = np.zeros(domain.shape, np.float32)
    for fx in (True, False):
        for fy in (True, False):
            count += diffs[(1, fx)][2] & diffs[(0, fy)][2]
    for fx in (True, False):
        for fy in (True, False):
            vx, vy = diffs[(1, fx)][2], diffs[(0, fy)][2]
            both = vx & vy & (w > 0)
            if not both.any():
                continue
            sq = np.sqrt(w[both] / count[both]).astype(np.float64)
            cx = c[..., 0][both] * sq
            cy = c[..., 1][both] * sq
            own = idx[both]
            nx = np.roll(idx, -1 if fx else 1, axis=1)[both]
            ny = np.roll(idx, -1 if fy else 1, axis=0)[both]
            m = len(own)
            er = np.arange(row0, row0 + m)
            # forward: d[nb] - d[own]; backward: d[own] - d[nb]
            sx = 1.0 if fx else -1.0
            sy = 1.0 if fy else -1.0
            rows += [er, er, er, er]
            cols += [nx, own, ny, own]
            vals += [sx * cx, -sx * cx, sy * cy, -sy * cy]
            rhs.append(r[both] * sq)
            row0 += m
    a = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(row0, n))
    b = a.T @ np.concatenate(rhs)
    normal = (a.T @ a).tocsr()
    del a
    if check:
        check()
    # membrane on forward differences, in physical slope units
    lam_rows, lam_cols, lam_vals = [], [], []
    for axis in (0, 1):
        own, nb, valid = diffs[(axis, True)]
        wt = membrane * k_ref ** 2 / np.maximum(texel_mm[valid], 1e-6) ** 2
        # (d_nb - d_own)^2 * wt  ->  normal-equation entries
        lam_rows += [own, nb, own, nb]
        lam_cols += [own, nb, nb, own]
        lam_vals += [wt, wt, -wt, -wt]
    lap = sparse.csr_matrix((np.concatenate(lam_vals), (np.concatenate(lam_rows), np.concatenate(lam_cols))),
                            shape=(n, n))
    mu = (k_ref / screen_mm) ** 2
    system = (normal + lap + sparse.identity(n, format="csr") * mu).tocsr()
    diag = system.diagonal()
    precond = splinalg.LinearOperator((n, n), matvec=lambda x: x / diag, dtype=np.float64)
    iters = [0]

    def cb(_):
        iters[0] += 1
        if check and iters[0] % 20 == 0:
            check()

    x, info = splinalg.cg(system, b, rtol=CG_RTOL, maxiter=CG_MAXITER, M=precond, callback=cb)
    out = np.zeros(domain.shape, np.float32)
    out[domain] = x
    return out, {"unknowns": n, "cg_iterations": iters[0], "cg_info": int(info)}


def detail_from_shading(rgb_lin: np.ndarray, surface: TexelSurface, weight: np.ndarray, lighting: Lighting,
                        fade: np.ndarray | None = None, texels_per_pixel: float = 1.0,
                        highpass_mm: float = HIGHPASS_SIGMA_MM, screen_mm: float = SCREEN_MM,
                        check: Optional[Callable[[], None]] = None, clamp: bool = True,
                        trace: Optional[dict] = None, not_relief: Optional[np.ndarray] = None
                        ) -> tuple[np.ndarray, dict]:
    """Steps 4-6 of the module docstring on UV-space arrays: the displacement (S,S) in mm.

    ``rgb_lin`` (S,S,3) linear photo colour per texel, ``surface`` the proxy (normals in the
    lighting's frame), ``weight`` (S,S) confidence of each texel's colour (skin x visibility),
    ``lighting`` from :func:`estimate_lighting`, ``fade`` (S,S) multiplies the result (default
    ``weight``), ``texels_per_pixel`` the photo's resolution in texels (its detail below that
    is interpolation, not skin). ``not_relief`` (S,S) 0..1 marks found upstream (see
    :mod:`.marks`); spots and highlights are found here. ``trace``, when a dict, receives the intermediate maps
    (residuals, the marks found) for tests and figures.
    """
    fade = weight if fade is None else fade
    mm = surface.median_texel_mm
    n = surface.normals.astype(np.float64)
    sel = (weight > 0) & surface.covered
    sh = lighting.sh
    s_c = np.zeros(rgb_lin.shape, np.float64)
    s_c[sel] = sh_lighting.shade(n[sel], sh)
    pred = lighting.albedo.astype(np.float64) * s_c
    # per-channel relative residual and relative shading gradient, combined as luminance:
    # geometry changes all channels alike (near-white light), so the weighted sum averages
    # down independent channel noise (JPEG's chroma above all) and weakens chromatic albedo
    # detail (freckles, redness) against it
    r = np.zeros(weight.shape, np.float64)
    g = np.zeros(weight.shape + (3,), np.float64)
    grad = sh_lighting.shade_gradient(n[sel], sh)  # (N,3 channels,3)
    sc = np.maximum(s_c[sel], 1e-4)
    r_rgb = rgb_lin[sel] / np.maximum(pred[sel], 1e-5) - 1.0
    r[sel] = r_rgb @ LUMA
    # blue minus red relative residual: ~0 for shading (it scales every channel alike), but a
    # highlight adds the light's colour on top of skin's red-heavy albedo, so it raises blue
    # relatively more (see the specular test below)
    desat = np.zeros(weight.shape, np.float32)
    desat[sel] = np.clip(r_rgb[:, 2] - r_rgb[:, 0], -RESIDUAL_CLIP, RESIDUAL_CLIP)
    del r_rgb
    g[sel] = np.einsum("c,ncd->nd", LUMA, grad / sc[:, :, None])
    shade_l = s_c @ LUMA
    # dark texels carry little signal (the ratio amplifies noise there)
    w = weight * np.clip(shade_l / max(float(np.median(shade_l[sel])), 1e-6), 0.0, 1.0) ** 2
    w = np.where(sel, w, 0.0).astype(np.float32)
    r = np.clip(r, -RESIDUAL_CLIP, RESIDUAL_CLIP).astype(np.float32)

    # band-pass the residual: below the photo's pixel it is bilinear interpolation and JPEG
    # noise, above highpass_mm the proxy's shape error and the lighting model's error
    lp = max(LOWPASS_PIXELS * texels_per_pixel, MIN_LOWPASS_TEXELS)
    # marks found upstream carry no data: left out of the low-pass (normalised convolution), so
    # their residual does not bleed into the skin around them
    w_data = w if not_relief is None else w * (1.0 - np.asarray(not_relief, np.float32))
    r_lp, _ = wblur(r, w_data, lp)
    r_hp = np.where(sel, r_lp - wblur(r_lp, w, highpass_mm / mm)[0], 0.0)
    # Specular highlights are bright blobs a Lambertian model cannot explain -- but so is the
    # lit flank of a deep crease. The difference is colour: a highlight adds light of the
    # light's colour (white-ish) to skin, whose albedo is much redder than blue, so the
    # relative excess is larger in blue: r_c ~ s / albedo_c. A texel counts as highlight when
    # it is bright (r_hp) *and* its blue-red excess is a good part of what white light would
    # give. Zeroing a highlight's weight leaves a hole whose outline the solve prints as a
    # ring; instead its residual is replaced, before the high-pass (whose undershoot around a
    # blob would otherwise stay), by the one around it (normalised convolution from the
    # texels outside), so the relief continues smoothly under it. Grown softly: a
    # highlight's rim is part of it.
    if trace is not None:
        trace.update(r_lp=r_lp.astype(np.float32), weight=w)
    d_lp, _ = wblur(desat, w, lp)
    d_hp = d_lp - wblur(d_lp, w, highpass_mm / mm)[0]
    inv_alb = 1.0 / np.maximum(lighting.albedo.astype(np.float64), 1e-4)
    white = (inv_alb[..., 2] - inv_alb[..., 0]) / np.maximum(inv_alb @ LUMA, 1e-6)  # desat / r for white
    frac = d_hp / np.maximum(r_hp * white, 1e-3)
    whiteness = np.where(white > 0.1, smoothstep(SPECULAR_WHITE_LO, SPECULAR_WHITE_HI, frac), 0.0)
    spec = (smoothstep(SPECULAR_LO, SPECULAR_HI, r_hp) * whiteness).astype(np.float32)
    spec = marks.grow(spec, SPECULAR_GROW_MM / mm)
    # the other marks that are not relief (freckles and moles here, rims and strands upstream)
    # are filled the same way
    spots = marks.spot_marks(r_lp, w, mm, min_sigma=lp)
    if trace is not None:
        trace.update(min_sigma=lp, texel_mm=mm)
    fill = np.maximum(spec, spots)
    if not_relief is not None:
        fill = np.maximum(fill, np.asarray(not_relief, np.float32))
    if (fill > 0.01).any():
        around, _ = wblur(r_lp, w * (1.0 - fill), 2.0 * SPECULAR_GROW_MM / mm)
        r_lp = np.where(sel, fill * around + (1.0 - fill) * r_lp, 0.0).astype(np.float32)
        r_hp = np.where(sel, r_lp - wblur(r_lp, w, highpass_mm / mm)[0], 0.0)
    if trace is not None:
        trace.update(r_hp=r_hp.astype(np.float32), specular=spec, spots=spots, desat_hp=d_hp.astype(np.float32))
    # robust: what is left large (cast shadows, strands, the rest of a strong highlight) is
    # not a tilt. A fixed scale, not one from the residual's spread: most skin has no detail,
    # so a MAD-based scale would treat every real wrinkle as an outlier. Brighter than
    # modelled is more often a highlight (positive scale 0.2: weight 0.94 at +0.1, 0.16 at
    # +0.3), darker may be a deep crease such as the nasolabial fold (negative scale 0.35:
    # 0.5 at -0.35).
    mad = 1.4826 * float(np.median(np.abs(r_hp[w > 0]))) if (w > 0).any() else 0.0
    scale = np.where(r_hp > 0, ROBUST_RESIDUAL_POS, ROBUST_RESIDUAL_NEG)
    w = w / (1.0 + (r_hp / scale) ** 4)
    if check:
        check()

    # c = -G^-1 J^T g: J^T takes the tangent part of dS/dn, G^-1 turns it into texel units
    jac = surface.jac.astype(np.float64)
    gm = np.einsum("...ik,...il->...kl", jac, jac)
    det = gm[..., 0, 0] * gm[..., 1, 1] - gm[..., 0, 1] * gm[..., 1, 0]
    okj = sel & (det > 1e-12)
    ginv = np.zeros_like(gm)
    ginv[..., 0, 0], ginv[..., 1, 1] = gm[..., 1, 1], gm[..., 0, 0]
    ginv[..., 0, 1], ginv[..., 1, 0] = -gm[..., 0, 1], -gm[..., 1, 0]
    ginv[okj] /= det[okj, None, None]
    jtg = np.einsum("...ik,...i->...k", jac, g)
    c = -np.einsum("...kl,...l->...k", ginv, jtg)
    c[~okj] = 0.0
    w = np.where(okj, w, 0.0).astype(np.float32)
    g_t = np.sqrt(np.maximum(np.einsum("...k,...k->...", jtg, np.einsum("...kl,...l->...k", ginv, jtg)), 0.0))
    k_ref = float(np.sqrt(np.average(g_t[w > 0] ** 2, weights=w[w > 0]))) if (w > 0).any() else 0.0
    # The regularisers are a prior on the relief, so they do not follow the light: the data
    # term's noise is the photo's (in units of r), whatever the light; under weak or flat
    # light the same residual noise would mean steep tilts, and a prior scaled down with the
    # shading gradient would let it through. A fixed reference keeps weak-light relief small.
    k_reg = SHADING_GRADIENT_REF
    if k_ref < 1e-4:  # no shading gradient at all: nothing to recover
        return np.zeros(weight.shape, np.float32), {"k_ref": k_ref, "residual_mad": mad}

    # solve where there is data, plus a rim of a screening length so the result decays to 0
    domain = ndimage.binary_dilation(w > 0, iterations=max(1, int(np.ceil(screen_mm / mm)))) & surface.covered
    d, info = solve_displacement(c, r_hp.astype(np.float64), w, surface.texel_mm, domain, k_reg,
                                 screen_mm=screen_mm, check=check)
    d = d * fade
    p99 = float(np.percentile(np.abs(d[fade > 0.5]), 99)) if (fade > 0.5).any() else 0.0
    info.update({"k_ref": round(k_ref, 4), "residual_mad": round(mad, 5), "lowpass_texels": round(lp, 3),
                 "raw_abs_p99_mm": round(p99, 4)})
    if clamp:
        d = soft_clamp(d)
    return d.astype(np.float32), info
