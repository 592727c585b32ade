"""What in the photo is not relief: marks whose shading residual the solve must not turn into
displacement. Each test returns a soft mask (0..1) over the UV tile; shape from shading replaces
the residual under it by the residual around it (see ``shading.detail_from_shading``), so the
relief continues smoothly under a mark instead of printing it.

- **Glasses** -- the rims, the bridge and the temples: texels whose albedo brightness
  (luminance over the modelled shading) is far below skin's, *and* lie on a dark ring around
  both eyes. Darkness alone is not enough: the shadowed flank of a deep nasolabial fold in
  the bundled photo is as dark as a rim (under ``DARK_NONE`` of skin's brightness), but it
  does not go round an eye. The test casts rays from each eye's centre and asks how many of
  them meet a dark texel within a lens's reach: a brow alone covers about a quarter of the
  rays, a rim nearly all; glasses are there when both eyes reach ``RING_COVERAGE``. Then the
  dark texels within the rings' reach, between the eyes and level with them out to the
  face's sides are marks.
- **Strands of hair** -- dark texels joined to a hair mass (``masks.hair_regions``): a strand
  falling from a fringe over the forehead is a thin line like a crease, but it starts in the
  hair; a crease does not. Found by morphological reconstruction of the dark texels from the
  hair masses.
- **Spots** -- moles, large freckles, small scars: dark, round blobs up to ~5 mm (and bright
  ones: what the specular test leaves of a highlight). A crease is a
  line: at its scale one curvature of the residual is large and the other small; a spot is
  curved both ways. The test takes the smaller Hessian eigenvalue of the residual at a few
  scales (scale-normalised, Lindeberg 1998, "Feature detection with automatic scale
  selection"): above ``SPOT_LO`` a spot begins, from ``SPOT_HI`` it is certain. No colour
  test: in a development measurement on the bundled photo (not kept as a command) a painted
  freckle's hue shift was no larger than a crease shadow's, its chroma being JPEG's, at half
  the resolution.

What is left, said plainly: marks that are neither round nor dark (a thin scar, a pale strand
on pale skin, a strand that does not reach the hair in the photo, thin metal rims a pixel
wide, rimless glasses) still print as relief; a real pit or bump of spot size is
smoothed over, as a freckle is; skin seen through a lens is kept (it is skin, slightly
magnified); the lens's own reflections are handled only where they pass the specular test.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import morphology
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

from ...core.imaging import smoothstep
from .filters import blur
from .masks import log_albedo_brightness

# Albedo brightness relative to skin's (core median) below which a texel is dark (on the bundled
# photo, `scripts/photo_cleaning.py` "thresholds": valleys of the map deeper than 0.1 mm keep a
# median 0.94 of skin's brightness, 10th percentile 0.69; a painted 3 mm black rim 0.16).
DARK_FULL, DARK_NONE = 0.3, 0.45
# Once a frame or a hair mass vouches for a dark line, its dimmer edge texels (a mark mixed
# with skin in one pixel) and lighter strands count too: up to DIM_NONE of skin's brightness.
DIM_FULL, DIM_NONE = 0.45, 0.65
# Glasses: rays from each eye centre, out to a lens's reach (a 50 x 38 mm lens centred near
# the eye reaches ~28 mm; its temple leaves it at the side); the fraction of rays that must
# meet a dark texel on both sides.
RING_RAYS, RING_MIN_MM, RING_MAX_MM = 72, 6.0, 32.0
RING_COVERAGE = 0.6
TEMPLE_HALF_MM = 6.0  # the temples run level with the eyes: a band this far above and below
STRAND_JOIN_MM = 2.0  # a dark line this close to a hair mass starts in it
# Spot test: scales (Gaussian sigma, mm) and the scale-normalised blob response of the relative
# shading residual (same script: clean skin 90th / 99th percentile 0.016 / 0.041, painted 3-5 mm
# moles median 0.067, painted 1-2 mm freckles 0.007 -- under the skin's own, so not taken).
SPOT_SCALES_MM = (0.8, 1.2, 1.8, 2.7)
SPOT_LO, SPOT_HI = 0.03, 0.06
MARK_GROW_MM = 1.0  # a mark's edge pixels mix it with skin: grown by this much


def grow(m: np.ndarray, grow_texels: float) -> np.ndarray:
    """A soft mask grown softly by about ``grow_texels``: a mark's rim is part of it."""
    return np.maximum(m, np.clip(3.0 * blur(m.astype(np.float32), grow_texels), 0.0, 1.0)).astype(np.float32)


def albedo_brightness(rgb_lin: np.ndarray, shading_luma: np.ndarray, core: np.ndarray) -> np.ndarray | None:
    """:func:`masks.log_albedo_brightness` relative to its median over ``core`` skin (None when the
    core is too small to trust)."""
    if int(core.sum()) < 50:
        return None
    b = log_albedo_brightness(rgb_lin, shading_luma)
    return (b - np.median(b[core])).astype(np.float32)


def _ring_coverage(dark: np.ndarray, centre: np.ndarray, texel_mm: float) -> tuple[float, np.ndarray]:
    """Fraction of rays from ``centre`` (x, y texels) that meet a dark texel between RING_MIN_MM
    and RING_MAX_MM, and each ray's farthest such distance (texels; 0 for none)."""
    ang = np.linspace(0.0, 2 * np.pi, RING_RAYS, endpoint=False)
    rad = np.arange(RING_MIN_MM, RING_MAX_MM, 0.5 * texel_mm) / texel_mm
    xs = centre[0] + np.cos(ang)[:, None] * rad[None, :]
    ys = centre[1] + np.sin(ang)[:, None] * rad[None, :]
    v = ndimage.map_coordinates(dark, [ys.ravel(), xs.ravel()], order=1, mode="constant").reshape(xs.shape)
    hit = v > 0.5
    far = np.where(hit.any(1), rad[np.where(hit, np.arange(len(rad))[None, :], -1).max(1)], 0.0)
    return float(hit.any(1).mean()), far


