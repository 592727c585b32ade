"""``mesh.npz``: the identity-shaped neutral mesh and what Blender needs to build it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.files import atomic_npz
from ..models.morphable import MorphableModel
from . import scene_export


def write_mesh(model: MorphableModel, vertices: np.ndarray, path: Path, iris_rgb=None) -> None:
    """The identity-shaped neutral mesh and what Blender needs to build it (model frame, mm).

    Expression deltas are the model's (ICT expression shapes are defined on the generic
    identity and transfer additively); they become shape keys.
    """
    region_names, _ = model.polygon_region_ids()
    extra = {} if model.source_vertex_ids is None else {"source_vertex_ids": model.source_vertex_ids}
    atomic_npz(
        path,
        compresslevel=1,  # the photo step is interactive: see atomic_npz
        vertices=vertices.astype(np.float32),
        polygon_sizes=model.polygon_sizes,
        corner_vertices=model.corner_vertices,
        corner_uvs=model.corner_uvs,
        uvs=model.uvs,
        polygon_materials=scene_export.polygon_materials(model),
        expression_names=np.asarray(model.expression_names),
        expression_deltas=model.expression_basis.astype(np.float32),
        landmark_vertices=model.landmark_vertices,
        region_names=np.asarray(region_names),
        eye_color=scene_export.eye_colors(model, vertices, iris_rgb),
        **extra,  # a converted model (the BFM): each vertex's index in the model's own file
    )
