"""Files in the exact Basel Face Model layouts, built from the default model's geometry, for tests
and the benchmark (the BFM itself cannot be shipped).

The "BFM" here is the default model's face and head skin, triangulated, optionally subdivided to
the BFM's size, shaped as another person (a fixed identity vector), its vertices shuffled, with a
known random PCA as identity model, stored in the file's unit (µm for 2009, mm for 2017) and
winding (2009's ``tl`` turns inwards and is 1-based). For 2017 the expression model spans the
default model's FACS shapes, and its mean is a deliberate offset that the loader must not add.

The ground truth (:class:`SyntheticTruth`) says which default-model vertex each file vertex is,
so tests can measure the landmark, region and expression transfer. Nothing written here is
committed: it is made in a temporary folder from the model folder at test time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from scipy.io import savemat

from ..morphable import MorphableModel


@dataclass
class SyntheticTruth:
    source_vertex: np.ndarray  # (N,) default-model vertex of each file vertex (-1: an edge midpoint)
    mean_mm: np.ndarray  # (N, 3) the file's mean shape in mm, file order
    identity_mm: np.ndarray  # (K, N, 3) mm per standard deviation
    expression_mm: np.ndarray  # (E, N, 3) the default model's FACS shapes at these vertices
    expression_names: list[str]
    triangles: np.ndarray  # (T, 3) outward, 0-based, file order
    face_vertex: np.ndarray  # (N,) bool: the vertex came from the default model's face region


def _subdivide(v: np.ndarray, f: np.ndarray, extra: list[np.ndarray]):
    """One 1-to-4 midpoint subdivision; per-vertex arrays in ``extra`` (…, V, 3) follow linearly."""
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key = np.sort(e, axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    mid = len(v) + inv.reshape(3, -1).T  # (T, 3): midpoints of edges 01, 12, 20
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    m01, m12, m20 = mid[:, 0], mid[:, 1], mid[:, 2]
    nf = np.concatenate([np.stack([a, m01, m20], 1), np.stack([m01, b, m12], 1),
                         np.stack([m20, m12, c], 1), np.stack([m01, m12, m20], 1)])
    grow = lambda x: np.concatenate([x, 0.5 * (x[..., uniq[:, 0], :] + x[..., uniq[:, 1], :])], axis=-2)  # noqa: E731
    return grow(v), nf, [grow(x) for x in extra], uniq


def make_truth(model: MorphableModel, seed: int = 0, n_components: int = 40, subdivide: bool = False,
               identity_sd: float = 1.0, with_mouth: bool = False) -> SyntheticTruth:
    """``subdivide`` and ``with_mouth`` (the inner mouth, as BFM 2009 has it) make a BFM-sized
    mesh: 11248 vertices become 53.6k."""
    rng = np.random.default_rng(seed)
    used, tris, _ = model.skin_submesh()
    if with_mouth:
        tris = np.concatenate([used[tris], model.triangles(tuple(model.regions["mouth_socket"][1]))[0]])
        used = np.unique(tris)
        tris = np.searchsorted(used, tris)
    face = used < model.regions["face"][0][1]
    alpha = rng.standard_normal(min(20, model.n_identity)) * identity_sd  # "another person"
    v = model.shape(alpha)[used]
    expr = model.expression_basis[:, used].astype(np.float64)
    src = used.astype(np.int64)
    if subdivide:
        v, tris, (expr,), edges = _subdivide(v, tris, [expr])
        src = np.concatenate([src, np.full(len(edges), -1)])
        face = np.concatenate([face, face[edges[:, 0]] & face[edges[:, 1]]])
    n = len(v)
    perm = rng.permutation(n)  # file vertex i is old vertex perm[i]
    inv = np.empty(n, np.int64)
    inv[perm] = np.arange(n)
    basis, _ = np.linalg.qr(rng.standard_normal((3 * n, n_components)))
    sd = np.sort(rng.uniform(0.5, 6.0, n_components))[::-1]  # mm
    identity = (basis * sd[None]).T.reshape(n_components, n, 3)
    return SyntheticTruth(src[perm], v[perm], identity, expr[:, perm], list(model.expression_names),
                          inv[tris], face[perm])


def write_bfm2009(path: str | os.PathLike, truth: SyntheticTruth) -> Path:
    """``01_MorphableModel.mat`` layout: µm, tl 1-based and wound inwards, MATLAB v5."""
    k = truth.identity_mm.shape[0]
    flat = truth.identity_mm.reshape(k, -1).T  # (3N, K)
    ev = np.linalg.norm(flat, axis=0)
    n = len(truth.mean_mm)
    tex = np.tile(np.array([[215.0, 165.0, 140.0]]), (n, 1)).reshape(-1, 1)
    savemat(str(path), {
        "shapeMU": (truth.mean_mm.reshape(-1, 1) * 1e3).astype(np.float32),
        "shapePC": (flat / ev[None]).astype(np.float32),
        "shapeEV": (ev[:, None] * 1e3).astype(np.float32),
        "texMU": tex.astype(np.float32), "texPC": np.zeros((3 * n, 1), np.float32),
        "texEV": np.ones((1, 1), np.float32),
        "tl": (truth.triangles[:, [0, 2, 1]] + 1).astype(np.float64),
        "segbin": np.zeros((n, 4), np.uint8)}, do_compression=False)
    return Path(path)


def _group(f, name: str, mean: np.ndarray, basis_sd: np.ndarray) -> None:
    """A statismo model group: orthonormal ``pcaBasis`` and the variances."""
    flat = basis_sd.reshape(basis_sd.shape[0], -1).T  # (3N, K)
    u, s, _ = np.linalg.svd(flat, full_matrices=False)
    g = f.create_group(f"{name}/model")
    g["mean"] = mean.reshape(-1).astype(np.float32)
    g["pcaBasis"] = u.astype(np.float32)
    g["pcaVariance"] = (s ** 2).astype(np.float32)
    g["noiseVariance"] = np.float32(0.0)
    f[f"{name}/version/majorVersion"] = 0
    f[f"{name}/version/minorVersion"] = 9


def write_bfm2017(path: str | os.PathLike, truth: SyntheticTruth, expression_mean_mm: float = 1.0) -> Path:
    """statismo layout (model2017-1_*.h5): mm, points (3, N), cells (3, T) 0-based; the
    expression model spans the FACS shapes, with a mean offset the loader must not apply."""
    n = len(truth.mean_mm)
    with h5py.File(path, "w") as f:
        f["shape/representer/points"] = truth.mean_mm.T.astype(np.float32)
        f["shape/representer/cells"] = truth.triangles.T.astype(np.int32)
        _group(f, "shape", truth.mean_mm, truth.identity_mm)
        _group(f, "color", np.tile([0.84, 0.65, 0.55], (n, 1)), np.full((1, n, 3), 0.01))
        jaw = truth.expression_names.index("jawOpen") if "jawOpen" in truth.expression_names else 0
        emean = truth.expression_mm[jaw] / max(np.abs(truth.expression_mm[jaw]).max(), 1e-9) * expression_mean_mm
        _group(f, "expression", emean, truth.expression_mm)
    return Path(path)


def shape_errors(shapes: np.ndarray, true: np.ndarray, face: np.ndarray, names: list[str]) -> dict[str, float]:
    """Relative RMS error per shape on the face vertices it moves (> 10 % of its peak); shapes
    that move the skin less than 1 mm are left out (eye look, pupils)."""
    out = {}
    for j, name in enumerate(names):
        mag = np.linalg.norm(true[j], axis=1)
        if mag.max() < 1.0:
            continue
        act = face & (mag > 0.1 * mag.max())
        err = np.linalg.norm(shapes[j] - true[j], axis=1)[act]
        out[name] = float(np.sqrt((err ** 2).mean() / (mag[act] ** 2).mean()))
    return out
