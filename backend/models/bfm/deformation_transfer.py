"""Deformation transfer (Sumner & Popović 2004, in the gradient form of Botsch et al. 2006): moving
the default model's expression shapes onto another mesh through a registration.

Each source triangle's deformation gradient ``S = [e1' e2' n'] [e1 e2 n]^-1`` (n the scaled
normal) is applied to the target triangle that lies on it; the target's vertex displacements
are the least-squares fit of those gradients. That fit alone leaves the translation free and
drifts where gradients disagree, so it also keeps, with a small weight, the displacement read
directly off the registered source (barycentric at the closest point). The system matrix (the
cotangent Laplacian plus that weight) is factorised once for all shapes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from ...geometry.surface import Surface, SurfacePoints, gradient_operator

ANCHOR_WEIGHT = 0.02  # weight of the direct displacement per unit vertex (the gradient term ~1)


def _frames(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """(T, 3, 3) columns e1, e2, n/sqrt(|n|) (Sumner's fourth vertex)."""
    e1, e2 = v[..., f[:, 1], :] - v[..., f[:, 0], :], v[..., f[:, 2], :] - v[..., f[:, 0], :]
    n = np.cross(e1, e2)
    n = n / np.sqrt(np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-30))
    return np.stack([e1, e2, n], -1)


def source_gradients(rest: np.ndarray, deltas: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Deformation gradients (E, T, 3, 3) of ``rest + deltas[e]`` per source triangle."""
    inv = np.linalg.inv(_frames(rest, tris))
    return _frames(rest[None] + deltas, tris) @ inv[None]


class Transfer:
    """Deformation transfer from a registered source mesh onto ``target`` (rest vertices, tris)."""

    def __init__(self, source_registered: np.ndarray, source_tris: np.ndarray, target: np.ndarray,
                 target_tris: np.ndarray, anchor_weight: float = ANCHOR_WEIGHT):
        self.target = np.asarray(target, np.float64)
        self.tt = np.asarray(target_tris, np.int64)
        self.src = Surface(source_registered, source_tris)
        centroids = self.target[self.tt].mean(1)
        self.tri_hits = self.src.closest(centroids).triangle  # source triangle under each target triangle
        self.vert_hits: SurfacePoints = self.src.closest(self.target)
        self.grad, area = gradient_operator(self.target, self.tt)
        a = sp.diags(area)
        lap = sum(g.T @ a @ g for g in self.grad)
        mean_area = float(area.sum() / len(self.target))
        self.anchor = anchor_weight * mean_area
        self.solver = splu((lap + self.anchor * sp.identity(len(self.target))).tocsc())
        self.area = a
        # rest Jacobians of the target: rows = coordinate functions, columns = spatial axes
        self.rest_jac = np.stack([np.stack([g @ self.target[:, k] for g in self.grad], -1) for k in range(3)], 1)

    @property
    def distance(self) -> np.ndarray:
        """Each target vertex's distance to the registered source (mm)."""
        return self.vert_hits.distance

    def apply(self, gradients: np.ndarray, source_deltas: np.ndarray) -> np.ndarray:
        """Target displacements (E, V, 3) for source gradients (E, T_src, 3, 3) and the source's
        per-vertex displacements (E, V_src, 3)."""
        out = np.empty((len(gradients), len(self.target), 3))
        for e in range(len(gradients)):
            s = gradients[e][self.tri_hits]  # (T, 3, 3)
            want = np.einsum("tkj,tjs->tks", s, self.rest_jac) - self.rest_jac  # wanted change of Jacobian
            direct = self.src.interpolate(self.vert_hits, source_deltas[e])
            rhs = sum(g.T @ (self.area @ want[:, :, si]) for si, g in enumerate(self.grad)) + self.anchor * direct
            out[e] = self.solver.solve(rhs)
        return out
