"""Surface strain of an expressed face relative to its neutral, per triangle and per UV texel.

Reference frame: the UV parameterisation. For a triangle with UV edge matrix ``U`` (2×2,
columns = UV edges) and 3D edge matrices ``P0`` (neutral) / ``P1`` (expressed), the maps
UV -> surface are ``J0 = P0 U⁻¹`` and ``J1 = P1 U⁻¹`` (3×2, mm per UV unit), and their metric
tensors ``G0 = J0ᵀJ0``, ``G1 = J1ᵀJ1`` (2×2). The deformation gradient restricted to the
surface, ``F = J1 J0⁺``, maps the neutral tangent plane onto the expressed one; written in an
orthonormal frame of the neutral tangent plane its right Cauchy-Green tensor ``C = FᵀF``
has the eigenvalues of ``G0⁻¹G1``: the squared principal stretches ``λ₁² ≤ λ₂²``, with
eigenvectors that are the principal *material* directions, here given as UV directions.

The principal compressive strain is ``1 − λ₁`` clipped at 0 (engineering strain of the most
shortened material fibre). Texel fields are smooth: triangle values are averaged to the UV
vertices (UV-area weighted; per UV index, so seams never mix), then interpolated with the
rasteriser's barycentrics. The direction, a line field (±d are the same), is averaged as the
doubled-angle vector ``c·(cos 2θ, sin 2θ)`` weighted by the compression, so strongly compressed
neighbours dominate and sign flips cancel nothing.

Everything here takes a generic mesh (vertices, triangles, UVs), so a synthetic sheet can be
tested exactly like the face model; :func:`face_mesh` builds one for the model's face region.
Grid convention (see :mod:`backend.raster`): row 0 is v = 1; directions are (du, dv) with v up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..geometry import raster
from ..models.morphable import MorphableModel


@dataclass
class SurfaceMesh:
    """A triangle mesh with a UV layout: ``vertices`` (V,3) mm (the rest / neutral shape),
    ``tris`` (T,3) vertex indices, ``uvs`` (N,2), ``uv_tris`` (T,3) indices into ``uvs``."""

    vertices: np.ndarray
    tris: np.ndarray
    uvs: np.ndarray
    uv_tris: np.ndarray
    tile: int = 0

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, np.float64)
        self.tris = np.asarray(self.tris, np.int64)
        self.uvs = np.asarray(self.uvs, np.float64)
        self.uv_tris = np.asarray(self.uv_tris, np.int64)
        if self.tris.shape != self.uv_tris.shape or self.tris.ndim != 2 or self.tris.shape[1] != 3:
            raise ValueError("tris and uv_tris must both be (T, 3)")

    def with_vertices(self, vertices: np.ndarray) -> "SurfaceMesh":
        return SurfaceMesh(vertices, self.tris, self.uvs, self.uv_tris, self.tile)


@dataclass
class TriangleStrain:
    """Per-triangle strain: principal stretches (``stretch_min`` ≤ ``stretch_max``), the unit
    UV direction of the most compressed material fibre, the metrics ``g_rest`` / ``g_def``
    (T,2,2; mm² per UV unit²) and the areas (UV units², mm² at rest)."""

    stretch_min: np.ndarray
    stretch_max: np.ndarray
    dir_uv: np.ndarray
    g_rest: np.ndarray
    g_def: np.ndarray
    area_uv: np.ndarray
    area_rest: np.ndarray
    valid: np.ndarray

    @property
    def compression(self) -> np.ndarray:
        return np.clip(1.0 - self.stretch_min, 0.0, None)


def _metric(points: np.ndarray, uv_inv: np.ndarray) -> np.ndarray:
    """(T,3,3) triangle corners and (T,2,2) inverse UV edge matrices -> metric (T,2,2)."""
    e = np.stack([points[:, 1] - points[:, 0], points[:, 2] - points[:, 0]], axis=2)  # (T,3,2)
    j = e @ uv_inv  # (T,3,2): d(surface)/d(uv)
    return np.einsum("tki,tkj->tij", j, j)


def triangle_strain(mesh: SurfaceMesh, deformed: np.ndarray) -> TriangleStrain:
    """Strain of every triangle of ``mesh`` when its vertices move to ``deformed`` (V,3)."""
    rest = mesh.vertices
    dfm = np.asarray(deformed, np.float64)
    if dfm.shape != rest.shape:
        raise ValueError(f"deformed must be {rest.shape}, got {dfm.shape}")
    uv = mesh.uvs[mesh.uv_tris]  # (T,3,2)
    U = np.stack([uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], axis=2)  # (T,2,2) columns = edges
    det_u = U[:, 0, 0] * U[:, 1, 1] - U[:, 0, 1] * U[:, 1, 0]
    ok = np.abs(det_u) > 1e-14
    safe = np.where(ok, det_u, 1.0)
    U_inv = np.stack([np.stack([U[:, 1, 1], -U[:, 0, 1]], 1), np.stack([-U[:, 1, 0], U[:, 0, 0]], 1)], 1)
    U_inv = U_inv / safe[:, None, None]
    g0 = _metric(rest[mesh.tris], U_inv)
    g1 = _metric(dfm[mesh.tris], U_inv)
    a0, b0, d0 = g0[:, 0, 0], g0[:, 0, 1], g0[:, 1, 1]
    a1, b1, d1 = g1[:, 0, 0], g1[:, 0, 1], g1[:, 1, 1]
    det0 = a0 * d0 - b0 * b0
    ok &= det0 > 1e-18
    det0s = np.where(ok, det0, 1.0)
    # det(G1 - mu G0) = 0  <=>  det0 mu² - (a0 d1 + d0 a1 - 2 b0 b1) mu + det1 = 0
    mid = a0 * d1 + d0 * a1 - 2.0 * b0 * b1
    det1 = a1 * d1 - b1 * b1
    disc = np.sqrt(np.clip(mid * mid - 4.0 * det0s * det1, 0.0, None))
    mu_min = np.clip((mid - disc) / (2.0 * det0s), 0.0, None)
    mu_max = np.clip((mid + disc) / (2.0 * det0s), 0.0, None)
    # eigenvector of (G1 - mu G0) x = 0: null vector of either row, take the longer one
    r1 = np.stack([-(b1 - mu_min * b0), a1 - mu_min * a0], 1)
    r2 = np.stack([d1 - mu_min * d0, -(b1 - mu_min * b0)], 1)
    n1 = np.einsum("ij,ij->i", r1, r1)
    n2 = np.einsum("ij,ij->i", r2, r2)
    x = np.where((n1 >= n2)[:, None], r1, r2)
    nx = np.sqrt(np.einsum("ij,ij->i", x, x))
    iso = nx < 1e-12  # isotropic: any direction; pick u
    x = np.where(iso[:, None], np.array([1.0, 0.0]), x / np.where(iso, 1.0, nx)[:, None])
    area_uv = 0.5 * np.abs(det_u)
    area_rest = 0.5 * np.sqrt(np.clip(det0, 0.0, None)) * np.abs(det_u)
    s_min = np.where(ok, np.sqrt(mu_min), 1.0)
    s_max = np.where(ok, np.sqrt(mu_max), 1.0)
    return TriangleStrain(s_min, s_max, x, g0, g1, area_uv, area_rest, ok)


@dataclass
class VertexStrain:
    """Triangle strain averaged to the UV vertices (N = len(mesh.uvs)): compression (N,),
    doubled-angle direction vector weighted by compression (N,2), deformed / rest metric
    (N,3) as (g_uu, g_uv, g_vv)."""

    compression: np.ndarray
    dir2: np.ndarray
    g_def: np.ndarray
    g_rest: np.ndarray


def vertex_strain(mesh: SurfaceMesh, ts: TriangleStrain) -> VertexStrain:
    n = len(mesh.uvs)
    w = np.where(ts.valid, ts.area_uv, 0.0)
    idx = mesh.uv_tris.ravel()
    wr = np.repeat(w, 3)
    wsum = np.bincount(idx, wr, minlength=n)
    inv = 1.0 / np.maximum(wsum, 1e-30)

    def avg(values: np.ndarray) -> np.ndarray:
        return np.bincount(idx, wr * np.repeat(values, 3), minlength=n) * inv

    c = ts.compression
    d = ts.dir_uv
    cos2 = d[:, 0] ** 2 - d[:, 1] ** 2
    sin2 = 2.0 * d[:, 0] * d[:, 1]
    # the line field is weighted by compression, plus a tiny floor so uncompressed areas
    # still carry a (weak) direction
    cw = c + 1e-4
    dir2 = np.stack([avg(cw * cos2), avg(cw * sin2)], 1)
    gd = np.stack([avg(ts.g_def[:, 0, 0]), avg(ts.g_def[:, 0, 1]), avg(ts.g_def[:, 1, 1])], 1)
    gr = np.stack([avg(ts.g_rest[:, 0, 0]), avg(ts.g_rest[:, 0, 1]), avg(ts.g_rest[:, 1, 1])], 1)
    return VertexStrain(avg(c), dir2, gd, gr)


@dataclass
class TexelGrid:
    """Where the mesh lies in a size² UV tile: per covered texel (flat index ``flat``), its UV
    triangle ``tri`` and barycentrics ``bary`` (N,2)."""

    size: int
    flat: np.ndarray
    tri: np.ndarray
    bary: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        m = np.zeros(self.size * self.size, bool)
        m[self.flat] = True
        return m.reshape(self.size, self.size)

    def interp(self, mesh: SurfaceMesh, values: np.ndarray, rows: slice | None = None) -> np.ndarray:
        """Barycentric interpolation of per-UV-vertex ``values`` (N,) or (N,k) at the covered
        texels (or the slice ``rows`` of them), float32."""
        sel = slice(None) if rows is None else rows
        return raster.interpolate(values, mesh.uv_tris, self.tri[sel], self.bary[sel])


def texel_grid(mesh: SurfaceMesh, size: int, check: Optional[Callable[[], None]] = None) -> TexelGrid:
    tris_px = raster.uv_to_texel(mesh.uvs[mesh.uv_tris], size, mesh.tile)
    ras = raster.rasterize(tris_px, size, check)
    flat = np.flatnonzero(ras.tri.ravel() >= 0)
    if size * size < 2 ** 31:
        flat = flat.astype(np.int32)
    tri = ras.tri.ravel()[flat].astype(np.int32)
    bary = ras.bary.reshape(-1, 2)[flat]
    del ras
    return TexelGrid(int(size), flat, tri, np.ascontiguousarray(bary, np.float32))


@dataclass
class StrainField:
    """Texel strain fields of a size² UV tile (row 0 = v = 1).

    ``compression`` (size,size) float32: principal compressive strain 1 − λ_min (≥ 0, 0
    outside the mesh); ``direction`` (size,size,2) float32: unit (du, dv) of the most
    compressed material direction (a line field: ±d are equivalent; (0,0) outside);
    ``mask`` (size,size) bool: texels the mesh covers.
    """

    compression: np.ndarray
    direction: np.ndarray
    mask: np.ndarray


def direction_from_dir2(dir2: np.ndarray) -> np.ndarray:
    """Doubled-angle vectors (...,2) -> unit directions (...,2) (half angle)."""
    theta = 0.5 * np.arctan2(dir2[..., 1], dir2[..., 0])
    return np.stack([np.cos(theta), np.sin(theta)], -1).astype(np.float32)


def strain_field(mesh: SurfaceMesh, deformed: np.ndarray, size: int, grid: TexelGrid | None = None,
                 check: Optional[Callable[[], None]] = None) -> StrainField:
    """Texel compression and compression direction of ``mesh`` deformed to ``deformed``."""
    grid = grid if grid is not None else texel_grid(mesh, size, check)
    if grid.size != size:
        raise ValueError("grid was made for another size")
    vs = vertex_strain(mesh, triangle_strain(mesh, deformed))
    comp = np.zeros(size * size, np.float32)
    comp[grid.flat] = np.clip(grid.interp(mesh, vs.compression), 0.0, None)
    direction = np.zeros((size * size, 2), np.float32)
    direction[grid.flat] = direction_from_dir2(grid.interp(mesh, vs.dir2))
    return StrainField(comp.reshape(size, size), direction.reshape(size, size, 2), grid.mask)


# ---------------------------------------------------------------- the face model

def face_mesh(model: MorphableModel, identity: np.ndarray | None = None, region: str = "face",
              tile: int = 0) -> SurfaceMesh:
    """The model's ``region`` (default: the face, UV tile 0) as a :class:`SurfaceMesh` at the
    given identity (neutral expression). Vertices keep the model's indices."""
    tv, tu = model.triangles(model.regions[region][1])
    return SurfaceMesh(model.shape(identity), tv, model.uvs, tu, tile)


def face_strain(model: MorphableModel, identity: np.ndarray | None, expression: np.ndarray,
                size: int = 1024, grid: TexelGrid | None = None,
                check: Optional[Callable[[], None]] = None) -> StrainField:
    """Strain of the face region under ``expression`` (weights over model.expression_names)
    relative to the neutral face of the same identity, on a size² grid of UV tile 0."""
    mesh = face_mesh(model, identity)
    deformed = model.shape(identity, expression)
    return strain_field(mesh, deformed, size, grid, check)


def mm_per_uv(mesh: SurfaceMesh) -> float:
    """Surface millimetres per UV unit over the whole mesh: sqrt(surface area / UV area).
    Divide by the tile size for mm per texel."""
    ts = triangle_strain(mesh, mesh.vertices)
    w = ts.valid
    return float(np.sqrt(ts.area_rest[w].sum() / max(ts.area_uv[w].sum(), 1e-30)))
