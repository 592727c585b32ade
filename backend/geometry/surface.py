"""Triangle-mesh queries the model conversion needs: closest points, boundary loops, the
per-triangle gradient operator and mesh Laplacians.

Why closest points are written here: trimesh's ``closest_point`` needs the ``rtree`` package and
gathers candidates per query in Python; a KD-tree over triangle centroids (scipy) finds a few
candidate triangles for all queries at once and the exact point-triangle distance (Ericson,
*Real-Time Collision Detection* 5.1.5) runs vectorised on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree


@dataclass
class SurfacePoints:
    triangle: np.ndarray  # (Q,) int64
    bary: np.ndarray  # (Q, 3) float64, weights of the triangle's three vertices
    point: np.ndarray  # (Q, 3)
    distance: np.ndarray  # (Q,)


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights (…, 3) of the point of triangle abc closest to p (all (…, 3))."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 0.0)
        w = np.where(denom != 0, vc / denom, 0.0)
        out = np.stack([1 - v - w, v, w], -1)  # inside the face
        # Edge regions (the order of the overrides follows Ericson's early returns, reversed).
        t_bc = np.clip((d4 - d3) / ((d4 - d3) + (d5 - d6)), 0, 1)
        m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
        out[m] = np.stack([np.zeros_like(t_bc), 1 - t_bc, t_bc], -1)[m]
        t_ac = np.clip(d2 / (d2 - d6), 0, 1)
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        out[m] = np.stack([1 - t_ac, np.zeros_like(t_ac), t_ac], -1)[m]
        t_ab = np.clip(d1 / (d1 - d3), 0, 1)
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        out[m] = np.stack([1 - t_ab, t_ab, np.zeros_like(t_ab)], -1)[m]
    # Vertex regions.
    one = np.eye(3)
    out[(d6 >= 0) & (d5 <= d6)] = one[2]
    out[(d3 >= 0) & (d4 <= d3)] = one[1]
    out[(d1 <= 0) & (d2 <= 0)] = one[0]
    return out


class Surface:
    """A triangle mesh with a KD-tree over its triangle centroids, for closest-point queries."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, candidates: int = 12):
        self.v = np.asarray(vertices, np.float64)
        self.f = np.asarray(triangles, np.int64)
        self.k = min(candidates, len(self.f))
        self.tree = cKDTree(self.v[self.f].mean(1))

    def closest(self, points: np.ndarray, batch: int = 20000) -> SurfacePoints:
        points = np.asarray(points, np.float64)
        tri = np.empty(len(points), np.int64)
        bary = np.empty((len(points), 3))
        for s in range(0, len(points), batch):
            p = points[s:s + batch]
            _, cand = self.tree.query(p, k=self.k)
            cand = cand.reshape(len(p), -1)
            corners = self.v[self.f[cand]]  # (B, k, 3, 3)
            w = _closest_on_triangles(p[:, None, :], corners[:, :, 0], corners[:, :, 1], corners[:, :, 2])
            q = np.einsum("bkc,bkcd->bkd", w, corners)
            best = np.argmin(((q - p[:, None]) ** 2).sum(-1), axis=1)
            r = np.arange(len(p))
            tri[s:s + batch] = cand[r, best]
            bary[s:s + batch] = w[r, best]
        point = np.einsum("qc,qcd->qd", bary, self.v[self.f[tri]])
        return SurfacePoints(tri, bary, point, np.linalg.norm(point - points, axis=1))

    def interpolate(self, hits: SurfacePoints, values: np.ndarray) -> np.ndarray:
        """Per-vertex ``values`` (V, …) interpolated at the hit points."""
        vals = np.asarray(values)[self.f[hits.triangle]]  # (Q, 3, …)
        return np.einsum("qc,qc...->q...", hits.bary, vals)


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ≈ s R src + t`` without reflection (Umeyama 1991), for
    points in any dimension (3D landmarks, 2D UVs)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, d, vt = np.linalg.svd(b.T @ a / len(src))
    e = np.eye(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[-1, -1] = -1
    r = u @ e @ vt
    s = float(np.trace(np.diag(d) @ e) / (a ** 2).sum(1).mean())
    return s, r, md - s * r @ ms


def boundary_edges(triangles: np.ndarray) -> np.ndarray:
    """Directed edges (a, b) used by exactly one triangle, in the triangles' winding."""
    f = np.asarray(triangles, np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return e[cnt[inv.reshape(-1)] == 1]


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """Closed boundary loops as vertex sequences, longest (most vertices) first."""
    nxt: dict[int, int] = {}
    for a, b in boundary_edges(triangles):
        nxt[int(a)] = int(b)
    loops, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen and v in nxt:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        if len(loop) >= 3:
            loops.append(np.asarray(loop, np.int64))
    return sorted(loops, key=len, reverse=True)


def triangle_normals(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit normals (T,3), areas (T,))."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(triangles, np.int64)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    area2 = np.linalg.norm(n, axis=1)
    return n / np.maximum(area2, 1e-30)[:, None], 0.5 * area2


def gradient_operator(vertices: np.ndarray, triangles: np.ndarray) -> tuple[list[sp.csr_matrix], np.ndarray]:
    """The piecewise-linear gradient on each triangle: three sparse (T, V) matrices, one per
    spatial axis, so that ``G[s] @ f`` is d f / d x_s per triangle; and the triangle areas."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(triangles, np.int64)
    n, area = triangle_normals(v, f)
    t = len(f)
    rows, cols, vals = [], [], [[], [], []]
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        # grad of the hat function of corner i: (n x (x_k - x_j)) / (2A)
        g = np.cross(n, v[f[:, k]] - v[f[:, j]]) / (2 * np.maximum(area, 1e-30))[:, None]
        rows.append(np.arange(t))
        cols.append(f[:, i])
        for s in range(3):
            vals[s].append(g[:, s])
    r, c = np.concatenate(rows), np.concatenate(cols)
    mats = [sp.csr_matrix((np.concatenate(vals[s]), (r, c)), shape=(t, len(v))) for s in range(3)]
    return mats, area


def graph_laplacian(n_vertices: int, triangles: np.ndarray) -> sp.csr_matrix:
    """Uniform (umbrella) Laplacian ``D - A`` of the mesh's edge graph, positive semi-definite."""
    f = np.asarray(triangles, np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices))
    a = (a + a.T).tocsr()
    a.data[:] = 1.0
    return (sp.diags(np.asarray(a.sum(1)).ravel()) - a).tocsr()


def vertex_normals(vertices: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V,3) of the triangles (outward for the model's winding)."""
    v = np.asarray(vertices, np.float64)
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    n = np.zeros_like(v)
    idx = tris.ravel()
    for k in range(3):
        n[:, k] = np.bincount(idx, np.repeat(fn[:, k], 3), minlength=len(v))
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(norm, 1e-12)
