"""The ICT-FaceKit loader: units, topology, FACS table, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core.errors import ModelNotFoundError
from backend.models.ict import load_ict_facekit
from backend.models.loader import load_model


@pytest.fixture(scope="module")
def model():
    return load_model()


def test_counts_and_units(model):
    assert model.n_vertices == 26719 and model.n_identity == 100 and model.n_expressions == 57
    lm = model.neutral[model.landmark_vertices]
    eye_dist = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
    assert 60 < eye_dist < 70, "millimetres: the data card measures 6.5 cm between eye centres"
    assert lm[36, 0] < 0 < lm[45, 0], "+x is the subject's left"
    assert lm[27, 1] > lm[8, 1], "+y is up"
    assert lm[30, 2] > lm[0, 2], "+z points out of the face"


def test_triangles_cover_every_polygon(model):
    tv, tu = model.triangles()
    assert tv.shape == tu.shape and tv.shape[1] == 3
    assert len(tv) == int((model.polygon_sizes - 2).sum())
    assert tv.max() < model.n_vertices and tu.max() < len(model.uvs)


def test_facs_table_maps_to_existing_shapes(model):
    assert {1, 2, 4, 6, 9, 12, 15, 27, 45} <= set(model.facs)
    for au in model.facs.values():
        assert all(s in model.expression_names for s in au.shapes)


def test_shape_is_linear(model):
    rng = np.random.default_rng(0)
    a, w = rng.normal(size=10), rng.uniform(size=model.n_expressions)
    idx = model.landmark_vertices
    full = model.shape(a, w)
    assert np.allclose(full[idx], model.shape(a, w, vertices=idx), atol=1e-4)
    assert np.allclose(full - model.shape(a), np.tensordot(w, model.expression_basis, 1), atol=1e-3)


def test_a_vertex_subset_shapes_as_the_model_does(model):
    rng = np.random.default_rng(4)
    ids = np.sort(rng.choice(model.n_vertices, 300, replace=False))
    a, w = rng.normal(0, 1, 20), rng.random(len(model.expression_names))
    sub = model.at(ids)
    assert np.array_equal(sub.shape(a, w), model.shape(a, w, vertices=ids))
    assert np.array_equal(sub.shape(), model.shape(vertices=ids))
    assert np.allclose(sub.mean().shape(a, w)[0], model.shape(a, w, vertices=ids).mean(0), atol=1e-9)


def test_missing_folder_and_missing_archive(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found") as e:
        load_ict_facekit(tmp_path / "nowhere")
    assert "preferences" in e.value.hint
    with pytest.raises(ModelNotFoundError, match="has neither ict_facekit_light.npz nor the ICT-FaceKit release"):
        load_ict_facekit(tmp_path)
    (tmp_path / "ict_facekit_light.npz").write_bytes(b"garbage")
    with pytest.raises(ModelNotFoundError, match="not a readable"):
        load_ict_facekit(tmp_path)
