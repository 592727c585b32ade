"""Projecting the photo onto the model's UV layout.

For one UV tile (the face in tile 0, head and neck in tile 1, ...) every texel is traced
back to the surface point it shows (:mod:`backend.raster`), and that point to the photo
through the fitted camera. A texel takes the photo's colour where the camera saw its point:
it faces the camera and a ray from it towards the camera centre reaches the camera without
hitting the mesh (embree's occlusion query). Its *weight* (the mask) falls smoothly towards
grazing angles, near occlusion edges (measured in photo pixels) and at the image border.
Texels the photo does not show take the colour of their mirror-image texel where that one
was seen (the layout is left/right symmetric), and everything left -- including the empty
space between UV islands, so mip-maps and bilinear lookups never pull in black -- is filled
by a weighted pull-push (Gortler et al. 1996) from the seen texels. Texels seen with full
weight keep exactly the photo's colour.

Orientation: row 0 of the texture is v = 1 (top), as Blender reads PNGs.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
from PIL import Image
from scipy import sparse

from protocol.job import Camera, texture_files

from ..core.image_io import save_png
from ..core.imaging import smoothstep, upsample2
from ..core.progress import Job
from ..geometry import raster
from ..geometry.rays import Occlusion
from ..geometry.surface import vertex_normals
from ..models.morphable import MorphableModel

# Angle weight: smoothstep of cos(normal, direction to camera) between these values.
COS_MIN = 0.02  # below this a texel counts as not facing the camera at all
COS_FULL = 0.45  # ~63 degrees: from here on a texel counts fully
# Occlusion edges: weight ramps from 0 to 1 over this many photo pixels away from a texel
# the camera does not see (the photo mixes both surfaces' colours along such an edge).
EDGE_FEATHER_PX = 2.5
BORDER_FEATHER_PX = 2.0  # the same at the image border
GUTTER_TEXELS = 2  # rings of extrapolated texels grown around every UV island
RAY_OFFSET_MM = 0.05  # ray origins lifted off the surface, along the normal and the ray
RAY_BATCH = 1 << 18
RAY_WORKERS = max(1, min(4, os.cpu_count() or 1))  # threads casting rays (embree lets go of the GIL)
RAY_SUBSAMPLE_MIN_SIZE = 1024  # from this tile size on, rays are cast on stride-4 and stride-2 lattices first
MIRROR_TOL_MM = 0.5  # texel and mirrored texel must be mirror images on the neutral model
OCCLUDER_REGIONS = ("face", "head_neck", "eyeball_left", "eyeball_right")
FILL_EMPTY = (128, 128, 128)  # the tile's colour when the photo shows none of it


@dataclass
class TextureResult:
    """A projected UV tile: ``rgb`` (size, size, 3) uint8, ``mask`` (size, size) float32 in
    0..1 (how much each texel's colour is owed to the photo), ``coverage`` plain figures."""

    rgb: np.ndarray
    mask: np.ndarray
    tile: int
    coverage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, for benches


def _region_triangles(model: MorphableModel, names, extra: tuple[int, int]) -> np.ndarray:
    """Vertex triangles of the named regions plus the polygon range ``extra`` (no polygon twice)."""
    keep = np.zeros(len(model.polygon_sizes), bool)
    for n in names:
        if n in model.regions:
            lo, hi = model.regions[n][1]
            keep[lo:hi] = True
    keep[extra[0]:extra[1]] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    tris = [model.triangles((int(a), int(b)))[0] for a, b in zip(edges[::2], edges[1::2])]
    return np.concatenate(tris)


def _visibility(occluded, lay: "UVLayout", interp: sparse.csr_matrix, rays: np.ndarray, cand: np.ndarray,
                job: Optional[Job], f0: float, f1: float) -> np.ndarray:
    """True for candidate texels whose ray towards the camera hits the occluder mesh; a texel's
    ray is its row of ``interp`` (:meth:`UVLayout.interpolation`) times ``rays`` (V,6): each
    vertex's ray origin and direction (any length).

    On tiles of RAY_SUBSAMPLE_MIN_SIZE and up, rays are cast coarse to fine: for every fourth
    texel in both directions first, then every second, then all; a texel whose two or four
    neighbours on the coarser lattice agree takes their answer, every other candidate gets its
    own ray. Occlusion is coherent in UV space, so on the bundled photo's 2048² face tile this
    casts 7 % of the rays (235 k of 3.4 M) and differs from casting all of them in 21 texels of
    4 M, slivers narrower than the lattice (measured). Rays go to embree in one batch per core:
    its queries let go of the GIL (two threads cast a tile's rays in 0.6x the time, measured).
    """
    hit = np.zeros(len(lay.flat), bool)
    n_total = max(int(cand.sum()), 1)
    done = [0]

    def one_batch(i: np.ndarray) -> np.ndarray:
        r = interp[i] @ rays
        return occluded(r[:, :3], r[:, 3:])

    def cast(idx: np.ndarray) -> np.ndarray:
        if len(idx) == 0:
            return np.zeros(0, bool)
        n_batch = -(-len(idx) // RAY_BATCH)
        n_batch += -n_batch % RAY_WORKERS  # every worker gets the same share
        batches = np.array_split(idx, n_batch)
        out = []
        with ThreadPoolExecutor(max_workers=RAY_WORKERS) as pool:
            for i, res in zip(batches, pool.map(one_batch, batches)):
                out.append(res)
                done[0] += len(i)
                if job is not None:
                    job.report(f0 + (f1 - f0) * min(done[0] / n_total, 1.0), "Testing which texels the camera sees")
        return np.concatenate(out)

    if lay.size < RAY_SUBSAMPLE_MIN_SIZE:  # small tiles: one ray each is as fast
        idx = np.flatnonzero(cand)
        hit[idx] = cast(idx)
        return hit
    # the samples cast so far on the grid: -1 none, 0 clear, 1 hit; at each finer lattice a texel
    # takes the answer its two or four neighbours on the coarser one agree on, and is cast where
    # they do not or one is missing (grid slices: index gathers of the four took 3x as long)
    size = lay.size
    state = np.full(size * size, -1, np.int8)
    grid = state.reshape(size, size)
    coarse = lay.lattice(4)
    first = np.flatnonzero(cand & coarse)
    hit[first] = cast(first)
    state[lay.flat[first]] = hit[first]
    for step, done_before in ((2, coarse), (1, lay.lattice(2))):
        here = np.flatnonzero(cand & (lay.lattice(step) if step > 1 else True) & ~done_before)
        cells = lay.flat[here]
        agreed = np.full_like(grid, -1)  # on the full grid: one flat gather, not row/column arithmetic
        agreed[::step, ::step] = _lattice_agreement(grid[::step, ::step])
        answer = agreed.ravel()[cells]
        known = answer >= 0
        hit[here[known]] = answer[known] == 1
        need = here[~known]
        hit[need] = cast(need)
        if step > 1:  # the next, finer lattice reads these
            state[cells] = hit[here]
    return hit


def _lattice_agreement(state: np.ndarray) -> np.ndarray:
    """(S,S) int8 of -1/0/1 known only on the even/even lattice -> for every texel off it, the
    value its lattice neighbours (two along a lattice row or column, four in a lattice cell)
    share, -1 where they differ or one is missing (also past the tile's edge)."""
    size = state.shape[0]
    lat = np.full(((size + 1) // 2 + 1, (size + 1) // 2 + 1), -1, np.int8)  # one row and column of -1 past the edge
    lat[:-1, :-1] = state[0::2, 0::2]

    def same(*vals):
        first = vals[0]
        ok = first >= 0
        for v in vals[1:]:
            ok &= v == first
        return np.where(ok, first, np.int8(-1)).astype(np.int8)

    a, right, down, diag = lat[:-1, :-1], lat[:-1, 1:], lat[1:, :-1], lat[1:, 1:]
    out = np.full_like(state, -1)
    out[0::2, 1::2] = same(a, right)[:, : size // 2]
    out[1::2, 0::2] = same(a, down)[: size // 2, :]
    out[1::2, 1::2] = same(a, right, down, diag)[: size // 2, : size // 2]
    return out


def _sample_bilinear(image: np.ndarray, gx: np.ndarray, gy: np.ndarray, reduce: int = 1) -> np.ndarray:
    """Photo colours (H,W,3) float32 at the pixel coordinates of the maps ``gx``, ``gy`` (H,W)
    (pixel centres at .5), from the photo box-reduced by ``reduce`` (pixel X of the photo is
    X / reduce of the reduced one), edges clamped; NaN positions get black. OpenCV's remap
    with float maps: scipy's map_coordinates gave the same colours within 2e-5 in 7x the
    time (389 vs 55 ms for 3M texels, measured)."""
    if reduce > 1:
        image = np.asarray(Image.fromarray(image).reduce(int(reduce)))
    maps = []
    for g in (gx, gy):
        m = g * np.float32(1.0 / reduce) - np.float32(0.5)
        m[~np.isfinite(m)] = -1e6  # far outside (off the layout, behind the camera): black
        maps.append(m)
    img = np.ascontiguousarray(image, np.float32)
    inside = cv2.remap(img, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside[maps[0] < -1e5] = 0.0
    return inside


def _channels(a: np.ndarray, n: int) -> np.ndarray:
    """A (H,W) array repeated into (H,W,n), for OpenCV's per-element products."""
    return a[..., None] if n == 1 else cv2.merge([a] * n)


def pull_push_fill(color: np.ndarray, weight: np.ndarray, empty=FILL_EMPTY) -> np.ndarray:
    """Fill a (H,W,C) float image where ``weight`` (H,W) in 0..1 is below 1.

    Pull: a pyramid of weighted 2x2 averages (a coarse texel's weight is the sum of its
    children's, capped at 1). Push: from the coarsest level down, each level's texels become
    ``w * own + (1 - w) * bilinear(coarser)``. Texels of weight 1 keep their colour exactly;
    holes get a smooth blend of the nearest seen colours, at every scale.
    """
    w = np.clip(weight.astype(np.float32), 0.0, 1.0)
    color = np.ascontiguousarray(color, np.float32)
    n_ch = color.shape[2]
    # OpenCV for the per-texel products and the 2x steps: numpy's (H,W,1) x (H,W,3)
    # broadcasts and strided slices cost 1.1 s of a 2048² fill, OpenCV ~0.15 s (measured)
    levels = [(cv2.multiply(color, _channels(w, n_ch)).reshape(color.shape), w)]  # premultiplied colour, weight
    while max(levels[-1][1].shape) > 1:
        cw, ww = levels[-1]
        h, wd = ww.shape
        ph, pw = h % 2, wd % 2
        if ph or pw:
            cw = np.pad(cw, ((0, ph), (0, pw), (0, 0)))
            ww = np.pad(ww, ((0, ph), (0, pw)))
        sw = ww[0::2, 0::2] + ww[1::2, 0::2] + ww[0::2, 1::2] + ww[1::2, 1::2]
        # the 2x2 sums: an exact halving by area is their mean
        sc = cv2.resize(cw, (cw.shape[1] // 2, cw.shape[0] // 2), interpolation=cv2.INTER_AREA)
        sc = sc.reshape(sw.shape + (n_ch,))
        nw = np.minimum(sw, 1.0)
        # keep premultiplied colour consistent with the capped weight (x4: mean -> sum)
        scale = (4.0 / np.maximum(sw, 1.0)).astype(np.float32)
        levels.append((cv2.multiply(sc, _channels(scale, n_ch)).reshape(sc.shape), nw))
    cw, ww = levels[-1]
    cur = np.where(ww[..., None] > 0, cw / np.maximum(ww, 1e-12)[..., None],
                   np.asarray(empty, np.float32)).astype(np.float32)
    for level in range(len(levels) - 2, -1, -1):
        cw, ww = levels[level]
        cur = np.ascontiguousarray(upsample2(cur, ww.shape))
        if level > 0:
            # w * own + (1 - w) * coarse, with the premultiplied w * own = cw
            cur = cv2.multiply(cur, _channels(1.0 - ww, n_ch)).reshape(cw.shape)
            cur = cv2.add(cur, cw).reshape(cw.shape)
        else:  # the same from the colours themselves, in one OpenCV pass (half the time, measured)
            cur = _blend(color, cur, ww, 1.0 - ww)
    return cur


# cv2.blendLinear divides by (w1 + w2 + 1e-5); with both weights scaled by 2^16 that 1e-5 drops
# out in float32, and a texel of weights (1, 0) keeps its colour bit for bit (a power-of-two
# scale is exact both ways)
_BLEND_SCALE = np.float32(1 << 16)


def _blend(a: np.ndarray, b: np.ndarray, wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """(wa * a + wb * b) / (wa + wb) per texel for (H,W,C) float32 images and (H,W) weights;
    0 where both weights are 0."""
    out = cv2.blendLinear(a, b, np.ascontiguousarray(wa * _BLEND_SCALE, np.float32),
                          np.ascontiguousarray(wb * _BLEND_SCALE, np.float32))
    return out.reshape(a.shape)


@dataclass
class UVLayout:
    """What texturing a tile needs of the model alone: every covered texel's triangle and
    barycentrics (with the gutter), and the texel mirror pairs. Cached per model, polygon range,
    tile and size (:func:`uv_layout`): the same for every photo, so only the first costs."""

    tv: np.ndarray
    tris_px: np.ndarray
    ras: Any  # raster.TexelRaster
    flat: np.ndarray
    t: np.ndarray
    b: np.ndarray
    inside: np.ndarray
    size: int
    _partner: Any = field(default=False, repr=False)  # False: not computed yet (None is a result)
    _lattice: Any = field(default=None, repr=False)
    _interp: Any = field(default=None, repr=False)

    def interpolation(self, n_vertices: int) -> sparse.csr_matrix:
        """(N, V) float32: each covered texel's barycentric weights on its triangle's three
        vertices, so that ``M @ values`` interpolates per-vertex values (V,k) at every texel.
        One sparse product for several values together runs in a third of the time of
        gathering them per triangle corner (0.1 vs 0.3 s a 2048² tile, measured), for 112 MB
        kept with a 2048² face layout (12M weights and vertex indices); its rows, taken for the
        texels that cast rays, give their rays. Made once per layout."""
        if self._interp is None:
            n = len(self.flat)
            w = np.empty((n, 3), np.float32)
            w[:, :2] = self.b
            w[:, 2] = 1.0 - self.b[:, 0] - self.b[:, 1]
            self._interp = sparse.csr_matrix(
                (w.ravel(), self.tv[self.t].astype(np.int32).ravel(), np.arange(0, 3 * n + 1, 3, dtype=np.int32)),
                shape=(n, n_vertices))
        return self._interp

    def lattice(self, step: int) -> np.ndarray:
        """For the visibility test's coarse-to-fine rays: which covered texels sit on the lattice
        of every ``step``-th row and column. Made once per layout and step."""
        if self._lattice is None:
            self._lattice = {}
        if step not in self._lattice:
            row, col = np.divmod(self.flat, self.size)
            self._lattice[step] = (row % step == 0) & (col % step == 0)
        return self._lattice[step]

    def mirror_ok(self, model: MorphableModel) -> Optional[np.ndarray]:
        """(S,S) bool: texels whose column-mirrored texel shows the mirror-image point (see
        :func:`_mirror_partner`); None when the tile has (almost) no such symmetry."""
        if self._partner is False:
            partner = _mirror_partner(model, self.tv, self.tris_px, self.ras, self.flat, self.t, self.size)
            if partner is None:
                self._partner = None
            else:
                ok = np.zeros(self.size * self.size, bool)
                ok[self.flat[partner >= 0]] = True
                self._partner = ok.reshape(self.size, self.size)
        return self._partner


_LAYOUTS: dict[tuple, UVLayout] = {}
_LAYOUT_LOCK = threading.Lock()
LAYOUT_CACHE = 4  # layouts kept (a face and a head tile of two models; ~70 MB each at 2048²)


def uv_layout(model: MorphableModel, lo: int, hi: int, tile: int, size: int, check=None) -> UVLayout:
    key = (model.name, str(model.source), model.n_vertices, lo, hi, tile, size)
    with _LAYOUT_LOCK:  # the backend runs two jobs at once: one layout, made once
        hit = _LAYOUTS.get(key)
        if hit is None:
            hit = _make_layout(model, lo, hi, tile, size, check)
            while len(_LAYOUTS) >= LAYOUT_CACHE:
                _LAYOUTS.pop(next(iter(_LAYOUTS)), None)
            _LAYOUTS[key] = hit
        return hit


def _make_layout(model: MorphableModel, lo: int, hi: int, tile: int, size: int, check=None) -> UVLayout:
    tv, tu = model.triangles((lo, hi))
    tris_px = raster.uv_to_texel(model.uvs[tu], size, tile)
    ras = raster.dilate_gutter(raster.rasterize(tris_px, size, check), tris_px, GUTTER_TEXELS)
    flat = np.flatnonzero(ras.tri.ravel() >= 0)
    return UVLayout(tv=tv, tris_px=tris_px, ras=ras, flat=flat, t=ras.tri.ravel()[flat],
                    b=ras.bary.reshape(-1, 2)[flat], inside=~ras.gutter.ravel()[flat], size=size)


def project_texture(model: MorphableModel, vertices: np.ndarray, camera: Camera, image: np.ndarray,
                    polygon_range: tuple[int, int], tile: int = 0, size: int = 2048,
                    job: Optional[Job] = None, *, occlusion: bool = True, mirror: bool = True) -> TextureResult:
    """Project ``image`` through ``camera`` onto UV tile ``tile`` of the polygons in
    ``polygon_range``, given the mesh ``vertices`` (V,3) in mm, posed as the photo shows it.

    ``occlusion=False`` skips the ray test (only the facing test remains); ``mirror=False``
    disables filling unseen texels from their mirror image. See the module docstring.
    """
    vertices = np.asarray(vertices, np.float64)
    if vertices.shape != (model.n_vertices, 3):
        raise ValueError(f"vertices must be ({model.n_vertices}, 3), got {vertices.shape}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    lo, hi = int(polygon_range[0]), int(polygon_range[1])
    if not 0 <= lo < hi <= len(model.polygon_sizes):
        raise ValueError(f"polygon range {polygon_range} is outside 0..{len(model.polygon_sizes)}")
    size = int(size)
    check = job.check if job is not None else None

    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def report(f: float, msg: str, step: str | None = None) -> None:
        if step is not None:
            now = time.perf_counter()
            timings[step] = round(now - clock[0], 4)
            clock[0] = now
        if job is not None:
            job.report(f, msg)

    # (1) texel -> (triangle, barycentrics): the same for every photo on a model
    report(0.0, "Rasterising the UV layout")
    lay = uv_layout(model, lo, hi, tile, size, check)
    flat, inside = lay.flat, lay.inside
    n_in = int(np.count_nonzero(inside))

    # (2) what the camera makes of every texel: its point in camera coordinates (exact: they are
    # affine in the point) and the cosine between its normal and the direction to the camera
    # (interpolated: it differs from the cosine of the interpolated normal by the normal's turn
    # across one triangle), per vertex times the texel's barycentrics in one sparse product.
    # Against interpolating points and normals and working from those it takes half the time.
    report(0.1, "Locating texels on the surface", "raster")
    normal_tris = _region_triangles(model, ("face", "head_neck"), (lo, hi))
    vn = vertex_normals(vertices, normal_tris)
    to_cam = camera.center[None, :] - vertices
    dist = np.linalg.norm(to_cam, axis=1, keepdims=True)
    cos_v = np.einsum("ij,ij->i", vn, to_cam) / np.maximum(dist[:, 0], 1e-9)
    interp = lay.interpolation(model.n_vertices)
    # (4,N) rows: long contiguous loops for the per-texel steps; OpenCV's blocked transpose
    # runs in a third of numpy's strided copy (measured)
    per_texel = cv2.transpose(interp @ np.column_stack([camera.to_camera(vertices), cos_v]).astype(np.float32))
    pc, cosang = per_texel[:3], per_texel[3]
    depth = pc[2]
    # camera.project, in float32 (same formula): pixel = f x/z + centre
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = np.float32(camera.focal) * pc[:2] / depth
    xy[0] += np.float32(camera.width / 2.0)
    xy[1] += np.float32(camera.height / 2.0)
    hgt, wid = image.shape[:2]
    border = np.minimum(np.minimum(xy[0], wid - xy[0]), np.minimum(xy[1], hgt - xy[1]))
    cand = (cosang > COS_MIN) & (depth > 1.0) & (border > 0.0)
    del pc, depth

    # (3) visibility: rays from the texels towards the camera centre, lifted off the surface
    # along the normal and the ray (per vertex, interpolated for the texels that cast)
    seen = cand.copy()
    report(0.2, "Testing which texels the camera sees", "surface")
    if occlusion and cand.any():
        occ_tris = _region_triangles(model, OCCLUDER_REGIONS, (lo, hi))
        rays = np.column_stack([vertices + RAY_OFFSET_MM * (vn + to_cam / np.maximum(dist, 1e-9)), to_cam])
        seen &= ~_visibility(Occlusion(vertices, occ_tris), lay, interp, rays.astype(np.float32), cand,
                             job, 0.2, 0.7)

    # (4) weights and photo colours
    report(0.7, "Sampling the photo", "visibility")
    weight = np.zeros(len(flat), np.float32)
    weight[seen] = (smoothstep(COS_MIN, COS_FULL, cosang[seen])
                    * np.clip(border[seen] / BORDER_FEATHER_PX, 0.0, 1.0))
    grid_w = np.zeros(size * size, np.float32)
    grid_w[flat] = weight
    unseen = np.zeros(size * size, bool)
    unseen[flat[~seen]] = True
    # the photo position of every texel as two (S,S) maps, NaN off the layout
    gx = np.full((size, size), np.nan, np.float32)
    gy = np.full((size, size), np.nan, np.float32)
    gx.ravel()[flat] = xy[0]
    gy.ravel()[flat] = xy[1]
    del xy
    px_per_texel = _pixels_per_texel(gx, gy, flat)
    if unseen.any() and seen.any():
        # distance (texels) to the nearest covered texel the camera does not see, converted
        # to photo pixels with the local texel -> pixel scale
        # OpenCV's DIST_C with a 3x3 mask is the exact chessboard distance (as scipy's cdt, 8x faster)
        d_tex = cv2.distanceTransform((~unseen).reshape(size, size).view(np.uint8), cv2.DIST_C, 3)
        at = flat[seen]
        d_px = d_tex.ravel()[at] * px_per_texel[seen]
        near = d_px < EDGE_FEATHER_PX  # the rest keep their weight: the ramp is 1 from there on
        grid_w[at[near]] *= smoothstep(0.0, EDGE_FEATHER_PX, d_px[near])
        del d_tex, d_px, at, near
    del unseen
    weight = grid_w[flat]
    if (weight > 0).any():
        # a photo much finer than the texture would alias under point sampling: box-reduce
        # it first to about 1-1.5 pixels per texel (one level for the tile, like a mip-map);
        # the median of every 16th texel's scale is as good as all of them for that
        sampled = weight[::16] > 0
        scale = px_per_texel[::16][sampled] if sampled.any() else px_per_texel[weight > 0]
        factor = max(1, int(np.median(scale) / 1.5))
        # sampled on the whole grid, no gather or scatter: texels of weight 0 (and those off
        # the layout, black) carry colours nothing reads
        grid_c = _sample_bilinear(image, gx, gy, factor)
    else:
        grid_c = np.zeros((size, size, 3), np.float32)
    del gx, gy, px_per_texel
    if check:
        check()

    # (5) fill: mirror image first, then pull-push
    report(0.8, "Filling texels the photo does not show", "weights_sample")
    fill_w, fill_c = grid_w.reshape(size, size), grid_c
    mirrored = 0.0
    if mirror:
        ok = lay.mirror_ok(model)
        if ok is not None:
            fill_w, fill_c, add = mirror_blend(fill_w, grid_c, ok)
            mirrored = float(add.ravel()[flat] @ inside) / max(n_in, 1)
    del grid_c
    if check:
        check()
    # bit-exact where the photo (or its mirror) is fully trusted: the fill keeps weight-1 texels
    out = pull_push_fill(fill_c, fill_w).reshape(-1, 3)
    del fill_c, fill_w
    # rounded to nearest (ties to even, as np.rint) and saturated in one OpenCV pass; the fill's
    # colours are never negative, so its absolute value changes nothing
    rgb = cv2.convertScaleAbs(out.reshape(size, size, 3))
    del out
    w2 = grid_w.reshape(size, size)

    coverage = {
        "texels": n_in,
        "seen_fraction": round(int(np.count_nonzero(seen & inside)) / max(n_in, 1), 4),
        "mean_weight": round(float(weight @ inside) / max(n_in, 1), 4),
        "facing_fraction": round(int(np.count_nonzero(cand & inside)) / max(n_in, 1), 4),
        "occluded_fraction": round(int(np.count_nonzero(cand & ~seen & inside)) / max(n_in, 1), 4),
        "mirrored_weight": round(mirrored, 4),
    }
    report(1.0, "Texture done", "fill")
    return TextureResult(rgb=rgb, mask=w2.astype(np.float32), tile=int(tile), coverage=coverage, timings=timings)


def mirror_blend(weight: np.ndarray, colors: np.ndarray, ok: np.ndarray):
    """Texels the photo sees poorly take their mirror image's colour by the weight they lack.
    On the tile's grid: ``weight`` (S,S), ``colors`` (S,S,3), ``ok`` (S,S) true where a texel
    and its column-mirrored texel show mirror-image points (:meth:`UVLayout.mirror_ok`).
    Returns (blended weight, blended colours, weight added), the same shapes; texels that gain
    nothing keep their colour (bit for bit where their weight is 1, to float rounding below;
    0 where neither is seen). Done as grid flips and OpenCV blends, not index gathers."""
    weight = np.ascontiguousarray(weight, np.float32)
    colors = np.ascontiguousarray(colors, np.float32)
    wm = cv2.flip(weight, 1)
    wm *= ok
    add = (1.0 - weight) * wm
    fill_w = weight + add
    # (weight * own + add * mirrored) / fill_w in one OpenCV pass: 0.12 -> 0.07 s a 2048² tile
    # against four products and sums (measured)
    fill_c = _blend(colors, cv2.flip(colors, 1), weight, add)
    return fill_w, fill_c, add


def _pixels_per_texel(gx: np.ndarray, gy: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Photo pixels per texel step at every covered texel (from neighbouring projections: the
    photo position maps ``gx``, ``gy`` (S,S), NaN off the layout)."""
    # OpenCV's magnitude of the differences: np.hypot and np.diff's copies took 2.5x as long
    rows = cv2.magnitude(cv2.subtract(gx[1:], gx[:-1]), cv2.subtract(gy[1:], gy[:-1]))  # (S-1, S)
    cols = cv2.magnitude(cv2.subtract(gx[:, 1:], gx[:, :-1]), cv2.subtract(gy[:, 1:], gy[:, :-1]))
    # per axis, the smaller of a texel's two sides: a neighbour across a UV seam (another
    # island) is a jump; a side off the layout is NaN, which fmin and fmax pass over
    down = np.empty_like(gx)
    down[0], down[-1] = rows[0], rows[-1]
    np.fmin(rows[1:], rows[:-1], out=down[1:-1])
    across = np.empty_like(gx)
    across[:, 0], across[:, -1] = cols[:, 0], cols[:, -1]
    np.fmin(cols[:, 1:], cols[:, :-1], out=across[:, 1:-1])
    np.fmax(down, across, out=down)  # the stretched direction counts
    return np.nan_to_num(down.ravel()[flat], nan=1.0, copy=False)


def _mirror_partner(model: MorphableModel, tv: np.ndarray, tris_px: np.ndarray, ras: raster.TexelRaster,
                    flat: np.ndarray, t: np.ndarray, size: int) -> Optional[np.ndarray]:
    """For every covered texel, the index (into ``flat``) of its column-mirrored texel when
    the two show mirror-image points (x -> -x) of the neutral model, else -1; None when the
    tile has (almost) no such symmetry.

    Checked per triangle, not per texel: a triangle is symmetric when the texel at its
    mirrored UV centroid lies in a triangle whose neutral surface point there is the mirror
    image of its own centroid; a texel pair counts when both texels' triangles are symmetric.
    """
    neutral = model.neutral.astype(np.float64)
    cen_px = tris_px.mean(1)  # (T,2) x=column, y=row
    mir_px = np.stack([size - 1 - cen_px[:, 0], cen_px[:, 1]], 1)
    mc = np.clip(np.rint(mir_px).astype(np.int64), 0, size - 1)
    t2 = ras.tri[mc[:, 1], mc[:, 0]]
    has = t2 >= 0
    coef, _ = raster._affine_barycentric(tris_px)
    l = raster.barycentric_at(coef, np.maximum(t2, 0), mir_px[:, 0], mir_px[:, 1])
    v2 = neutral[tv[np.maximum(t2, 0)]]  # (T,3,3)
    p2 = l[:, 0:1] * v2[:, 0] + l[:, 1:2] * v2[:, 1] + (1.0 - l[:, 0:1] - l[:, 1:2]) * v2[:, 2]
    p1 = neutral[tv].mean(1) * np.array([-1.0, 1.0, 1.0])
    tri_ok = has & (np.linalg.norm(p1 - p2, axis=1) < MIRROR_TOL_MM)
    if tri_ok.sum() < 0.25 * len(tri_ok):
        return None
    where = np.full(size * size, -1, np.int64)
    where[flat] = np.arange(len(flat))
    row, col = np.divmod(flat, size)
    j = where[row * size + (size - 1 - col)]
    ok = (j >= 0) & tri_ok[t]
    ok[ok] &= tri_ok[t[j[ok]]]
    return np.where(ok, j, -1)


def save_texture(result: TextureResult, folder: str | os.PathLike, role: str) -> dict[str, str]:
    """Write the texture of job-file ``role`` and its 8-bit weight mask into ``folder``; returns
    the job-file roles {role: file, role_mask: file} (``protocol.job.texture_files``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = texture_files(role)
    save_png(folder / files[role], result.rgb)
    save_png(folder / files[f"{role}_mask"], cv2.convertScaleAbs(result.mask, alpha=255.0))  # mask in 0..1
    return files
