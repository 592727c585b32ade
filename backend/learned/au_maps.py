"""Where each AU control acts on the face: one UV map per rig control, the skin compression its
blendshapes cause on the model's mean face (``backend.detail.strain``), for DetH's conditioning.

Why: DetH's first runs had to learn from data alone which texels of the UV tile each of 47 AU
controls wrinkles; after 1000-1600 steps on the 2-core CPU they had not (regional wrinkle energy
uncorrelated with the target AUs, docs/deth.md). The face model already knows it: its FACS
blendshapes compress the skin exactly where the AU's wrinkles form (that is what the physical
wrinkle model buckles). DetH receives y_c · A_c and x_c · A_c, the maps scaled by the target and
source control values, at its bottleneck; AdaIN still carries y to the decoder as in the paper.

The maps are computed from the model at run time (a few seconds, cached per model folder), not
stored in the weights: they are derived from the model's shape arrays, which the repository does
not ship (the weights record the model and size they were trained with).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..detail.strain import face_mesh, strain_field, texel_grid
from ..models import emotions
from ..models.loader import load_model
from ..models.morphable import MorphableModel

SIZE = 64  # the maps are smooth (strain of a ~1 cm mesh); DetH's bottleneck is 32²


def compute(model: MorphableModel, size: int = SIZE) -> np.ndarray:
    """(n_controls, size, size) float32, rig order (``emotions.au_rig``), row 0 = v = 1:
    principal compressive strain (0..1) of each control at value 1 on the mean face."""
    rig = emotions.au_rig(model)
    mesh = face_mesh(model, None)
    grid = texel_grid(mesh, size)
    out = np.zeros((len(rig), size, size), np.float32)
    for i, c in enumerate(rig):
        w = emotions.weights_from_controls(rig, model.expression_names, {c["key"]: 1.0})
        out[i] = strain_field(mesh, model.shape(None, w), size, grid).compression
    return out


@lru_cache(maxsize=4)
def for_model_dir(model_dir: str | None, size: int = SIZE) -> np.ndarray:
    return compute(load_model(model_dir or None), size)
