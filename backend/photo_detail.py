"""The person's own skin detail D(I_x) from the photo, by shape from shading on the proxy.

The fitted morphable model (the *proxy*) is smooth: it has the person's shape at the scale of
centimetres but none of their wrinkles, folds or bumps. Those are in the photo as *shading*
the proxy does not explain. Following the FaceDet3D / FDS line of work (Dib et al.; Ling et
al.) the detail is recovered in the face UV tile:

1. Per texel of tile 0, gather the photo's colour (linearised sRGB), the proxy's normal and a
   visibility weight -- :func:`backend.texture.project_texture` does the projection, occlusion
   and weighting; :func:`texel_surface` rasterises the same UV layout (:mod:`backend.raster`)
   for surface points, normals and the texel -> surface Jacobian. All of this runs at a
   *working size* no finer than the photo resolves (:func:`working_size`; a 100-pixel-wide
   face holds nothing at 1024² texels) and the maps are interpolated up to the asked size.
2. Fit 9 spherical-harmonic lighting coefficients per colour channel and a low-frequency albedo
   (robust least squares, alternating; :mod:`backend.sh_lighting`) on visible skin.
3. A skin mask: a geometric prior from the 68 landmark vertices' UV positions (eyes, brows,
   lips, nostrils out; only the face oval in), minus hair: a colour test against the
   statistics of certain skin, kept only where it forms masses wider than a crease (fringe,
   sideburns, beard, dark brows), with a margin; and times how squarely the camera sees it.
4. The shading residual ``r = I / (albedo * shading) - 1`` on skin, band-passed: below the
   photo's own resolution it is interpolation and JPEG noise; above a few millimetres it is the
   proxy's shape error and lighting-model error, not skin detail. Specular highlights and
   cast shadows are outliers to a Lambertian model: robust weights, highlights cut out.
5. Linearised shape from shading: a displacement ``d`` along the normal tilts the normal by
   ``-grad_s d`` (the surface gradient), which changes the shading by
   ``dS/dn . (-grad_s d)``. Only the component of the tilt along the tangent-plane direction
   in which shading changes most (the projected ``dS/dn``) is observable; so each texel gives
   one *directional-derivative* equation ``c . grad d = r``. All of them, a weak membrane term
   for the unobserved direction and a screening term (a high-pass with the same cut-off as the
   residual's) are solved together as one sparse screened-Poisson system (conjugate gradients),
   in millimetres (the Jacobian carries the texel -> mm scale).
6. Soft-clamped to the range skin detail has (about +-0.5 mm) and faded to 0 outside the skin
   mask.

Output convention (the project's detail maps): a single channel, tile 0, row 0 = v = 1,
millimetres along the smooth proxy's normal, 0 = the proxy surface, positive = outward.

What this cannot separate: albedo detail at the same scale as geometry (freckles, moles,
stubble) reads as shading and becomes relief; the component of relief with no shading
gradient (e.g. a crease running along the light direction) is lost. Both are the known
limits of single-image shape from shading; a learned prior (DetH) is the project's answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import linalg as splinalg

from . import raster, sh_lighting, texture
from .face_data import Camera, FaceReconstruction
from .face_model import MorphableModel

# ---- parameters (millimetres unless said) -------------------------------------------------
ALBEDO_SIGMA_MM = 12.0  # albedo's low-frequency scale: coarser than folds, finer than the face
LIGHTING_ITERATIONS = 4  # lighting <-> albedo alternations (see _estimate_lighting_grid)
ALBEDO_PRIOR = 1.0  # weight of "albedo = its mean" against the local data (see _estimate_lighting_grid)
LIGHTING_GRID = 256  # lighting and albedo are fitted on a grid no finer than this (see estimate_lighting)
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
# Shape from shading trusts a texel fully only when the camera sees it within ~55 degrees:
# near the silhouette the photo mixes in background and the proxy's normal is least right.
VIEW_COS_NONE, VIEW_COS_FULL = 0.25, 0.6
CG_RTOL = 1e-5  # conjugate gradients: relative residual of the normal equations
CG_MAXITER = 800
MIN_WORK_SIZE = 256  # the estimate never runs on a coarser tile than this ...
WORK_TEXELS_PER_PIXEL = 1.5  # ... nor on one where a photo pixel spans more texels than this

# Skin mask: margins around the facial features (mm), and the soft edge width.
FEATHER_MM = 2.5
EYE_MARGIN_MM = 4.0  # lashes, lid margin, wet highlights, the socket's unmodelled occlusion
BROW_ABOVE_MM = 3.0  # iBUG brow points lie along the brow's upper half ...
BROW_BELOW_MM = 9.0  # ... the hair reaches ~8-10 mm below them
LIP_MARGIN_MM = 2.0  # vermilion border
NOSTRIL_LIFT_MM = 6.0  # nostril openings lie above the nose-bottom points 31..35
NOSTRIL_MARGIN_MM = 4.0  # and the alar wings reach beyond them sideways
JAW_MARGIN_MM = 2.0  # the domain ends this far inside the jaw contour (silhouette mixing)
# Colour test (Mahalanobis distance to certain skin in chroma + shading-normalised brightness):
SKIN_D_FULL = 3.0  # distances up to this are skin ...
SKIN_D_NONE = 5.0  # ... from this on not skin
SKIN_SMOOTH_MM = 1.0  # the colour test is smoothed by this much (strands, JPEG noise)
# Skin next to hair (a fringe, sideburns) is shadowed by it and crossed by stray strands:
# the mask ramps up from NONSKIN_NEAR_MM to NONSKIN_FAR_MM away from non-skin colour.
NONSKIN_NEAR_MM, NONSKIN_FAR_MM = 1.5, 5.0
HAIR_MIN_WIDTH_MM = 6.0  # non-skin colour narrower than this is a crease's shadow, not hair

LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 luminance of linear RGB
# Camera-facing frame: OpenCV camera axes (x right, y down, z forward) turned to x right,
# y up, z towards the camera -- for a frontal pose it is the model frame itself.
CAMERA_FACING = np.diag([1.0, -1.0, -1.0])


@dataclass
class PhotoDetail:
    """``displacement`` (size, size) float32 mm along the proxy normal (0 = proxy, + = out);
    ``skin_mask`` (size, size) float32 0..1 -- where the displacement is trusted (skin, seen
    by the photo); ``sh`` (9, 3) SH lighting per RGB channel in the camera-facing frame,
    scaled so the mean shading over skin is 1; ``albedo`` (size, size, 3) float32 linear
    low-frequency skin albedo (extrapolated outside skin); ``stats`` figures for humans."""

    displacement: np.ndarray
    skin_mask: np.ndarray
    sh: np.ndarray
    albedo: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class TexelSurface:
    """Proxy geometry per texel of a UV tile (row 0 = v = 1).

    ``covered`` texels hold a triangle; ``points`` (S,S,3) mm in the model frame; ``normals``
    (S,S,3) unit, and ``jac`` (S,S,3,2) = (d point / d column, d point / d row) in mm per
    texel, both in the frame given to :func:`texel_surface`; ``texel_mm`` (S,S) the local texel
    size, ``(det J^T J)^(1/4)``."""

    size: int
    tri: np.ndarray
    covered: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    jac: np.ndarray
    texel_mm: np.ndarray

    @property
    def median_texel_mm(self) -> float:
        return float(np.median(self.texel_mm[self.covered]))


class _SubJob:
    """Maps a stage's own 0..1 progress onto [lo, hi] of the caller's job."""

    def __init__(self, job, lo: float, hi: float):
        self.job, self.lo, self.hi = job, lo, hi

    def check(self) -> None:
        if self.job is not None:
            self.job.check()

    def report(self, f: float, msg: str) -> None:
        if self.job is not None:
            self.job.report(self.lo + (self.hi - self.lo) * min(max(f, 0.0), 1.0), msg)


# ---- small array helpers --------------------------------------------------------------------
def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 (or float 0..1) sRGB -> float32 linear (IEC 61966-2-1)."""
    x = np.asarray(rgb)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
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
    h, w = a.shape[:2]
    ph, pw = (-h) % k, (-w) % k
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
    b = np.pad(a, pad, mode="edge")
    b = b.reshape((b.shape[0] // k, k, b.shape[1] // k, k) + b.shape[2:]).mean(axis=(1, 3))
    s = np.sqrt(max(sigma * sigma - (k * k - 1) / 12.0, 0.0)) / k  # the box already blurred a bit
    b = ndimage.gaussian_filter(b, (s, s) + (0,) * (a.ndim - 2), mode="nearest")
    # block centres sit at k*i + (k-1)/2: sample them back at every texel centre
    ry = (np.arange(h) - (k - 1) / 2.0) / k
    rx = (np.arange(w) - (k - 1) / 2.0) / k
    gy, gx = np.meshgrid(ry, rx, indexing="ij")
    if a.ndim == 2:
        return ndimage.map_coordinates(b, [gy, gx], order=1, mode="nearest").astype(np.float32)
    return np.stack([ndimage.map_coordinates(b[..., c], [gy, gx], order=1, mode="nearest")
                     for c in range(a.shape[2])], axis=-1).astype(np.float32)


def _wblur(x: np.ndarray, w: np.ndarray, sigma: float, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: the ``w``-weighted local mean of ``x`` at scale ``sigma``, so
    texels without data (weight 0) neither pull the mean down nor leave holes; also returns
    the blurred weight (how much data backs each value)."""
    w = np.asarray(w, np.float32)
    wx = x * (w[..., None] if x.ndim == 3 else w)
    num = _blur(wx, sigma)
    den = _blur(w, sigma)
    d = den[..., None] if x.ndim == 3 else den
    return num / np.maximum(d, eps), den


# ---- geometry -------------------------------------------------------------------------------
def _normal_triangles(model: MorphableModel, polygon_range: tuple[int, int]) -> np.ndarray:
    """Triangles for vertex normals: the tile's own plus head and neck, so normals along the
    face region's border average over both sides (as texture.project_texture does)."""
    tris = [model.triangles(polygon_range)[0]]
    if "head_neck" in model.regions and tuple(model.regions["head_neck"][1]) != tuple(polygon_range):
        tris.append(model.triangles(tuple(model.regions["head_neck"][1]))[0])
    return np.concatenate(tris)


def texel_surface(model: MorphableModel, vertices: np.ndarray, size: int, rotation: np.ndarray | None = None,
                  polygon_range: tuple[int, int] | None = None, tile: int = 0,
                  check: Optional[Callable[[], None]] = None) -> TexelSurface:
    """Rasterise the UV tile (the same raster texture.project_texture builds) and give every
    covered texel its surface point, smooth normal and texel -> surface Jacobian.

    ``rotation`` (3,3) turns normals and Jacobians into another frame (e.g. the camera-facing
    one); points stay in the model frame.
    """
    lo, hi = polygon_range if polygon_range is not None else model.regions["face"][1]
    v = np.asarray(vertices, np.float64)
    tv, tu = model.triangles((lo, hi))
    tris_px = raster.uv_to_texel(model.uvs[tu], size, tile)
    ras = raster.rasterize(tris_px, size, check)
    covered = ras.tri >= 0
    flat = np.flatnonzero(covered.ravel())
    t = ras.tri.ravel()[flat]
    b = ras.bary.reshape(-1, 2)[flat].astype(np.float64)

    # Per triangle the map texel -> surface is affine: P(p) = V0 + E T^-1 (p - p0), with E the
    # 3D edges and T the texel-space edges; its Jacobian E T^-1 is the tangent frame in mm/texel.
    e = np.stack([v[tv[:, 1]] - v[tv[:, 0]], v[tv[:, 2]] - v[tv[:, 0]]], axis=2)  # (T,3,2)
    tm = np.stack([tris_px[:, 1] - tris_px[:, 0], tris_px[:, 2] - tris_px[:, 0]], axis=2)  # (T,2,2)
    det = tm[:, 0, 0] * tm[:, 1, 1] - tm[:, 0, 1] * tm[:, 1, 0]
    ok = np.abs(det) > 1e-12
    inv = np.zeros_like(tm)
    inv[:, 0, 0], inv[:, 1, 1] = tm[:, 1, 1], tm[:, 0, 0]
    inv[:, 0, 1], inv[:, 1, 0] = -tm[:, 0, 1], -tm[:, 1, 0]
    inv[ok] /= det[ok, None, None]
    jac_t = np.einsum("tij,tjk->tik", e, inv)  # (T,3,2)
    # Per triangle the Jacobian is constant and jumps at every edge; the shading equations
    # would print the mesh into the detail. Average it onto the UV corners (weighted by texel
    # area, within one UV island since corners are UV indices) and interpolate like normals.
    area = np.where(ok, 0.5 * np.abs(det), 0.0)
    n_uv = len(model.uvs)
    jac_uv = np.zeros((n_uv, 6))
    a_uv = np.zeros(n_uv)
    flat_j = jac_t.reshape(-1, 6) * area[:, None]
    for k in range(3):
        a_uv += np.bincount(tu[:, k], area, minlength=n_uv)
        for q in range(6):
            jac_uv[:, q] += np.bincount(tu[:, k], flat_j[:, q], minlength=n_uv)
    jac_uv = (jac_uv / np.maximum(a_uv, 1e-12)[:, None]).reshape(n_uv, 3, 2)

    vn = texture.vertex_normals(v, _normal_triangles(model, (lo, hi)))
    w2 = 1.0 - b[:, 0] - b[:, 1]

    def interp(val, corners):
        sh = (-1,) + (1,) * (val.ndim - 1)
        return (b[:, 0].reshape(sh) * val[corners[t, 0]] + b[:, 1].reshape(sh) * val[corners[t, 1]]
                + w2.reshape(sh) * val[corners[t, 2]])

    pts = interp(v, tv)
    nrm = interp(vn, tv)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    jac = interp(jac_uv, tu)
    if rotation is not None:
        r = np.asarray(rotation, np.float64)
        nrm = nrm @ r.T
        jac = np.einsum("ij,njk->nik", r, jac)
    g = np.einsum("nik,nil->nkl", jac, jac)
    gdet = np.maximum(g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0], 0.0)

    s = int(size)
    out_p = np.zeros((s * s, 3), np.float32)
    out_n = np.zeros((s * s, 3), np.float32)
    out_j = np.zeros((s * s, 3, 2), np.float32)
    out_s = np.zeros(s * s, np.float32)
    out_p[flat], out_n[flat], out_j[flat] = pts, nrm, jac
    out_s[flat] = gdet ** 0.25
    return TexelSurface(s, ras.tri, covered, out_p.reshape(s, s, 3), out_n.reshape(s, s, 3),
                        out_j.reshape(s, s, 3, 2), out_s.reshape(s, s))


def vertex_texels(model: MorphableModel, vertex_ids, size: int, tile: int = 0,
                  polygon_range: tuple[int, int] | None = None) -> np.ndarray:
    """Continuous texel coordinates (N,2) (x = column, y = row) of vertices, through the UV
    of their first corner in the polygon range (landmark vertices lie off UV seams)."""
    lo, hi = polygon_range if polygon_range is not None else model.regions["face"][1]
    starts = model.polygon_starts()
    c_lo = int(starts[lo])
    c_hi = int(starts[hi]) if hi < len(starts) else len(model.corner_vertices)
    cv = model.corner_vertices[c_lo:c_hi]
    cu = model.corner_uvs[c_lo:c_hi]
    first = np.full(model.n_vertices, -1, np.int64)
    first[cv[::-1]] = cu[::-1]  # the last write wins: the first corner
    ids = np.asarray(vertex_ids, np.int64)
    if np.any(first[ids] < 0):
        raise ValueError("a landmark vertex is not in the tile's polygons")
    return raster.uv_to_texel(model.uvs[first[ids]], size, tile)


# ---- skin mask --------------------------------------------------------------------------------
def _polygon_mask(poly_xy: np.ndarray, size: int) -> np.ndarray:
    from skimage.draw import polygon

    m = np.zeros((size, size), bool)
    rr, cc = polygon(poly_xy[:, 1], poly_xy[:, 0], (size, size))
    m[rr, cc] = True
    return m


def _outside_distance(mask: np.ndarray) -> np.ndarray:
    """Texels from each texel to the nearest texel of ``mask`` (0 inside)."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return ndimage.distance_transform_edt(~mask).astype(np.float32)


def geometric_skin_mask(model: MorphableModel, surface: TexelSurface, tile: int = 0) -> tuple[np.ndarray, dict]:
    """Skin prior from the model's 68 landmark vertices in UV space: 1 inside the face oval
    (jaw contour 0..16, open upwards over the forehead), 0 on and around the eyes, brows,
    lips and nostrils, with soft edges. Returns (mask (S,S) float32, named feature masks
    (bool) for tests and figures). Distances are in mm through the tile's median texel size
    (the layout's scale varies slowly over the face)."""
    s = surface.size
    mm = surface.median_texel_mm
    lm = vertex_texels(model, model.landmark_vertices, s, tile)
    up = np.array([0.0, -1.0])  # v grows upwards = row decreases

    jaw = lm[0:17]
    top = -2.0  # above the tile's top row: the oval is open over the forehead and scalp
    oval = np.concatenate([[[jaw[0, 0], top]], jaw, [[jaw[16, 0], top]]])
    feats = {
        "eye_left": _polygon_mask(lm[42:48], s),
        "eye_right": _polygon_mask(lm[36:42], s),
        "lips": _polygon_mask(lm[48:60], s),
    }
    for name, sl in (("brow_right", slice(17, 22)), ("brow_left", slice(22, 27))):
        b = lm[sl]
        feats[name] = _polygon_mask(np.concatenate([b + up * BROW_ABOVE_MM / mm,
                                                    (b - up * BROW_BELOW_MM / mm)[::-1]]), s)
    nose = lm[31:36]
    feats["nostrils"] = _polygon_mask(np.concatenate([nose, (nose + up * NOSTRIL_LIFT_MM / mm)[::-1]]), s)

    inside = _polygon_mask(oval, s)
    d_in = ndimage.distance_transform_edt(inside).astype(np.float32) * mm  # mm to the oval's edge
    mask = _smoothstep(JAW_MARGIN_MM, JAW_MARGIN_MM + FEATHER_MM, d_in)
    margins = {"eye_left": EYE_MARGIN_MM, "eye_right": EYE_MARGIN_MM, "lips": LIP_MARGIN_MM,
               "brow_left": 0.0, "brow_right": 0.0, "nostrils": NOSTRIL_MARGIN_MM}
    for name, m in feats.items():
        d = _outside_distance(m) * mm
        mask = mask * _smoothstep(margins[name], margins[name] + FEATHER_MM, d)
    mask = mask * surface.covered
    feats["oval"] = inside
    return mask.astype(np.float32), feats


def _core_skin(model: MorphableModel, surface: TexelSurface, tile: int = 0) -> np.ndarray:
    """Texels that are skin on almost every face: the band from below the eyes to the nose
    bottom, between the cheek contours -- above any beard, below any fringe, away from brows."""
    lm = vertex_texels(model, model.landmark_vertices, surface.size, tile)
    row_top = max(lm[40, 1], lm[41, 1], lm[46, 1], lm[47, 1])  # lower eyelids (rows grow down)
    row_bot = lm[33, 1]
    poly = np.array([[lm[1, 0], row_top], [lm[15, 0], row_top], [lm[15, 0], row_bot], [lm[1, 0], row_bot]])
    return _polygon_mask(poly, surface.size)


def colour_skin_probability(rgb_lin: np.ndarray, shading_luma: np.ndarray, candidate: np.ndarray,
                            core: np.ndarray, texel_mm: float) -> tuple[np.ndarray, dict]:
    """How skin-like each texel's colour is (0..1), against robust statistics of ``core``.

    Features: chromaticity log(R/G), log(B/G) -- nearly independent of shading -- and the
    log of luminance over the modelled shading (an albedo brightness), so dark hair under
    good light and blonde hair (brighter, more yellow than skin in albedo) both stand out.
    Mahalanobis distance to the core's robust mean and covariance (3-sigma trimmed);
    ``SKIN_D_FULL`` .. ``SKIN_D_NONE`` map to 1 .. 0.
    """
    eps = 1e-4
    c = np.maximum(rgb_lin, eps)
    luma = c @ LUMA.astype(np.float32)
    f = np.stack([np.log(c[..., 0] / c[..., 1]), np.log(c[..., 2] / c[..., 1]),
                  np.log(luma / np.maximum(shading_luma, eps))], axis=-1)
    ref = f[core & candidate]
    if len(ref) < 50:  # nothing trustworthy to compare against: colour does not decide
        return np.ones(candidate.shape, np.float32), {"colour_test": "skipped"}
    med = np.median(ref, axis=0)
    mad = 1.4826 * np.median(np.abs(ref - med), axis=0) + 1e-3
    keep = np.all(np.abs(ref - med) < 3.0 * mad, axis=1)
    mu = ref[keep].mean(0)
    cov = np.cov(ref[keep].T) + np.diag((0.01 * np.ones(3)) ** 2)  # floor: JPEG-flat skin
    icov = np.linalg.inv(cov)
    df = f - mu
    d = np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", df, icov, df), 0.0))
    p = 1.0 - _smoothstep(SKIN_D_FULL, SKIN_D_NONE, d)
    p = _blur(p.astype(np.float32), SKIN_SMOOTH_MM / texel_mm)
    return np.clip(p, 0.0, 1.0).astype(np.float32), {"skin_colour_mean": mu.round(4).tolist()}


def hair_regions(not_skin_colour: np.ndarray, known: np.ndarray, texel_mm: float) -> np.ndarray:
    """Where the colour test's non-skin texels form hair: a morphological opening with a disc
    of HAIR_MIN_WIDTH_MM keeps masses (fringe, sideburns, brows, beard) and drops thin lines --
    a shadowed crease (the nasolabial fold, a forehead line) is darker than lit skin, like
    hair, but only a few millimetres wide, and it is exactly the detail wanted."""
    cand = not_skin_colour & known
    r = max(1, int(round(0.5 * HAIR_MIN_WIDTH_MM / texel_mm)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = (xx * xx + yy * yy) <= r * r
    return ndimage.binary_opening(cand, structure=disc)


# ---- lighting and albedo -------------------------------------------------------------------
@dataclass
class Lighting:
    sh: np.ndarray  # (9, 3), mean shading over the fitted texels = 1 per channel
    albedo: np.ndarray  # (S, S, 3) linear, low frequency
    weight: np.ndarray  # (S, S) the fit's final weights (prior x robust)
    residual: float  # robust relative RMS of the fit


def _block_reduce(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks of (S,S,...) (edge-padded to a multiple of k)."""
    h, w = a.shape[:2]
    pad = [(0, (-h) % k), (0, (-w) % k)] + [(0, 0)] * (a.ndim - 2)
    b = np.pad(a, pad, mode="edge")
    return b.reshape((b.shape[0] // k, k, b.shape[1] // k, k) + b.shape[2:]).mean(axis=(1, 3))


def _upsample(a: np.ndarray, k: int, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    """Back from a k-times coarser grid (block centres at k*i + (k-1)/2) to ``shape``."""
    if k == 1:
        return a.astype(np.float32)
    ry = (np.arange(shape[0]) - (k - 1) / 2.0) / k
    rx = (np.arange(shape[1]) - (k - 1) / 2.0) / k
    gy, gx = np.meshgrid(ry, rx, indexing="ij")
    chans = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]
    out = [ndimage.map_coordinates(np.asarray(c, np.float64), [gy, gx], order=order, mode="nearest")
           for c in chans]
    return (out[0] if a.ndim == 2 else np.stack(out, axis=-1)).astype(np.float32)


def estimate_lighting(rgb_lin: np.ndarray, normals: np.ndarray, weight: np.ndarray, texel_mm: float,
                      iterations: int = LIGHTING_ITERATIONS, albedo_sigma_mm: float = ALBEDO_SIGMA_MM) -> Lighting:
    """SH lighting (9 per channel) and a low-frequency albedo with ``I ~ albedo * shade(n)``.

    Both are low-frequency, so tiles larger than LIGHTING_GRID are fitted on a block-averaged
    grid (weighted colour, renormalised mean normal) and the albedo comes back bilinearly:
    at 1024² this is 16x fewer samples for the same 27 coefficients and a 12 mm albedo.
    """
    size = weight.shape[0]
    k = 1
    while size // (2 * k) >= LIGHTING_GRID:
        k *= 2
    if k == 1:
        return _estimate_lighting_grid(rgb_lin, normals, weight, texel_mm, iterations, albedo_sigma_mm)
    w = np.asarray(weight, np.float32)
    wsum = _block_reduce(w, k)
    safe = np.maximum(wsum, 1e-12)[..., None]
    rgb_r = _block_reduce(rgb_lin * w[..., None], k) / safe
    n_r = _block_reduce(normals * w[..., None], k)
    n_r /= np.maximum(np.linalg.norm(n_r, axis=-1, keepdims=True), 1e-12)
    lit = _estimate_lighting_grid(rgb_r.astype(np.float32), n_r.astype(np.float32), wsum.astype(np.float32),
                                  texel_mm * k, iterations, albedo_sigma_mm)
    return Lighting(sh=lit.sh, albedo=np.maximum(_upsample(lit.albedo, k, weight.shape), 0.0),
                    weight=_upsample(lit.weight, k, weight.shape), residual=lit.residual)


def _estimate_lighting_grid(rgb_lin: np.ndarray, normals: np.ndarray, weight: np.ndarray, texel_mm: float,
                            iterations: int = LIGHTING_ITERATIONS,
                            albedo_sigma_mm: float = ALBEDO_SIGMA_MM) -> Lighting:
    """SH lighting (9 per channel) and a low-frequency albedo with ``I ~ albedo * shade(n)``.

    Alternates: (a) albedo fixed, a robust (Tukey) least-squares fit of the 9 coefficients
    per channel; (b) lighting fixed, the albedo is the weighted local least-squares ratio
    ``sum w S I / sum w S^2`` at the albedo scale. The first pass assumes a uniform albedo, so
    the lighting is first explained by the face's own shape (the only cue a single image has,
    FaceDet3D uses its albedo model for the same role); the wide albedo window then takes the
    slow colour changes (blush, beard shadow) the lighting cannot. Albedo and lighting share
    one scale per channel; it is fixed by making the mean shading over the weighted texels 1.
    """
    sel = weight > 0
    if sel.sum() < 50:
        raise ValueError("too few texels to estimate lighting from")
    n = normals[sel].astype(np.float64)
    w0 = weight[sel].astype(np.float64)
    vals = rgb_lin[sel].astype(np.float64)
    alb = np.empty_like(vals)
    for ch in range(3):
        alb[:, ch] = np.average(vals[:, ch], weights=w0)
    sh = np.zeros((9, 3))
    wr = np.tile(w0[:, None], (1, 3))
    sigma_t = albedo_sigma_mm / max(texel_mm, 1e-6)
    albedo_map = np.zeros(rgb_lin.shape, np.float32)
    basis = sh_lighting.sh_basis(n)
    for it in range(max(iterations, 1)):
        for ch in range(3):
            sh[:, ch], wr[:, ch] = sh_lighting.fit_sh(n, vals[:, ch], alb[:, ch], w0)
        shading = basis @ sh  # (N,3)
        # one scale per channel: mean shading 1 over the texels
        scale = np.average(shading, axis=0, weights=w0)
        scale = np.where(np.abs(scale) > 1e-9, scale, 1.0)
        sh /= scale
        shading /= scale
        # albedo: weighted local LS ratio; robust weights keep hair and highlights out
        num = np.zeros(weight.shape + (3,), np.float32)
        den = np.zeros(weight.shape + (3,), np.float32)
        num[sel] = wr * shading * vals
        den[sel] = wr * shading * shading
        nb = _blur(num, sigma_t)
        db = _blur(den, sigma_t)
        # a prior pulling the albedo towards its mean: without it the alternation keeps moving
        # slow shading into the albedo (the product is all a photo constrains) and the SH keep
        # drifting (15 % at the 3rd round, 6 % at the 4th, 1.5 % at the 10th on the astronaut);
        # with it they settle (13 %, 3 %, 0.6 %, then < 0.1 %). Where no texel has data (far
        # from skin) the albedo is that mean.
        mean_alb = (nb.reshape(-1, 3).sum(0) / np.maximum(db.reshape(-1, 3).sum(0), 1e-12))
        kappa = ALBEDO_PRIOR * np.median(db[sel], axis=0)
        albedo_map = (nb + kappa * mean_alb) / np.maximum(db + kappa, 1e-8)
        alb = albedo_map[sel].astype(np.float64)
    pred = alb * shading
    rel = (vals - pred) / np.maximum(pred, 1e-4)
    wl = wr.mean(1)
    res = float(np.sqrt(np.average((rel ** 2).mean(1), weights=np.maximum(wl, 1e-12)))) if wl.sum() > 0 else 0.0
    wout = np.zeros(weight.shape, np.float32)
    wout[sel] = wl
    return Lighting(sh=sh, albedo=np.maximum(albedo_map, 0.0).astype(np.float32), weight=wout, residual=res)


# ---- shape from shading -------------------------------------------------------------------------
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
                        check: Optional[Callable[[], None]] = None, clamp: bool = True) -> tuple[np.ndarray, dict]:
    """Steps 4-6 of the module docstring on UV-space arrays: the displacement (S,S) in mm.

    ``rgb_lin`` (S,S,3) linear photo colour per texel, ``surface`` the proxy (normals in the
    lighting's frame), ``weight`` (S,S) confidence of each texel's colour (skin x visibility),
    ``lighting`` from :func:`estimate_lighting`, ``fade`` (S,S) multiplies the result (default
    ``weight``), ``texels_per_pixel`` the photo's resolution in texels (its detail below that
    is interpolation, not skin).
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
    r_lp, _ = _wblur(r, w, lp)
    r_hp = np.where(sel, r_lp - _wblur(r_lp, w, highpass_mm / mm)[0], 0.0)
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
    d_lp, _ = _wblur(desat, w, lp)
    d_hp = d_lp - _wblur(d_lp, w, highpass_mm / mm)[0]
    inv_alb = 1.0 / np.maximum(lighting.albedo.astype(np.float64), 1e-4)
    white = (inv_alb[..., 2] - inv_alb[..., 0]) / np.maximum(inv_alb @ LUMA, 1e-6)  # desat / r for white
    frac = d_hp / np.maximum(r_hp * white, 1e-3)
    whiteness = np.where(white > 0.1, _smoothstep(SPECULAR_WHITE_LO, SPECULAR_WHITE_HI, frac), 0.0)
    spec = (_smoothstep(SPECULAR_LO, SPECULAR_HI, r_hp) * whiteness).astype(np.float32)
    spec = np.maximum(spec, np.clip(3.0 * _blur(spec, SPECULAR_GROW_MM / mm), 0.0, 1.0))
    if (spec > 0.01).any():
        around, _ = _wblur(r_lp, w * (1.0 - spec), 2.0 * SPECULAR_GROW_MM / mm)
        r_lp = np.where(sel, spec * around + (1.0 - spec) * r_lp, 0.0).astype(np.float32)
        r_hp = np.where(sel, r_lp - _wblur(r_lp, w, highpass_mm / mm)[0], 0.0)
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


# ---- the photo ------------------------------------------------------------------------------
def photo_texels_per_pixel(model: MorphableModel, vertices: np.ndarray, camera: Camera, size: int,
                           polygon_range: tuple[int, int] | None = None, tile: int = 0) -> float:
    """How many texels of a size² tile one photo pixel spans, on the face as the camera sees it:
    per triangle sqrt(texel area / projected pixel area), median over the triangles that face
    the camera (cos > 0.6) -- the foreshortened rest is not where detail is taken from."""
    lo, hi = polygon_range if polygon_range is not None else model.regions["face"][1]
    tv, tu = model.triangles((lo, hi))
    v = np.asarray(vertices, np.float64)
    p = v[tv]  # (T,3,3)
    px = camera.project(p.reshape(-1, 3)).reshape(-1, 3, 2)
    uv = raster.uv_to_texel(model.uvs[tu], size, tile)

    def area2(q):
        return np.abs((q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1])
                      - (q[:, 2, 0] - q[:, 0, 0]) * (q[:, 1, 1] - q[:, 0, 1]))

    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
    view = camera.center[None, :] - p.mean(1)
    view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
    facing = np.einsum("ij,ij->i", fn, view) > 0.6
    a_px, a_tx = area2(px), area2(uv)
    ok = facing & (a_px > 1e-9) & (a_tx > 1e-9)
    if not ok.any():
        return 1.0
    return float(np.median(np.sqrt(a_tx[ok] / a_px[ok])))


def working_size(size: int, texels_per_pixel: float) -> int:
    """The tile size the estimate runs at: halved (down to MIN_WORK_SIZE) while one photo pixel
    would still span WORK_TEXELS_PER_PIXEL texels -- finer than that the photo holds no
    information, only its pixel grid, so solving there costs time and gives nothing."""
    work = int(size)
    while (work % 2 == 0 and work // 2 >= MIN_WORK_SIZE
           and texels_per_pixel * (work // 2) / size >= WORK_TEXELS_PER_PIXEL):
        work //= 2
    return work


def extract_photo_detail(model: MorphableModel, rec: FaceReconstruction, photo: np.ndarray, size: int = 1024,
                         job=None) -> PhotoDetail:
    """The person's own detail map D(I_x) from ``photo`` on the fitted proxy ``rec.fit``.

    See the module docstring for the method. ``job`` (``backend.progress.Job``-like, with
    ``check()`` and ``report(fraction, message)``) gets progress 0..1 and cancellation.
    """
    if rec.fit is None:
        raise ValueError("the reconstruction has no fit")
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be (H, W, 3) uint8, got {photo.shape} {photo.dtype}")
    size = int(size)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    clock = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now

    sub = _SubJob(job, 0.0, 1.0)
    check = sub.check
    sub.report(0.0, "Photo detail: projecting the photo")
    cam = rec.fit.camera
    vertices = model.shape(np.asarray(rec.fit.identity, np.float64), np.asarray(rec.fit.expression, np.float64))
    face = tuple(model.regions["face"][1])
    tpp_out = photo_texels_per_pixel(model, vertices, cam, size, face)
    work = working_size(size, tpp_out)
    k = size // work
    tpp = tpp_out * work / size
    # colour and visibility weight from the texture stage (same raster, same occlusion test);
    # no mirror fill: a mirrored texel's shading is the other side's lighting
    tex = texture.project_texture(model, vertices, cam, photo, face, 0, work, _SubJob(job, 0.0, 0.45),
                                  mirror=False)
    lap("project")
    rotation = CAMERA_FACING @ np.asarray(cam.rotation, np.float64)
    surf = texel_surface(model, vertices, work, rotation, face, 0, check)
    rgb = srgb_to_linear(tex.rgb)
    vis = np.where(surf.covered, tex.mask, 0.0).astype(np.float32)
    del tex
    mm = surf.median_texel_mm
    lap("surface")
    sub.report(0.5, "Photo detail: lighting and skin")

    geo, _ = geometric_skin_mask(model, surf)
    w_geo = geo * vis
    light = estimate_lighting(rgb, surf.normals, w_geo, mm)
    check()
    shading_l = sh_lighting.shade(surf.normals.astype(np.float64), light.sh) @ LUMA
    core = _core_skin(model, surf) & (geo > 0.99) & (vis > 0.5)
    p_colour, colour_info = colour_skin_probability(rgb, shading_l.astype(np.float32), (w_geo > 0.5), core, mm)
    nonskin = hair_regions(p_colour < 0.5, (vis > 0.3) & surf.covered, mm)
    near_hair = _smoothstep(NONSKIN_NEAR_MM, NONSKIN_FAR_MM, _outside_distance(nonskin) * mm)
    # colour decides only through hair masses: a texel that merely looks off (a creased
    # shadow, a freckle) stays skin; its residual is what shape from shading is for
    skin = (geo * near_hair).astype(np.float32)
    # how well the photo shows each texel: the texture's weight, and for shape from shading a
    # stricter view angle (see VIEW_COS_*)
    view = cam.center[None, None, :] - surf.points.astype(np.float64)
    view = view @ rotation.T
    view /= np.maximum(np.linalg.norm(view, axis=-1, keepdims=True), 1e-9)
    cos_view = np.einsum("...i,...i->...", surf.normals.astype(np.float64), view)
    seen = _smoothstep(0.0, 0.5, vis) * _smoothstep(VIEW_COS_NONE, VIEW_COS_FULL, cos_view)
    skin_seen = (skin * seen).astype(np.float32)
    del view, cos_view
    light = estimate_lighting(rgb, surf.normals, skin_seen, mm)  # again, on skin only
    lap("lighting_mask")
    sub.report(0.65, "Photo detail: shape from shading")

    disp, info = detail_from_shading(rgb, surf, skin_seen, light, fade=skin_seen, texels_per_pixel=tpp, check=check)
    lap("solve")
    if k > 1:
        # back to the requested size: cubic for the (band-limited) relief, linear for the rest
        disp = np.clip(_upsample(disp, k, (size, size), order=3), -MAX_MM, MAX_MM)
        skin_seen = np.clip(_upsample(skin_seen, k, (size, size)), 0.0, 1.0)
        albedo = _upsample(light.albedo, k, (size, size))
        covered = raster.rasterize(raster.uv_to_texel(model.uvs[model.triangles(face)[1]], size, 0), size).tri >= 0
        disp *= covered
        skin_seen *= covered
        lap("upsample")
    else:
        albedo = light.albedo
    sub.report(1.0, "Photo detail done")
    inside = skin_seen > 0.5
    stats = {
        "size": size,
        "working_size": work,
        "texel_mm": round(mm * work / size, 4),
        "texels_per_photo_pixel": round(tpp_out, 3),
        "skin_fraction": round(float(inside.sum()) / float(size * size), 4),
        "lighting_residual": round(light.residual, 4),
        "displacement_abs_p99_mm": round(float(np.percentile(np.abs(disp[inside]), 99)) if inside.any() else 0.0, 4),
        "displacement_range_mm": [round(float(disp.min()), 4), round(float(disp.max()), 4)],
        "timings_s": {**timings, "total": round(time.perf_counter() - t0, 3)},
        **colour_info,
        **info,
    }
    return PhotoDetail(displacement=disp.astype(np.float32), skin_mask=skin_seen.astype(np.float32),
                       sh=light.sh.astype(np.float64), albedo=albedo.astype(np.float32), stats=stats)