def glasses_marks(dark: np.ndarray, dim: np.ndarray, eye_centres: np.ndarray, texel_mm: float
                  ) -> tuple[np.ndarray, dict]:
    """The dim texels of a glasses frame (module docstring), or nothing when the dark texels do
    not ring both eyes. ``eye_centres`` (2,2) texel x, y of the right and left eye."""
    cover = [_ring_coverage(dark, c, texel_mm) for c in eye_centres]
    info = {"glasses_ring_coverage": [round(c, 3) for c, _ in cover]}
    if min(c for c, _ in cover) < RING_COVERAGE:
        return np.zeros(dark.shape, np.float32), {**info, "glasses": False}
    rows, cols = np.mgrid[0:dark.shape[0], 0:dark.shape[1]].astype(np.float32)
    zone = np.zeros(dark.shape, bool)
    for c, (_, far) in zip(eye_centres, cover):
        reach = float(np.percentile(far[far > 0], 90)) + 2.0 / texel_mm
        zone |= np.hypot(cols - c[0], rows - c[1]) <= reach
    lo, hi = np.sort(eye_centres[:, 0])
    mid_row = float(eye_centres[:, 1].mean())
    band = np.abs(rows - mid_row) <= TEMPLE_HALF_MM / texel_mm
    zone |= band & ((cols < lo) | (cols > hi))  # temples
    zone |= (cols >= lo) & (cols <= hi) & (rows <= mid_row + TEMPLE_HALF_MM / texel_mm)  # bridge
    return (dim * zone).astype(np.float32), {**info, "glasses": True}


def strand_marks(dim: np.ndarray, hair: np.ndarray, texel_mm: float) -> np.ndarray:
    """Dim texels joined to a hair mass, outside it (module docstring)."""
    if not hair.any():
        return np.zeros(dim.shape, np.float32)
    line = (dim > 0.5) & ~hair
    seed = line & ndimage.binary_dilation(hair, iterations=max(1, int(round(STRAND_JOIN_MM / texel_mm))))
    if not seed.any():
        return np.zeros(dim.shape, np.float32)
    joined = morphology.reconstruction(seed.astype(np.uint8), line.astype(np.uint8), method="dilation") > 0
    return (dim * joined).astype(np.float32)


def colour_marks(rgb_lin: np.ndarray, shading_luma: np.ndarray, core: np.ndarray, hair: np.ndarray,
                 eye_centres: np.ndarray, texel_mm: float, texels_per_pixel: float = 1.0
                 ) -> tuple[np.ndarray, dict]:
    """Glasses and strands (module docstring) as one soft mask 0..1, grown by MARK_GROW_MM (at
    least a photo pixel), and figures."""
    bright = albedo_brightness(rgb_lin, shading_luma, core)
    if bright is None:
        return np.zeros(core.shape, np.float32), {"colour_marks": "skipped"}
    dark = (1.0 - smoothstep(np.log(DARK_FULL), np.log(DARK_NONE), bright)).astype(np.float32)
    dim = (1.0 - smoothstep(np.log(DIM_FULL), np.log(DIM_NONE), bright)).astype(np.float32)
    rims, info = glasses_marks(dark, dim, eye_centres, texel_mm)
    strands = strand_marks(dim, hair, texel_mm)
    grow_by = max(MARK_GROW_MM / texel_mm, texels_per_pixel)
    out = grow(np.maximum(rims, strands), grow_by)
    info["strand_texels"] = int((strands > 0.5).sum())
    return out, info


def spot_strength(residual: np.ndarray, weight: np.ndarray, texel_mm: float, min_sigma: float = 0.5
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per texel, the strongest scale-normalised round-blob response of the residual over
    SPOT_SCALES_MM (scales under ``min_sigma`` texels skipped), and the scale (texels) it came from."""
    best = np.zeros(residual.shape, np.float32)
    r = np.where(weight > 0, residual, 0.0).astype(np.float32)
    sigma_of = np.zeros(residual.shape, np.float32)
    for s_mm in SPOT_SCALES_MM:
        s = s_mm / texel_mm
        if s < min_sigma:
            continue
        ev = hessian_matrix_eigvals(hessian_matrix(r, sigma=s, order="rc", use_gaussian_derivatives=True))
        # the smaller curvature: > 0 only for a dark blob (both curvatures up); a bright blob
        # (a highlight's rim the specular test missed) has both down
        strength = (s * s * np.maximum(ev[1], -ev[0])).astype(np.float32)
        better = strength > best
        best = np.where(better, strength, best)
        sigma_of = np.where(better, s, sigma_of)
    return best, sigma_of


def spot_marks(residual: np.ndarray, weight: np.ndarray, texel_mm: float, min_sigma: float = 0.5) -> np.ndarray:
    """Round spots, dark or bright, in the (low-passed) relative shading residual (module
    docstring): a soft mask 0..1, grown to the spot's extent."""
    best, sigma_of = spot_strength(residual, weight, texel_mm, min_sigma)
    spot = smoothstep(SPOT_LO, SPOT_HI, best) * (weight > 0)
    if not (spot > 0.01).any():
        return np.zeros(residual.shape, np.float32)
    # a blob detected at scale s covers about 2 s around its centre
    return grow(spot.astype(np.float32), float(np.median(sigma_of[spot > 0.5])) if (spot > 0.5).any() else 1.0)
