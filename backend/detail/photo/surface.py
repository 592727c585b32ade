"""The proxy's geometry per texel of a UV tile (points, normals, texel -> surface Jacobian), where
landmark vertices fall in it, and how finely the photo resolves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from protocol.job import Camera

from ...geometry import raster
from ...geometry.surface import vertex_normals
from ...models.morphable import MorphableModel

MIN_WORK_SIZE = 256  # the estimate never runs on a coarser tile than this ...
WORK_TEXELS_PER_PIXEL = 1.5  # ... nor on one where a photo pixel spans more texels than this


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

    vn = vertex_normals(v, _normal_triangles(model, (lo, hi)))
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
