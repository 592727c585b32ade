"""Creases as curves: evenly spaced streamlines of the strain's line field (Jobard & Lefer 1997,
"Creating evenly-spaced streamlines of arbitrary density"), limited to a region and to where
the skin is compressed past onset, snapped onto the person's own lines where there are some.

Everything here works on a square grid of the face UV tile (row 0 = v = 1) in texel coordinates
(row, col); distances are converted to mm with the grid's texel size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

STEP_MM = 0.4  # integration step along a line
CROSS_FAMILY_MM = 2.0  # lines of different families keep at least this far apart
MAX_TURN_DEG = 35.0  # a line stops where the field turns more than this in one step
SNAP_MM = 0.8  # how far across a line a static crease can pull it
SNAP_MIN = 0.3  # static-crease strength (0..1) that pulls


@dataclass
class Line:
    family: str
    region: str
    points: np.ndarray  # (K, 2) row, col of the working grid
    activation: np.ndarray  # (K,) the normalised compression along it
    fork_to: Optional[np.ndarray] = None  # (2,) where an ending line joins a neighbour (a fork)
    meta: dict = field(default_factory=dict)


def _bilinear(field_: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Samples of (n, n[, k]) at (row, col) points (m, 2), edges clamped."""
    coords = [np.clip(rc[:, 0], 0, field_.shape[0] - 1), np.clip(rc[:, 1], 0, field_.shape[1] - 1)]
    if field_.ndim == 2:
        return ndimage.map_coordinates(field_, coords, order=1, mode="nearest")
    return np.stack([ndimage.map_coordinates(field_[..., k], coords, order=1, mode="nearest")
                     for k in range(field_.shape[2])], -1)


