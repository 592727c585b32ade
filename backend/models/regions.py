"""Anatomical regions of the face UV tile, built from the model's 68 landmark vertices.

Every region is a shape in UV space placed relative to the landmarks' UVs (each landmark
vertex's UV through ``corner_uvs``): its *signed distance* (mm, negative inside) is evaluated
on a grid and turned into a hard mask (distance ≤ 0) or a soft one (a smoothstep from 1 at
``-feather/2`` to 0 at ``+feather/2``). Distances are in millimetres at the central face:
UV offsets are scaled by ``mm_per_uv`` = the 3D distance between the outer eye corners
(landmarks 36, 45) over their UV distance (~241 mm per UV unit on ICT-FaceKit; the UV layout
is close to a frontal projection there, so sizes hold to ~±20% over the regions).

Layout facts used: u grows towards the subject's left (+x), v upwards; landmarks follow the
Multi-PIE 68 order (jaw 0–16, brows 17–21 right / 22–26 left, nose 27–35, eyes 36–41 right /
42–47 left, mouth 48–67).

Regions (sided ones come as ``<name>_R`` / ``<name>_L``, subject's right / left):

``forehead``
    above the brows: from 10 mm above the brow line (landmarks 17–26, interpolated along u)
    up to 60 mm above it, laterally to 4 mm beyond the brow tails. Frontalis (AU1, AU2)
    lines.
``glabella``
    between the inner brow heads (21, 22, 3 mm in from each), from 6 mm above the nose root
    (27) to 12 mm above the brow heads. Corrugator / procerus (AU4) lines.
``crows_feet_R`` / ``_L``
    an ellipse lateral to each outer eye corner (36, 45): centre 14 mm out and 2 mm down
    from the corner, semi-axes 10 mm (across) × 14 mm (up-down). Orbicularis oculi (AU6)
    lines.
``nose``
    nose root and dorsum: a capsule from 3 mm below the nose root (27) down the midline
    to landmark 29, radius 7 mm (dorsum plus the upper side walls, where nasalis /
    levator labii alaeque nasi (AU9) "bunny lines" form).
``nasolabial_R`` / ``_L``
    a capsule from just lateral to the nose wing (5 mm out from 31 / 35, 2 mm up) to 9 mm
    lateral to the mouth corner (48 / 54), radius 5 mm: where the nasolabial fold forms
    (zygomaticus major, AU12; levator labii, AU10/AU11).
``infraorbital_R`` / ``_L``
    below each lower eyelid: from 6 to 25 mm below the lowest lower-lid landmark (40/41,
    46/47), between the inner and outer eye corners. Not in the brief's list, but AU6, AU7
    and AU9 compress this skin strongly on ICT-FaceKit (and on real faces: lower-lid and
    infraorbital lines), so it is its own region rather than part of ``elsewhere``.
``perioral``
    the upper lip's skin: between the nose base (31–35, 2 mm down) and the upper vermilion
    border (48–54, 1.5 mm up). Orbicularis oris (AU18, AU22, AU24, AU28): vertical lip lines.
``chin``
    an ellipse midway between the lower lip (57) and the chin point (8), 14 mm across and
    0.35 × their distance up-down. Mentalis (AU17): the chin boss's "cobblestone" dimpling.
``mouth_corner_R`` / ``_L``
    below and outside each lip corner (48 / 54): a capsule from 2 mm out and 4 mm down to
    7 mm out and 20 mm down, radius 4 mm. Depressor anguli oris (AU15): lines beyond the corners.
``dimple_R`` / ``_L``
    an ellipse 12 mm lateral and 2 mm above each lip corner, 4 × 7 mm. Buccinator (AU14).
``elsewhere``
    face skin far from all of the above and from the eyes, nose and lips: the lower cheeks
    (at least 30 mm below the lower eyelids, 10 mm outside every other region, 12 mm inside the
    face contour). Wrinkles here are an error: no AU of the FACS table makes them.

Features (regional skin parameters, not wrinkle regions): ``eyelids_R`` / ``_L`` (the eye
outline, 8 mm out), ``lips`` (the vermilion, 1 mm out), ``nose_tip`` (the lobule and alae: the nose
base 31–35 and tip 30, 4 mm out).

The sizes are this project's choice, placed on the landmarks after the muscles the FACS manual
names for each AU (no published map gives them in millimetres).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..core.imaging import resize_bilinear
from .morphable import MorphableModel

REGION_NAMES = ("forehead", "glabella", "crows_feet_R", "crows_feet_L", "nose",
                "nasolabial_R", "nasolabial_L", "infraorbital_R", "infraorbital_L", "perioral", "chin",
                "mouth_corner_R", "mouth_corner_L", "dimple_R", "dimple_L", "elsewhere")
# facial features, for regional skin parameters (not wrinkle regions)
FEATURE_NAMES = ("eyelids_R", "eyelids_L", "lips", "nose_tip")
# groups that tests and stats read as one region
REGION_GROUPS = {
    "forehead": ("forehead",),
    "glabella": ("glabella",),
    "crows_feet": ("crows_feet_R", "crows_feet_L"),
    "nose": ("nose",),
    "nasolabial": ("nasolabial_R", "nasolabial_L"),
    "infraorbital": ("infraorbital_R", "infraorbital_L"),
    "perioral": ("perioral",),
    "chin": ("chin",),
    "mouth_corner": ("mouth_corner_R", "mouth_corner_L"),
    "dimple": ("dimple_R", "dimple_L"),
    "elsewhere": ("elsewhere",),
    "eyelids": ("eyelids_R", "eyelids_L"),
    "lips": ("lips",),
    "nose_tip": ("nose_tip",),
}
DEFAULT_FEATHER_MM = 4.0
_SDF_BASE = 512  # signed distances are evaluated at this size, then resampled (they are smooth)


def landmark_uvs(model: MorphableModel) -> np.ndarray:
    """(68, 2) UV of each landmark vertex (its first corner's UV)."""
    cv = model.corner_vertices
    out = np.empty((len(model.landmark_vertices), 2), np.float64)
    for i, v in enumerate(model.landmark_vertices):
        c = np.flatnonzero(cv == v)
        if not len(c):
            raise ValueError(f"landmark vertex {v} has no polygon corner")
        out[i] = model.uvs[model.corner_uvs[c[0]]]
    return out


@dataclass(frozen=True)
class RegionLayout:
    """Landmark UVs and the UV -> mm scale the region shapes are built with."""

    lm: np.ndarray  # (68, 2) UV
    mm_per_uv: float

    @staticmethod
    def from_model(model: MorphableModel) -> "RegionLayout":
        lm = landmark_uvs(model)
        p = model.neutral[model.landmark_vertices].astype(np.float64)
        s = float(np.linalg.norm(p[36] - p[45]) / max(np.linalg.norm(lm[36] - lm[45]), 1e-9))
        return RegionLayout(lm, s)


# ------------------------------------------------------------ signed distances (mm) on points

def _seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-18), 0.0, 1.0)
    d = p - (a + t[:, None] * ab)
    return np.sqrt(np.einsum("ij,ij->i", d, d))


