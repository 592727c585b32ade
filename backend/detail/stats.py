"""Wrinkle statistics of a detail map: the creases it holds, per face region, measured as a
dermatologist's profilometry would (``python -m backend wrinkle-stats MAP.exr``).

A crease is a valley of the map: band-passed (the proxy-scale shape above ``COARSE_MM`` and the
pore-scale relief below ``FINE_MM`` removed), a texel is on a valley where the map curves up
across a line (the larger Hessian eigenvalue, at the scale of a crease's half-width, dominates
the other) and lies at least ``MIN_DEPTH_MM`` below its surroundings. The valleys are thinned
to centrelines (scikit-image's skeletonize) and every connected centreline of at least
``MIN_LENGTH_MM`` is one crease. Per crease:

- length: along its centreline (mm);
- orientation: of its principal axis on the face (0° along u, the face's left-right; 90° up);
- depth, width, asymmetry: from profiles sampled across it every ~0.5 mm (perpendicular to the
  local line, up to ``PROFILE_MM`` either side): depth = mean shoulder height − floor; width =
  the valley's full width at half that depth; asymmetry = (w₊ − w₋) / width, w₊ the half-width
  on the line's upper side (the left one of a vertical line; 0: symmetric).

Per region (``backend.models.regions``; a crease belongs where most of its centreline lies):
count, and the spacing of neighbouring creases (median distance from a crease's centreline to
the nearest other crease of the same region, neighbours closer than ``MAX_SPACING_MM``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.feature import hessian_matrix, hessian_matrix_eigvals
from skimage.morphology import skeletonize

from ..core.imaging import resample
from ..models.morphable import MorphableModel
from ..models.regions import REGION_NAMES, region_masks
from .strain import face_mesh, mm_per_uv, texel_grid

COARSE_MM = 4.0  # relief wider than this is shape (the proxy, folds of the mesh), not a crease
FINE_MM = 0.12  # narrower than this is pores and micro relief
MIN_DEPTH_MM = 0.05  # shallower valleys are skin texture (the micro-relief network, pores), not creases
MIN_LENGTH_MM = 3.0
PROFILE_MM = 2.5
MAX_SPACING_MM = 20.0
WORK_TEXEL_MM = 0.12  # maps finer than this are analysed at a coarser size (creases are ≥ 0.4 mm wide)
STAT_REGIONS = REGION_NAMES  # every wrinkle region, and "elsewhere"


@dataclass
class Crease:
    region: str
    length_mm: float
    depth_mm: float
    width_mm: float
    asymmetry: float
    angle_deg: float
    spacing_mm: Optional[float] = None  # to the nearest other crease of its region


@dataclass
class RegionStats:
    count: int
    spacing_mm: Optional[float]  # medians over the region's creases
    length_mm: Optional[float]
    length_max_mm: Optional[float]
    depth_mm: Optional[float]
    depth_max_mm: Optional[float]
    width_mm: Optional[float]
    asymmetry: Optional[float]
    angle_deg: Optional[float]  # circular (axial) mean


@dataclass
class WrinkleStats:
    mm_per_texel: float  # of the analysed grid
    regions: dict[str, RegionStats]
    creases: list[Crease] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _work_size(size: int, mm_per_texel: float) -> int:
    s = size
    while s % 2 == 0 and s // 2 >= 256 and mm_per_texel * size / (s // 2) <= WORK_TEXEL_MM:
        s //= 2
    return s


def _axial_mean_deg(angles_deg) -> Optional[float]:
    a = np.radians(np.asarray(angles_deg, np.float64)) * 2.0
    if not len(a):
        return None
    return float(round(float(np.degrees(0.5 * np.arctan2(np.sin(a).mean(), np.cos(a).mean()))), 1) % 180.0)


def _median(values) -> Optional[float]:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return round(float(np.median(v)), 4) if v else None


def crease_stats(m: np.ndarray, mm_per_texel: float, regions: dict[str, np.ndarray],
                 face: Optional[np.ndarray] = None) -> WrinkleStats:
    """Creases of the (S, S) map ``m`` (mm, UV convention: row 0 = v = 1) per region.
    ``regions``: name -> (s, s) bool masks at any square size; ``face``: where the map is
    defined (creases elsewhere are ignored)."""
    m = np.asarray(m, np.float32)
    size = m.shape[0]
    work = _work_size(size, mm_per_texel)
    if work != size:
        m = resample(m, work)
    tx = mm_per_texel * size / work  # mm per texel of the analysed grid

    def to_work(mask):
        mask = np.asarray(mask, np.float32)
        return (resample(mask, work) if mask.shape[0] != work else mask) > 0.5

    face_w = to_work(face) if face is not None else np.ones((work, work), bool)
    band = ndimage.gaussian_filter(m, FINE_MM / tx) - ndimage.gaussian_filter(m, COARSE_MM / tx)
    h = hessian_matrix(band, sigma=max(0.35 / tx, 1.0), order="rc", use_gaussian_derivatives=True)
    l1, l2 = hessian_matrix_eigvals(h)  # l1 >= l2
    local = ndimage.gaussian_filter(m, 1.0 / tx)  # the surroundings' level, ~1 mm
    valley = (l1 > 2.0 * np.abs(l2)) & (l1 > 0) & (local - m > 0.5 * MIN_DEPTH_MM) & (-band > 0.5 * MIN_DEPTH_MM)
    valley &= face_w
    skel = skeletonize(valley)
    labels, n = ndimage.label(skel, structure=np.ones((3, 3)))
    if n == 0:
        return WrinkleStats(tx, {name: RegionStats(0, *([None] * 8)) for name in regions})
    region_w = {name: to_work(mask) for name, mask in regions.items()}
    # the local across-line direction: the eigenvector of the larger eigenvalue of [[rr, rc], [rc, cc]]
    hrr, hrc, hcc = h
    theta = 0.5 * np.arctan2(2.0 * hrc, hrr - hcc)  # angle of the l1 eigenvector from the row axis
    creases: list[Crease] = []
    owners: list[int] = []
    step = max(int(round(0.5 / tx)), 1)
    offsets = np.arange(-PROFILE_MM, PROFILE_MM + tx / 2, tx / 2) / tx  # half-texel samples, in texels
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    boxes = ndimage.find_objects(labels)
    for lab in range(1, n + 1):
        if counts[lab] * tx < MIN_LENGTH_MM:  # the centreline is shorter than its pixel count
            continue
        box = boxes[lab - 1]
        rr, cc = np.nonzero(labels[box] == lab)
        rr, cc = rr + box[0].start, cc + box[1].start
        # length: 8-connected centreline steps (diagonal ones count √2)
        pts = set(zip(rr.tolist(), cc.tolist()))
        diag = sum((r + 1, c + 1) in pts for r, c in pts) + sum((r + 1, c - 1) in pts for r, c in pts)
        straight = sum((r + 1, c) in pts for r, c in pts) + sum((r, c + 1) in pts for r, c in pts)
        length = (straight + np.sqrt(2.0) * diag) * tx
        if length < MIN_LENGTH_MM:
            continue
        votes = {name: int(mask[rr, cc].sum()) for name, mask in region_w.items()}
        region = max(votes, key=votes.get) if votes and max(votes.values()) * 2 >= len(rr) else ""
        # orientation on the face: x = column (u, right), y = -row (v up)
        xy = np.stack([cc * tx, -rr * tx], 1)
        xy = xy - xy.mean(0)
        _, vec = np.linalg.eigh(xy.T @ xy)
        angle = float(round(float(np.degrees(np.arctan2(vec[1, 1], vec[0, 1]))), 1) % 180.0)
        # profiles across the line
        sel = np.arange(0, len(rr), step)
        th = theta[rr[sel], cc[sel]]
        dr, dc = np.cos(th), np.sin(th)  # across-line unit vector (rows, cols)
        coords_r = rr[sel][:, None] + dr[:, None] * offsets[None, :]
        coords_c = cc[sel][:, None] + dc[:, None] * offsets[None, :]
        prof = ndimage.map_coordinates(m, [coords_r, coords_c], order=1, mode="nearest")
        mid = len(offsets) // 2
        near = np.abs(offsets) <= 0.6 / tx
        floor = prof[:, near].min(1)
        left, right = prof[:, :mid].max(1), prof[:, mid + 1:].max(1)
        depth = 0.5 * (left + right) - floor
        half = floor + 0.5 * depth
        wl, wr = [], []
        for k in range(len(sel)):
            # the floor to a fraction of a sample (a parabola through the lowest three), then walk out
            # on each side to where the profile rises through half depth (linearly between samples)
            i0 = int(np.argmin(np.where(near, prof[k], np.inf)))
            i0 = min(max(i0, 1), len(offsets) - 2)
            p_, q_, r_ = prof[k, i0 - 1], prof[k, i0], prof[k, i0 + 1]
            curv = p_ - 2.0 * q_ + r_
            x0 = i0 + (0.5 * (p_ - r_) / curv if curv > 1e-12 else 0.0)
            widths = []
            for direction in (-1, 1):
                j = i0
                while 0 < j < len(offsets) - 1 and prof[k, j + direction] < half[k]:
                    j += direction
                a0, a1 = prof[k, j], prof[k, min(max(j + direction, 0), len(offsets) - 1)]
                frac = float(np.clip((half[k] - a0) / (a1 - a0), 0.0, 1.0)) if a1 > a0 else 0.0
                widths.append(abs(j + direction * frac - x0) * tx / 2)
            wl.append(widths[0])
            wr.append(widths[1])
        wl, wr = np.asarray(wl), np.asarray(wr)
        ok = depth > 0
        if not ok.any():
            continue
        width = float(np.median((wl + wr)[ok]))
        # the + side is the upper one (the left one of a vertical line): the line runs along
        # (cos a, sin a) in the face frame (x = col, y = -row); the normal (-sin a, cos a) turned
        # upwards, in (row, col)
        a = np.radians(angle)
        nx, ny = -np.sin(a), np.cos(a)
        if ny < -1e-9 or (abs(ny) <= 1e-9 and nx > 0):
            nx, ny = -nx, -ny
        normal_rc = np.array([-ny, nx])
        flip = (dr * normal_rc[0] + dc * normal_rc[1]) < 0
        w_plus = np.where(flip, wl, wr)
        w_minus = np.where(flip, wr, wl)
        asym = float(np.median(((w_plus - w_minus) / np.maximum(w_plus + w_minus, 1e-9))[ok]))
        creases.append(Crease(region, round(float(length), 3), round(float(np.median(depth[ok])), 4),
                              round(width, 3), round(asym, 3), round(angle, 1)))
        owners.append(lab)
    # spacing: each crease's median distance to the nearest other crease of its region
    points = {lab: np.argwhere(labels == lab) * tx for lab in owners}
    for i, c in enumerate(creases):
        others = [owners[j] for j, o in enumerate(creases) if j != i and o.region == c.region]
        if not others or not c.region:
            continue
        d, _ = cKDTree(np.concatenate([points[o] for o in others])).query(points[owners[i]])
        d = d[d <= MAX_SPACING_MM]
        c.spacing_mm = round(float(np.median(d)), 3) if len(d) else None
    out = {}
    for name in regions:
        cs = [c for c in creases if c.region == name]
        out[name] = RegionStats(
            count=len(cs), spacing_mm=_median(c.spacing_mm for c in cs),
            length_mm=_median(c.length_mm for c in cs),
            length_max_mm=round(max((c.length_mm for c in cs), default=0.0), 3) if cs else None,
            depth_mm=_median(c.depth_mm for c in cs),
            depth_max_mm=round(max((c.depth_mm for c in cs), default=0.0), 4) if cs else None,
            width_mm=_median(c.width_mm for c in cs), asymmetry=_median(c.asymmetry for c in cs),
            angle_deg=_axial_mean_deg([c.angle_deg for c in cs]))
    return WrinkleStats(round(tx, 4), out, creases)


def face_map_stats(model: MorphableModel, m: np.ndarray, identity: Optional[np.ndarray] = None) -> WrinkleStats:
    """:func:`crease_stats` of a map of ``model``'s face tile, in its wrinkle regions
    (``backend.models.regions``), with the texel size of the face at ``identity``."""
    size = m.shape[0]
    mesh = face_mesh(model, identity)
    grid = texel_grid(mesh, min(size, 1024))
    masks = region_masks(model, min(size, 1024), names=list(STAT_REGIONS))
    return crease_stats(m, mm_per_uv(mesh) / size, masks, face=grid.mask)