class Tracer:
    """Traces the lines of one face: ``activation`` (n, n) normalised compression (0 none, 1 the
    family's full AU), ``dir2`` (n, n, 2) the compression direction as a doubled-angle vector
    in (row, col), ``static`` (n, n) 0..1 the person's own creases, ``tx`` mm per texel."""

    def __init__(self, dir2: np.ndarray, static: np.ndarray, tx: float, rng: np.random.Generator):
        self.dir2 = np.asarray(dir2, np.float32)
        self.static = np.asarray(static, np.float32)
        self.tx = float(tx)
        self.rng = rng
        self.lines: list[Line] = []
        self._trees: dict[str, cKDTree] = {}

    # ---- geometry
    def _line_dir(self, rc: np.ndarray) -> np.ndarray:
        """Unit (row, col) directions of the crease lines at points: across the compression."""
        d2 = _bilinear(self.dir2, rc)
        th = 0.5 * np.arctan2(d2[:, 1], d2[:, 0])  # compression direction's angle
        return np.stack([-np.sin(th), np.cos(th)], -1)  # rotated by 90°

    def _tree(self, key: str) -> Optional[cKDTree]:
        return self._trees.get(key)

    def _rebuild(self) -> None:
        by_family: dict[str, list[np.ndarray]] = {}
        for line in self.lines:
            by_family.setdefault(line.family, []).append(line.points)
        self._trees = {f: cKDTree(np.concatenate(p) * self.tx) for f, p in by_family.items()}
        if self.lines:
            self._trees["*"] = cKDTree(np.concatenate([ln.points for ln in self.lines]) * self.tx)
            self._point_family = np.concatenate([[ln.family] * len(ln.points) for ln in self.lines])

    def _clearance(self, rc: np.ndarray, family: str) -> tuple[float, float]:
        """(mm to the nearest line of ``family``, mm to the nearest line of another family)."""
        p = rc * self.tx
        same = self._tree(family)
        d_same = float(same.query(p)[0]) if same is not None else np.inf
        other = np.inf
        every = self._tree("*")
        if every is not None:
            dist, idx = every.query(p, k=min(8, every.n))
            dist, idx = np.atleast_1d(dist), np.atleast_1d(idx)
            others = dist[self._point_family[idx] != family]
            other = float(others.min()) if len(others) else np.inf
        return d_same, other

    def _snap(self, rc: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Pull a point across the line onto the person's own crease when one runs there."""
        normal = np.array([-direction[1], direction[0]])
        offs = np.linspace(-SNAP_MM, SNAP_MM, 9) / self.tx
        cand = rc[None, :] + offs[:, None] * normal[None, :]
        s = _bilinear(self.static, cand)
        k = int(np.argmax(s))
        if s[k] < SNAP_MIN:
            return rc
        return rc + 0.6 * offs[k] * normal  # partly: a smooth pull, not a jump

    # ---- tracing
    def trace(self, family: str, region: str, inside: np.ndarray, activation: np.ndarray, onset: float,
              spacing_mm: float, count: int, length_mm: tuple[float, float], fork_chance: float = 0.35,
              max_steps: int = 4000) -> list[Line]:
        """Up to ``count`` lines of ``family`` in ``inside`` (n, n) bool, seeded at the most
        compressed texels (and the person's own creases) at least ``spacing_mm`` from the family's
        other lines, traced both ways while the skin stays compressed past ``onset``."""
        made: list[Line] = []
        if count <= 0:
            return made
        live = inside & (activation > onset)
        if not live.any():
            return made
        rr, cc = np.nonzero(live)
        priority = activation[rr, cc] * (1.0 + 2.0 * self.static[rr, cc]) * (1.0 + 0.05 * self.rng.random(len(rr)))
        order = list(np.argsort(-priority)[::-1])  # popped from the end: most compressed first
        step = STEP_MM / self.tx
        lo, hi = length_mm
        tries = 0
        pool = np.zeros((0, 2))  # seeds one spacing beside the lines made so far
        while len(made) < count and tries <= 200 and (order or len(pool)):
            # Jobard & Lefer: the next line starts one spacing beside a finished one, so lines
            # stack across the compression instead of dashing along its most compressed row; the
            # most compressed texel left seeds a line only when no such seed is left.
            seed = None
            while len(pool) and seed is None:
                pr = _bilinear(activation, pool) * (1.0 + 2.0 * _bilinear(self.static, pool))
                k = int(np.argmax(pr))
                c, pool = pool[k], np.delete(pool, k, axis=0)
                seed = c if self._clear(c, family, spacing_mm) else None
            while order and seed is None:
                k = order.pop()
                c = np.array([rr[k], cc[k]], np.float64)
                seed = c if self._clear(c, family, spacing_mm) else None
            if seed is None:
                break
            tries += 1
            halves, fork = [], None
            for sign in (1.0, -1.0):
                budget = hi / 2 if sign > 0 else hi - len(halves[0][0]) * STEP_MM  # mm this half may run
                pts, acts = [], []
                p = seed.copy()
                prev = self._line_dir(p[None])[0] * sign
                length = 0.0
                for _ in range(max_steps):
                    d = self._line_dir(p[None])[0]
                    if d @ prev < 0:
                        d = -d
                    if d @ prev < np.cos(np.radians(MAX_TURN_DEG)):
                        break
                    q = self._snap(p + step * d, d)
                    a = float(_bilinear(activation, q[None])[0])
                    ins = float(_bilinear(inside.astype(np.float32), q[None])[0])
                    if ins < 0.5 or a < 0.7 * onset:
                        break
                    d_same, d_other = self._clearance(q, family)
                    if d_same < 0.5 * spacing_mm or d_other < CROSS_FAMILY_MM:
                        if d_same < 0.5 * spacing_mm and self.rng.random() < fork_chance:
                            tree = self._tree(family)
                            fork = tree.data[tree.query(q * self.tx)[1]] / self.tx
                        break
                    length += STEP_MM
                    if length > budget:
                        break
                    pts.append(q)
                    acts.append(a)
                    prev, p = d, q
                halves.append((pts, acts))
            (fw, fa), (bw, ba) = halves
            points = np.array(bw[::-1] + [seed] + fw)
            if len(points) * STEP_MM < lo:
                continue
            act = np.array(ba[::-1] + [float(_bilinear(activation, seed[None])[0])] + fa)
            line = Line(family, region, points, act, fork_to=fork)
            made.append(line)
            self.lines.append(line)
            self._rebuild()
            near = self._beside(points, spacing_mm)
            pool = np.concatenate([pool, near[_bilinear(live.astype(np.float32), near) > 0.5]])
        return made

    def _clear(self, rc: np.ndarray, family: str, spacing_mm: float) -> bool:
        d_same, d_other = self._clearance(rc, family)
        return d_same >= 0.95 * spacing_mm and d_other >= CROSS_FAMILY_MM

    def _beside(self, points: np.ndarray, spacing_mm: float) -> np.ndarray:
        """Points one spacing either side of a line, every half spacing along it."""
        every = max(int(round(0.5 * spacing_mm / STEP_MM)), 1)
        p = points[::every]
        t = np.gradient(points, axis=0)[::every] if len(points) > 1 else np.array([[0.0, 1.0]])
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
        normal = np.stack([-t[:, 1], t[:, 0]], -1) * (spacing_mm / self.tx)
        return np.concatenate([p + normal, p - normal])