def sd_capsule(p: np.ndarray, a, b, r: float) -> np.ndarray:
    return _seg_dist(p, np.asarray(a, float), np.asarray(b, float)) - r


def sd_ellipse(p: np.ndarray, c, ax: float, ay: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on the axes)."""
    q = (p - np.asarray(c, float)) / np.array([ax, ay])
    k = np.sqrt(np.einsum("ij,ij->i", q, q))
    return (k - 1.0) * min(ax, ay)


def sd_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance to a simple polygon (negative inside)."""
    poly = np.asarray(poly, float)
    d = np.full(len(p), np.inf)
    inside = np.zeros(len(p), bool)
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        d = np.minimum(d, _seg_dist(p, a, b))
        # even-odd crossing test along +x
        cond = (a[1] > p[:, 1]) != (b[1] > p[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = a[0] + (p[:, 1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        inside ^= cond & (p[:, 0] < xint)
    return np.where(inside, -d, d)


def _shapes(layout: RegionLayout):
    """Region name -> function(points in mm frame (N,2)) -> signed distance (N,) mm.

    The mm frame is UV scaled by mm_per_uv (x = u·s, y = v·s; y up)."""
    s = layout.mm_per_uv
    L = layout.lm * s  # landmarks in mm frame
    brow = L[17:27]
    order = np.argsort(brow[:, 0])
    bx, by = brow[order, 0], brow[order, 1]

    def brow_y(x):
        return np.interp(x, bx, by)

    out = {}

    # forehead: polygon between brow + 10 mm and brow + 60 mm, x from brow tails ± 4 mm
    xs = np.linspace(bx[0] - 4.0, bx[-1] + 4.0, 24)
    lower = np.stack([xs, brow_y(xs) + 10.0], 1)
    upper = np.stack([xs[::-1], brow_y(xs[::-1]) + 60.0], 1)
    fore = np.concatenate([lower, upper])
    out["forehead"] = lambda p, poly=fore: sd_polygon(p, poly)

    # glabella: between the inner brow heads, nose root + 4 mm .. brow heads + 12 mm
    xl, xr = L[21, 0] + 3.0, L[22, 0] - 3.0
    y0 = L[27, 1] + 6.0
    y1 = max(L[21, 1], L[22, 1]) + 12.0
    glab = np.array([[xl, y0], [xr, y0], [xr, y1], [xl, y1]])
    out["glabella"] = lambda p, poly=glab: sd_polygon(p, poly)

    # crow's feet: lateral to the outer eye corners (36 right, 45 left; right is -x)
    for side, idx, sign in (("R", 36, -1.0), ("L", 45, 1.0)):
        c = L[idx] + np.array([sign * 14.0, -2.0])
        out[f"crows_feet_{side}"] = lambda p, c=c: sd_ellipse(p, c, 10.0, 14.0)

    # nose root and dorsum
    a = L[27] + np.array([0.0, -3.0])
    b = L[29]
    out["nose"] = lambda p, a=a, b=b: sd_capsule(p, a, b, 7.0)

    # nasolabial folds
    for side, wing, corner, sign in (("R", 31, 48, -1.0), ("L", 35, 54, 1.0)):
        a = L[wing] + np.array([sign * 5.0, 2.0])
        b = L[corner] + np.array([sign * 9.0, 0.0])
        out[f"nasolabial_{side}"] = lambda p, a=a, b=b: sd_capsule(p, a, b, 5.0)

    # infraorbital: below the lower eyelid (AU6 / AU7 / AU9 lower-lid and infraorbital lines)
    for side, inner, outer, lids in (("R", 39, 36, (40, 41)), ("L", 42, 45, (46, 47))):
        y_lid = min(L[lids[0], 1], L[lids[1], 1])
        x0, x1 = sorted((L[inner, 0], L[outer, 0]))
        box = np.array([[x0, y_lid - 6.0], [x1, y_lid - 6.0], [x1, y_lid - 25.0], [x0, y_lid - 25.0]])
        out[f"infraorbital_{side}"] = lambda p, poly=box: sd_polygon(p, poly)

    # upper lip skin: between the nose base and the upper vermilion border
    base = L[31:36][::-1] + np.array([0.0, -2.0])
    lip = L[48:55] + np.array([0.0, 1.5])
    out["perioral"] = lambda p, poly=np.concatenate([lip, base]): sd_polygon(p, poly)

    # chin boss (mentalis)
    chin_c = 0.5 * (L[57] + L[8])
    chin_ry = 0.35 * abs(L[57, 1] - L[8, 1])
    out["chin"] = lambda p, c=chin_c, ry=chin_ry: sd_ellipse(p, c, 14.0, ry)

    # beyond the lip corners: depressor anguli oris (AU15) below, buccinator dimple (AU14) beside
    for side, corner, sign in (("R", 48, -1.0), ("L", 54, 1.0)):
        a = L[corner] + np.array([sign * 2.0, -4.0])
        b = L[corner] + np.array([sign * 7.0, -20.0])
        out[f"mouth_corner_{side}"] = lambda p, a=a, b=b: sd_capsule(p, a, b, 4.0)
        c = L[corner] + np.array([sign * 12.0, 2.0])
        out[f"dimple_{side}"] = lambda p, c=c: sd_ellipse(p, c, 4.0, 7.0)

    # features (not wrinkle regions; used for regional skin parameters)
    features = {
        "eyelids_R": lambda p: sd_polygon(p, L[36:42]) - 8.0,
        "eyelids_L": lambda p: sd_polygon(p, L[42:48]) - 8.0,
        "lips": lambda p: sd_polygon(p, L[48:60]) - 1.0,
        # the lobule and the alae: the nose base (31-35) and tip (30), 4 mm out
        "nose_tip": lambda p: sd_polygon(p, L[[31, 30, 35, 34, 33, 32]]) - 4.0,
    }
    nose_body = lambda p: sd_polygon(p, L[[27, 31, 32, 33, 34, 35]])  # noqa: E731

    # elsewhere: lower cheeks and chin, far from every other region and the features
    jaw = L[0:17]
    lower_lid_y = {"R": min(L[40, 1], L[41, 1]), "L": min(L[46, 1], L[47, 1])}
    top = np.array([[jaw[16, 0], L[24, 1]], [jaw[0, 0], L[19, 1]]])
    contour = np.concatenate([jaw, top])

    def elsewhere(p, done):
        """``done``: the other regions' signed distances at the same points."""
        d_face = sd_polygon(p, contour) + 12.0  # ≥ 12 mm inside the face contour
        below_eye = np.where(p[:, 0] < L[27, 0], p[:, 1] - (lower_lid_y["R"] - 30.0),
                             p[:, 1] - (lower_lid_y["L"] - 30.0))
        d = np.maximum(d_face, below_eye)
        for name, sd in done.items():
            if name in features:
                continue
            d = np.maximum(d, 10.0 - sd)  # 10 mm clear of every wrinkle region
        for f in (lambda q: done["eyelids_R"] + 8.0, lambda q: done["eyelids_L"] + 8.0,
                  lambda q: done["lips"] + 1.0, nose_body):
            d = np.maximum(d, 4.0 - f(p))  # 4 mm clear of the eyes, lips and nose
        return d

    out.update(features)
    out["elsewhere"] = elsewhere
    return out


# ------------------------------------------------------------ grids

def _uv_grid_points(size: int, tile: int = 0) -> np.ndarray:
    c = (np.arange(size) + 0.5) / size
    u = tile + c
    v = 1.0 - c
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu.ravel(), vv.ravel()], 1)


@lru_cache(maxsize=8)
def _sdf_cached(key, size: int) -> dict[str, np.ndarray]:
    lm, s = key
    layout = RegionLayout(np.asarray(lm, np.float64).reshape(68, 2), s)
    pts = _uv_grid_points(size) * layout.mm_per_uv
    shapes = _shapes(layout)
    done = {n: f(pts) for n, f in shapes.items() if n != "elsewhere"}
    done["elsewhere"] = shapes["elsewhere"](pts, done)
    return {n: v.reshape(size, size).astype(np.float32) for n, v in done.items()}


def signed_distances(model: MorphableModel, size: int = 512) -> dict[str, np.ndarray]:
    """Region name -> (size, size) float32 signed distance in mm (negative inside), row 0 = v=1.

    Evaluated once at 512² (cached) and bilinearly resampled (texel centres aligned) to other
    sizes: the distances are smooth, so hard masks thresholded from them keep sub-texel
    edges at large sizes."""
    layout = RegionLayout.from_model(model)
    key = (tuple(np.round(layout.lm, 7).ravel().tolist()), round(layout.mm_per_uv, 6))
    base = _SDF_BASE
    sd = _sdf_cached(key, base)
    if base == size:
        return {k: v.copy() for k, v in sd.items()}
    return {k: resize_bilinear(v, size) for k, v in sd.items()}


def region_masks(model: MorphableModel, size: int = 512, soft: bool = False,
                 feather_mm: float = DEFAULT_FEATHER_MM, names=None) -> dict[str, np.ndarray]:
    """Region masks (size, size) float32 in 0..1 (hard: exactly 0/1), row 0 = v = 1.

    ``names``: a subset of :data:`REGION_NAMES` or :data:`REGION_GROUPS` keys (groups are the
    union of their parts). Soft masks fall from 1 to 0 across ``feather_mm`` around the
    region's edge."""
    sd = signed_distances(model, size)
    want = list(names) if names is not None else list(REGION_NAMES)
    known = REGION_NAMES + FEATURE_NAMES + tuple(REGION_GROUPS)
    out = {}
    for name in want:
        parts = REGION_GROUPS.get(name, (name,))
        if any(p not in sd for p in parts):
            raise KeyError(f"unknown region {name!r}; known: {sorted(set(known))}")
        d = sd[parts[0]]
        for p in parts[1:]:
            d = np.minimum(d, sd[p])
        if soft:
            t = np.clip(0.5 - d / max(feather_mm, 1e-6), 0.0, 1.0)
            out[name] = (t * t * (3.0 - 2.0 * t)).astype(np.float32)
        else:
            out[name] = (d <= 0).astype(np.float32)
    return out


def region_label_image(model: MorphableModel, size: int = 512) -> np.ndarray:
    """(size, size, 3) uint8 colour picture of the hard regions, for humans."""
    colours = {"forehead": (230, 80, 80), "glabella": (240, 200, 60), "crows_feet_R": (80, 200, 90),
               "crows_feet_L": (80, 200, 90), "nose": (80, 140, 240), "nasolabial_R": (200, 90, 220),
               "nasolabial_L": (200, 90, 220), "infraorbital_R": (60, 200, 200),
               "infraorbital_L": (60, 200, 200), "perioral": (250, 150, 60), "chin": (170, 110, 60),
               "mouth_corner_R": (120, 90, 200), "mouth_corner_L": (120, 90, 200), "dimple_R": (240, 120, 160),
               "dimple_L": (240, 120, 160), "elsewhere": (140, 140, 140)}
    img = np.zeros((size, size, 3), np.float32)
    for name, m in region_masks(model, size).items():
        img += m[..., None] * np.asarray(colours[name], np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def smooth_field(values: dict[str, float], model: MorphableModel, size: int, default: float,
                 feather_mm: float = 12.0) -> np.ndarray:
    """A smooth (size, size) float32 field that takes ``values[name]`` inside region ``name``
    and ``default`` far from every named region (soft masks with a wide feather, blended as a
    normalised weighted mean). Used for regional skin parameters."""
    masks = region_masks(model, size, soft=True, feather_mm=feather_mm, names=list(values))
    num = np.zeros((size, size), np.float32)
    den = np.zeros((size, size), np.float32)
    for name, val in values.items():
        num += masks[name] * np.float32(val)
        den += masks[name]
    bg = np.clip(1.0 - den, 0.0, None)
    return ((num + bg * np.float32(default)) / np.maximum(den + bg, 1e-6)).astype(np.float32)


__all__ = ["REGION_NAMES", "FEATURE_NAMES", "REGION_GROUPS", "RegionLayout", "landmark_uvs", "signed_distances",
           "region_masks", "region_label_image", "smooth_field"]
