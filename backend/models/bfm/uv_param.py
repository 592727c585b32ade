"""UVs for a model that has none (the BFM): a fixed-boundary mean-value parameterisation of the
whole mesh, computed once per topology, or the user's own UV file.

Why mean-value weights (Floater 2003) and not cotangent (harmonic) ones: both approximate a
conformal map inside, but mean-value weights are positive on every mesh, so with the boundary
fixed on a circle the map is an embedding (Tutte/Floater): no triangle flips, whatever the
triangle quality. Holes (open eyes or mouth) are closed first with a fan around a virtual
centre vertex, so the outer boundary is the only one fixed; the virtual vertices are dropped
after the solve. The sparse system is solved with scipy (SuperLU).

The face region gets its own disk, turned, scaled and moved (a 2D similarity fitted on the
landmarks) so that the face sits where the default model's UV layout has it, which keeps detail
maps and the detail nets' learned position priors roughly in place, shrunk if needed to fit the
tile. Mapping the whole mesh instead would squeeze the face into the middle of the disk when the
mesh wraps round the head (the rest of the head takes the room).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.io import loadmat
from scipy.sparse.linalg import splu

from ...core.errors import ModelNotFoundError
from ...geometry.surface import boundary_loops, similarity

TILE_MARGIN = 0.01


@dataclass
class UvQuality:
    flipped: int  # triangles whose UV orientation disagrees with the majority
    degenerate: int  # UV area ~0
    conformal_median: float  # sigma_max / sigma_min of the 3D -> UV map
    conformal_p95: float
    area_p05: float  # UV area / 3D area, normalised by the global ratio
    area_p95: float

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _fill_holes(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices with hole centres appended, triangles with hole fans, outer loop)."""
    loops = boundary_loops(f)
    if not loops:
        raise ModelNotFoundError("The mesh has no boundary, so it cannot be flattened into a UV disk.",
                                 "Supply a UV file for this model instead.")
    lengths = [np.linalg.norm(v[lp] - v[np.roll(lp, -1)], axis=1).sum() for lp in loops]
    outer = loops[int(np.argmax(lengths))]
    verts, tris = [v], [f]
    n = len(v)
    for lp in loops:
        if lp is outer:
            continue
        c = n + sum(len(x) for x in verts[1:])
        verts.append(v[lp].mean(0, keepdims=True))
        # boundary edges run a->b in the mesh's winding; the fan uses them reversed
        tris.append(np.stack([np.roll(lp, -1), lp, np.full(len(lp), c)], 1))
    return np.concatenate(verts), np.concatenate(tris), outer


def _mean_value_weights(v: np.ndarray, f: np.ndarray) -> sp.csr_matrix:
    n = len(v)
    rows, cols, vals = [], [], []
    for i in range(3):
        a, b, c = f[:, i], f[:, (i + 1) % 3], f[:, (i + 2) % 3]
        eb, ec = v[b] - v[a], v[c] - v[a]
        lb, lc = np.linalg.norm(eb, axis=1), np.linalg.norm(ec, axis=1)
        cos = np.clip((eb * ec).sum(1) / np.maximum(lb * lc, 1e-30), -1, 1)
        half_tan = np.tan(np.arccos(cos) / 2)
        rows += [a, a]
        cols += [b, c]
        vals += [half_tan / np.maximum(lb, 1e-30), half_tan / np.maximum(lc, 1e-30)]
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _vertex_stretch(v: np.ndarray, f: np.ndarray, uv: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Sander et al.'s L2 stretch of the map UV -> surface, per vertex (area-weighted RMS over its
    triangles, 1 where it has none) and over the whole mesh, at the map's mean scale."""
    p, area = _local_frames(v, f)
    q = np.stack([uv[f[:, 1]] - uv[f[:, 0]], uv[f[:, 2]] - uv[f[:, 0]]], 2)
    e = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], 2)
    sv = np.linalg.svd(e @ np.linalg.inv(q + 1e-15 * np.eye(2)), compute_uv=False)
    scale = np.sqrt(np.abs(_signed_areas(uv, f)).sum() / area.sum())
    st2 = (sv ** 2).sum(1) / 2 * scale ** 2
    acc, wsum = np.zeros(n), np.zeros(n)
    for k in range(3):
        np.add.at(acc, f[:, k], area * st2)
        np.add.at(wsum, f[:, k], area)
    per_vertex = np.where(wsum > 0, np.sqrt(acc / np.maximum(wsum, 1e-30)), 1.0)
    return per_vertex, float(np.sqrt((area * st2).sum() / area.sum()))


