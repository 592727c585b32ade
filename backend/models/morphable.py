"""The project's morphable-model representation.

Project unit: **millimetres** for every model (ICT-FaceKit stores centimetres, the BFM
micrometres or millimetres); loaders convert on the way in. Axes follow the model's own
frame: +x the face's left, +y up, +z out of the face (towards a frontal camera).

A model is a neutral mesh plus linear identity and expression bases:
``V(alpha, w) = neutral + sum_k alpha_k * identity[k] + sum_j w_j * expression[j]``
with identity coefficients ~ N(0, 1) and expression weights in [0, 1]. Loaders:
:mod:`backend.models.ict` (the default model), :mod:`backend.models.bfm` (Basel Face Model
files); :func:`backend.models.loader.load_model` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class FacsUnit:
    number: int
    name: str
    shapes: tuple[str, ...]


@dataclass
class MorphableModel:
    """A linear face model in the project's unit (mm) and axes."""

    name: str
    source: str  # folder or file it was read from
    neutral: np.ndarray  # (V, 3) float32, mm
    identity_basis: np.ndarray  # (K, V, 3) float32, mm per unit coefficient
    expression_basis: np.ndarray  # (E, V, 3) float32, mm at weight 1
    expression_names: list[str]
    uvs: np.ndarray  # (T, 2) float32, per-corner UV table
    polygon_sizes: np.ndarray  # (P,) int32 corners per polygon
    corner_vertices: np.ndarray  # (C,) int32
    corner_uvs: np.ndarray  # (C,) int32
    landmark_vertices: np.ndarray  # (68,) int32, Multi-PIE order
    jaw_rows: tuple[list[int], list[int]]  # (right, left) contour candidates, ear -> chin
    regions: dict[str, tuple[tuple[int, int], tuple[int, int]]]  # name -> (vertex range, polygon range)
    facs: dict[int, FacsUnit] = field(default_factory=dict)
    # For a model converted from a file (the BFM): the file's own index of each vertex (the
    # conversion orders vertices by region). None for the default model.
    source_vertex_ids: Optional[np.ndarray] = None

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def n_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    def polygon_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.polygon_sizes)[:-1]]).astype(np.int64)

    def triangles(self, polygon_range: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fan-triangulate polygons: (vertex triangles (T,3), UV-index triangles (T,3))."""
        sizes = self.polygon_sizes
        starts = self.polygon_starts()
        lo, hi = polygon_range if polygon_range is not None else (0, len(sizes))
        if hi <= lo:  # an empty region (a face-only BFM has no head and neck)
            return np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32)
        tv, tu = [], []
        for n in np.unique(sizes[lo:hi]):
            idx = np.nonzero(sizes[lo:hi] == n)[0] + lo
            for k in range(1, int(n) - 1):
                c = np.stack([starts[idx], starts[idx] + k, starts[idx] + k + 1], axis=1)
                tv.append(self.corner_vertices[c])
                tu.append(self.corner_uvs[c])
        return np.concatenate(tv).astype(np.int32), np.concatenate(tu).astype(np.int32)

    def skin_submesh(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The face and head-and-neck skin as its own mesh: (model vertex ids used, triangles
        indexing them, how many of the triangles are the face's: they come first)."""
        face = self.triangles(tuple(self.regions["face"][1]))[0]
        head = (self.triangles(tuple(self.regions["head_neck"][1]))[0] if "head_neck" in self.regions
                else np.zeros((0, 3), np.int32))
        tris = np.concatenate([face, head])
        used = np.unique(tris)
        remap = np.full(self.n_vertices, -1, np.int64)
        remap[used] = np.arange(len(used))
        return used, remap[tris], len(face)

    def polygon_region_ids(self) -> tuple[list[str], np.ndarray]:
        """Region names and, for every polygon, the index of its region."""
        names = list(self.regions)
        ids = np.zeros(len(self.polygon_sizes), np.int16)
        for i, name in enumerate(names):
            lo, hi = self.regions[name][1]
            ids[lo:hi] = i
        return names, ids

    def shape(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None,
              vertices: np.ndarray | slice | None = None) -> np.ndarray:
        """Vertex positions (mm) for the given coefficients, optionally only some vertices."""
        sel = slice(None) if vertices is None else vertices
        k = 0 if identity is None else len(identity)
        with_expression = expression is not None and len(expression)
        return _combine(self.neutral[sel], self.identity_basis[:k, sel],
                        self.expression_basis[:, sel] if with_expression else None, identity, expression)

    def at(self, vertices: np.ndarray) -> "VertexSubset":
        """The model's mean and bases at some vertices, sliced once: for shapes asked of the same
        vertices many times (a video's fit marches its outline ~5 times a frame; slicing 53
        expression shapes each time cost 3.4 ms, measured)."""
        return VertexSubset(self.neutral[vertices].astype(np.float64), self.identity_basis[:, vertices],
                            self.expression_basis[:, vertices])

    def expression_index(self, name: str) -> int:
        return self.expression_names.index(name)


def facs_table(expression_names: list[str], table: dict[int, tuple[str, list[str]]]) -> dict[int, FacsUnit]:
    """The FACS units of ``table`` (AU -> (name, shapes)) whose shapes a model has (converted
    models carry the default model's shapes, so its table serves them too)."""
    return {n: FacsUnit(n, name, tuple(s)) for n, (name, s) in table.items()
            if all(x in expression_names for x in s)}


def _combine(neutral: np.ndarray, identity_basis: np.ndarray, expression_basis: np.ndarray | None,
             identity: np.ndarray | None, expression: np.ndarray | None) -> np.ndarray:
    """neutral + identity . identity_basis + expression . expression_basis, in float64."""
    v = neutral.astype(np.float64)
    if identity is not None and len(identity):
        v = v + np.tensordot(np.asarray(identity, np.float64), identity_basis[:len(identity)], axes=1)
    if expression is not None and len(expression):
        v = v + np.tensordot(np.asarray(expression, np.float64), expression_basis, axes=1)
    return v


@dataclass(frozen=True)
class VertexSubset:
    """A model's mean (n,3) and bases (K,n,3), (E,n,3) at some vertices (:meth:`MorphableModel.at`)."""

    neutral: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray

    def shape(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`MorphableModel.shape` at these vertices."""
        return _combine(self.neutral, self.identity_basis, self.expression_basis, identity, expression)

    def mean(self) -> "VertexSubset":
        """The same averaged over the vertices (one vertex): its shape is the mean of theirs."""
        return VertexSubset(self.neutral.mean(0, keepdims=True),
                            self.identity_basis.astype(np.float64).mean(1, keepdims=True),
                            self.expression_basis.astype(np.float64).mean(1, keepdims=True))
