"""``mesh.npz``: the identity-shaped neutral mesh and what Blender needs to build it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.files import atomic_npz, npz_bytes
from ..models.cache import per_model
from ..models.morphable import MorphableModel
from . import scene_export


def _model_part(model: MorphableModel) -> bytes:
    """The compressed arrays that are the model's alone, made once per model and process: the
    expression deltas are 18 MB, and compressing them was 0.16 of a reconstruct's 0.22 s mesh
    write (measured)."""
    def make() -> bytes:
        region_names, _ = model.polygon_region_ids()
        extra = {} if model.source_vertex_ids is None else {"source_vertex_ids": model.source_vertex_ids}
        return npz_bytes(
            compresslevel=1,  # the first photo of a process pays it: see atomic_npz
            polygon_sizes=model.polygon_sizes,
            corner_vertices=model.corner_vertices,
            corner_uvs=model.corner_uvs,
            uvs=model.uvs,
            polygon_materials=scene_export.polygon_materials(model),
            expression_names=np.asarray(model.expression_names),
            expression_deltas=model.expression_basis.astype(np.float32),
            landmark_vertices=model.landmark_vertices,
            region_names=np.asarray(region_names),
            **extra,  # a converted model (the BFM): each vertex's index in the model's own file
        )
    return per_model(model, "mesh_file", make)


def write_mesh(model: MorphableModel, vertices: np.ndarray, path: Path, iris_rgb=None) -> None:
    """The identity-shaped neutral mesh and what Blender needs to build it (model frame, mm).

    Expression deltas are the model's (ICT expression shapes are defined on the generic
    identity and transfer additively); they become shape keys. The model's own arrays are
    compressed once per model and process; each photo adds its vertices and eye colours.
    """
    atomic_npz(
        path,
        compresslevel=1,  # the photo step is interactive: see atomic_npz
        base=_model_part(model),
        vertices=vertices.astype(np.float32),
        eye_color=scene_export.eye_colors(model, vertices, iris_rgb),
    )