def disk_map(vertices: np.ndarray, triangles: np.ndarray, balance: bool = True) -> np.ndarray:
    """Per-vertex UVs (N, 2) in the unit disk (centre 0), boundary on the circle by arc length,
    counter-clockwise when the mesh is seen from outside; NaN for vertices no triangle uses.

    ``balance``: stretch-minimising reweighting (Yoshizawa et al. 2004). A fixed-boundary map of
    a dome-shaped face squeezes its middle (on our test face the 5 % most squeezed triangles got
    under 1/20 of the mean texel density). Each round divides every weight w_ij by sqrt(stretch
    at j) and solves again; the weights stay positive, so the map stays an embedding, and the
    rounds stop once the L2 stretch improves by less than 2 %. On the test faces
    (scripts/bfm_diag.py) the squeezed 5 % went from 0.04-0.05 to 0.23-0.39 of the mean density,
    for more anisotropy (conformal distortion 95th percentile ~1.9 -> 3.1-3.6)."""
    f0 = np.asarray(triangles, np.int64)
    used = np.unique(f0)
    if len(used) < len(vertices):
        remap = np.full(len(vertices), -1, np.int64)
        remap[used] = np.arange(len(used))
        out = np.full((len(vertices), 2), np.nan)
        out[used] = disk_map(np.asarray(vertices)[used], remap[f0], balance)
        return out
    v0 = np.asarray(vertices, np.float64)
    v, f, outer = _fill_holes(v0, f0)
    n = len(v)
    seg = np.linalg.norm(v[outer] - v[np.roll(outer, -1)], axis=1)
    theta = 2 * np.pi * np.concatenate([[0], np.cumsum(seg)[:-1]]) / seg.sum()
    fixed = np.zeros(n, bool)
    fixed[outer] = True
    free = np.nonzero(~fixed)[0]
    ub = np.stack([np.cos(theta), np.sin(theta)], 1)

    def solve(w: sp.csr_matrix) -> np.ndarray:
        lap = (sp.diags(np.asarray(w.sum(1)).ravel()) - w).tocsr()
        out = np.zeros((n, 2))
        out[outer] = ub
        out[free] = splu(lap[free][:, free].tocsc()).solve(-lap[free][:, outer] @ ub)
        return out

    w = _mean_value_weights(v, f)
    uv = solve(w)
    if balance:
        per_vertex, total = _vertex_stretch(v0, f0, uv, n)
        for _ in range(8):
            c = w.tocoo()
            w = sp.csr_matrix((c.data / np.sqrt(per_vertex[c.col]), (c.row, c.col)), shape=w.shape)
            nxt = solve(w)
            per_vertex, new_total = _vertex_stretch(v0, f0, nxt, n)
            if new_total > total:
                break
            uv, improved, total = nxt, (total - new_total) / total, new_total
            if improved < 0.02:
                break
    uv = uv[:len(v0)]
    if _signed_areas(uv, triangles).sum() < 0:
        uv[:, 0] = -uv[:, 0]  # the boundary loop ran clockwise: mirror so that no face is inside out
    return uv


