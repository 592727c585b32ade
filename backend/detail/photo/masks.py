"""Where the photo shows skin: a geometric prior from the landmark vertices (eyes, brows, lips,
nostrils out; only the face oval in) and a colour test that finds hair masses."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import polygon

from ...core.imaging import LUMA, smoothstep
from ...models.morphable import MorphableModel
from .filters import blur
from .surface import TexelSurface, vertex_texels

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


def polygon_mask(poly_xy: np.ndarray, size: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    rr, cc = polygon(poly_xy[:, 1], poly_xy[:, 0], (size, size))
    m[rr, cc] = True
    return m


def outside_distance(mask: np.ndarray) -> np.ndarray:
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
        "eye_left": polygon_mask(lm[42:48], s),
        "eye_right": polygon_mask(lm[36:42], s),
        "lips": polygon_mask(lm[48:60], s),
    }
    for name, sl in (("brow_right", slice(17, 22)), ("brow_left", slice(22, 27))):
        b = lm[sl]
        feats[name] = polygon_mask(np.concatenate([b + up * BROW_ABOVE_MM / mm,
                                                    (b - up * BROW_BELOW_MM / mm)[::-1]]), s)
    nose = lm[31:36]
    feats["nostrils"] = polygon_mask(np.concatenate([nose, (nose + up * NOSTRIL_LIFT_MM / mm)[::-1]]), s)

    inside = polygon_mask(oval, s)
    d_in = ndimage.distance_transform_edt(inside).astype(np.float32) * mm  # mm to the oval's edge
    mask = smoothstep(JAW_MARGIN_MM, JAW_MARGIN_MM + FEATHER_MM, d_in)
    margins = {"eye_left": EYE_MARGIN_MM, "eye_right": EYE_MARGIN_MM, "lips": LIP_MARGIN_MM,
               "brow_left": 0.0, "brow_right": 0.0, "nostrils": NOSTRIL_MARGIN_MM}
    for name, m in feats.items():
        d = outside_distance(m) * mm
        mask = mask * smoothstep(margins[name], margins[name] + FEATHER_MM, d)
    mask = mask * surface.covered
    feats["oval"] = inside
    return mask.astype(np.float32), feats


def core_skin(model: MorphableModel, surface: TexelSurface, tile: int = 0) -> np.ndarray:
    """Texels that are skin on almost every face: the band from below the eyes to the nose
    bottom, between the cheek contours -- above any beard, below any fringe, away from brows."""
    lm = vertex_texels(model, model.landmark_vertices, surface.size, tile)
    row_top = max(lm[40, 1], lm[41, 1], lm[46, 1], lm[47, 1])  # lower eyelids (rows grow down)
    row_bot = lm[33, 1]
    poly = np.array([[lm[1, 0], row_top], [lm[15, 0], row_top], [lm[15, 0], row_bot], [lm[1, 0], row_bot]])
    return polygon_mask(poly, surface.size)


EPS = 1e-4  # floor of linear colour and shading before logs and ratios


def log_albedo_brightness(rgb_lin: np.ndarray, shading_luma: np.ndarray) -> np.ndarray:
    """log(luminance / modelled shading): how bright a texel's albedo is, nearly free of the
    lighting (the colour test's third feature; ``marks`` compares it with skin's)."""
    luma = np.maximum(rgb_lin, EPS) @ LUMA.astype(np.float32)
    return np.log(luma / np.maximum(shading_luma, EPS))


def colour_skin_probability(rgb_lin: np.ndarray, shading_luma: np.ndarray, candidate: np.ndarray,
                            core: np.ndarray, texel_mm: float) -> tuple[np.ndarray, dict]:
    """How skin-like each texel's colour is (0..1), against robust statistics of ``core``.

    Features: chromaticity log(R/G), log(B/G) -- nearly independent of shading -- and the
    log of luminance over the modelled shading (an albedo brightness), so dark hair under
    good light and blonde hair (brighter, more yellow than skin in albedo) both stand out.
    Mahalanobis distance to the core's robust mean and covariance (3-sigma trimmed);
    ``SKIN_D_FULL`` .. ``SKIN_D_NONE`` map to 1 .. 0.
    """
    c = np.maximum(rgb_lin, EPS)
    f = np.stack([np.log(c[..., 0] / c[..., 1]), np.log(c[..., 2] / c[..., 1]),
                  log_albedo_brightness(rgb_lin, shading_luma)], axis=-1)
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
    p = 1.0 - smoothstep(SKIN_D_FULL, SKIN_D_NONE, d)
    p = blur(p.astype(np.float32), SKIN_SMOOTH_MM / texel_mm)
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