def chart(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The disk map of a part of a mesh: (ids of the vertices it uses, their UVs)."""
    used = np.unique(np.asarray(triangles, np.int64))
    return used, disk_map(vertices, triangles)[used]


def fit_in_tile(uv: np.ndarray, margin: float = TILE_MARGIN) -> np.ndarray:
    """Scale (uniformly) and move a map into [margin, 1 - margin]²."""
    lo, hi = np.nanmin(uv, 0), np.nanmax(uv, 0)
    k = (1 - 2 * margin) / float((hi - lo).max())
    return margin + (uv - lo) * k + ((1 - 2 * margin) - (hi - lo) * k) / 2


def _local_frames(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle's corners in its own 2D frame (T, 3, 2) and its area (T,)."""
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    l1 = np.maximum(np.linalg.norm(e1, axis=1), 1e-30)
    x = e1 / l1[:, None]
    n = np.cross(e1, e2)
    area = 0.5 * np.linalg.norm(n, axis=1)
    y = np.cross(n / np.maximum(2 * area, 1e-30)[:, None], x)
    p = np.zeros((len(f), 3, 2))
    p[:, 1, 0] = l1
    p[:, 2, 0], p[:, 2, 1] = (e2 * x).sum(1), (e2 * y).sum(1)
    return p, area


def _signed_areas(uv: np.ndarray, f: np.ndarray) -> np.ndarray:
    a, b, c = uv[f[:, 0]], uv[f[:, 1]], uv[f[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def place_in_tile(uv: np.ndarray, landmarks: np.ndarray, landmark_targets: np.ndarray,
                  margin: float = TILE_MARGIN) -> np.ndarray:
    """Move a disk map so that its ``landmarks`` (vertex ids) fall near ``landmark_targets``
    (UVs in the default layout), then shrink about the box centre if it leaves [0, 1]²."""
    s, r, t = similarity(uv[landmarks], landmark_targets)
    out = (s * (r @ uv.T)).T + t
    lo, hi = out.min(0), out.max(0)
    k = min(1.0, (1 - 2 * margin) / float((hi - lo).max()))
    centre = (lo + hi) / 2
    out = centre + k * (out - centre)
    lo, hi = out.min(0), out.max(0)
    out += np.maximum(margin - lo, 0) - np.maximum(hi - (1 - margin), 0)
    return out


def quality(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray) -> UvQuality:
    """Flips and distortion of a per-vertex UV map of a triangle mesh."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(triangles, np.int64)
    corners, area3 = _local_frames(v, f)
    p = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], 2)  # columns = edges
    q = np.stack([uv[f[:, 1]] - uv[f[:, 0]], uv[f[:, 2]] - uv[f[:, 0]]], 2)  # (T, 2, 2) columns = edges
    ok = area3 > 1e-12
    jac = q[ok] @ np.linalg.inv(p[ok])
    sv = np.linalg.svd(jac, compute_uv=False)
    det = np.linalg.det(jac)
    sign = np.sign(np.median(det))
    area_uv = np.abs(_signed_areas(uv, f))[ok]
    ratio = (area_uv / area3[ok]) / (area_uv.sum() / area3[ok].sum())
    degenerate = sv[:, 1] < 1e-9 * max(float(sv[:, 0].max()), 1e-30)
    conf = sv[~degenerate, 0] / sv[~degenerate, 1]
    return UvQuality(int(((det * sign) < 0).sum()), int(degenerate.sum()), float(np.median(conf)),
                     float(np.percentile(conf, 95)), float(np.percentile(ratio, 5)), float(np.percentile(ratio, 95)))


def load_uv_file(path: str | os.PathLike, n_vertices: int) -> np.ndarray:
    """A user's per-vertex UVs (N, 2) for the model's own vertex order: ``.npy``/``.npz``/``.mat``
    holding an (N, 2) array (e.g. ``UV`` of the common BFM_UV.mat), or an ``.obj`` whose faces
    give each vertex a ``vt``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"UV file not found: {path}", "Fix 'UV file' in the preferences or clear it.")
    suffix = path.suffix.lower()
    arrays: list[np.ndarray] = []
    try:
        if suffix == ".npy":
            arrays = [np.load(path)]
        elif suffix == ".npz":
            with np.load(path) as z:
                arrays = [z[k] for k in z.files]
        elif suffix == ".mat":
            arrays = [a for k, a in loadmat(str(path)).items() if not k.startswith("__")]
        elif suffix == ".obj":
            arrays = [_obj_vertex_uvs(path, n_vertices)]
        else:
            raise ModelNotFoundError(f"{path}: UV files must be .obj, .npy, .npz or .mat.",
                                     "Export the UVs as an OBJ of the model's mesh or an (N, 2) array.")
    except (ValueError, OSError) as exc:
        raise ModelNotFoundError(f"{path} could not be read as a UV file ({exc}).", "Export the UVs again.") from exc
    for a in arrays:
        a = np.asarray(a)
        if a.ndim == 2 and a.shape == (2, n_vertices):
            a = a.T
        if a.ndim == 2 and a.shape == (n_vertices, 2) and np.isfinite(a).all():
            a = a.astype(np.float64)
            if a.min() < -1e-6 or a.max() > 1 + 1e-6:  # pixel or arbitrary units: fit into the tile
                a = (a - a.min(0)) / float((a.max(0) - a.min(0)).max())
            return a
    shapes = ", ".join(str(np.asarray(a).shape) for a in arrays) or "none"
    raise ModelNotFoundError(f"{path} holds no ({n_vertices}, 2) UV array (found {shapes}).",
                             f"The UV file must give one UV to each of the model's {n_vertices} vertices.")


def _obj_vertex_uvs(path: Path, n_vertices: int) -> np.ndarray:
    vts, uv = [], np.full((n_vertices, 2), np.nan)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("vt "):
                vts.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("f "):
                for corner in line.split()[1:]:
                    parts = corner.split("/")
                    if len(parts) > 1 and parts[1]:
                        vi, ti = int(parts[0]) - 1, int(parts[1]) - 1
                        if 0 <= vi < n_vertices and np.isnan(uv[vi, 0]):
                            uv[vi] = vts[ti]
    if np.isnan(uv).any():
        raise ValueError(f"{int(np.isnan(uv[:, 0]).sum())} of {n_vertices} vertices have no vt")
    return uv
