"""What the expression creases rest on: surface strain (exact on a synthetic sheet), each Action
Unit compressing the skin of its region on the default model, the region masks, micro relief.
The creases themselves: test_creases.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from backend.detail import microrelief, strain
from backend.models import facs
from backend.models import regions as face_regions
from backend.models.loader import load_model

# ---------------------------------------------------------------- a flat sheet


def sheet(lx: float = 60.0, ly: float = 60.0, n: int = 61, margin: float = 0.1) -> strain.SurfaceMesh:
    """A planar lx × ly mm sheet in z = 0, its UVs filling [margin, 1 - margin]² of tile 0
    (so u and v scales differ when lx != ly)."""
    xs, ys = np.linspace(-lx / 2, lx / 2, n), np.linspace(-ly / 2, ly / 2, n)
    X, Y = np.meshgrid(xs, ys)
    V = np.stack([X.ravel(), Y.ravel(), np.zeros(X.size)], 1)
    UV = np.stack([(X.ravel() / lx + 0.5) * (1 - 2 * margin) + margin,
                   (Y.ravel() / ly + 0.5) * (1 - 2 * margin) + margin], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    T = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return strain.SurfaceMesh(V, T, UV, T)


def squeezed(mesh: strain.SurfaceMesh, axis: int, factor: float) -> np.ndarray:
    v = mesh.vertices.copy()
    v[:, axis] *= factor
    return v


def test_sheet_strain_is_exact():
    mesh = sheet()
    sf = strain.strain_field(mesh, squeezed(mesh, 0, 0.9), 128)
    inside = sf.mask
    assert inside.mean() > 0.6
    np.testing.assert_allclose(sf.compression[inside], 0.1, atol=1e-4)
    np.testing.assert_allclose(np.abs(sf.direction[inside][:, 0]), 1.0, atol=1e-4)  # along u
    ts = strain.triangle_strain(mesh, squeezed(mesh, 0, 0.9))
    np.testing.assert_allclose(ts.stretch_min, 0.9, atol=1e-6)
    np.testing.assert_allclose(ts.stretch_max, 1.0, atol=1e-6)
    # stretching is not compression; a rigid motion is no strain at all
    assert strain.strain_field(mesh, squeezed(mesh, 0, 1.1), 64).compression.max() < 1e-6
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    moved = mesh.vertices @ rot.T + np.array([5.0, -3.0, 2.0])
    assert strain.strain_field(mesh, moved, 64).compression.max() < 1e-6


# ---------------------------------------------------------------- the face model

AU_CASES = {  # Action Units -> the region they must wrinkle
    "AU1+2": ({"AU1": 1.0, "AU2": 1.0}, "forehead"),
    "AU4": ({"AU4": 1.0}, "glabella"),
    "AU6": ({"AU6": 1.0}, "crows_feet"),
    "AU9": ({"AU9": 1.0}, "nose"),
    "AU12": ({"AU12": 1.0}, "nasolabial"),
}
SIZE = 256


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def regions(model):
    masks = face_regions.region_masks(model, SIZE, names=list(face_regions.REGION_GROUPS))
    return {k: v > 0.5 for k, v in masks.items()}


@pytest.mark.parametrize("name", list(AU_CASES))
def test_facs_shapes_compress_their_region(model, regions, name):
    """The measurement the creases rest on: each AU's ICT shapes shorten the skin of its region
    (mean compression of several per cent), and the neutral face none."""
    aus, region = AU_CASES[name]
    sf = strain.face_strain(model, None, facs.weights_from_aus(model, aus), SIZE)
    m = regions[region] & sf.mask
    assert sf.compression[m].mean() > 0.08, (name, sf.compression[m].mean())
    assert strain.face_strain(model, None, np.zeros(model.n_expressions), 64).compression.max() < 1e-5


def test_region_masks(model):
    hard = face_regions.region_masks(model, 256)
    soft = face_regions.region_masks(model, 256, soft=True)
    lm = face_regions.landmark_uvs(model)
    for name in face_regions.REGION_NAMES:
        assert hard[name].sum() > 50, name
        assert soft[name].min() >= 0.0 and soft[name].max() <= 1.0
        assert soft[name][hard[name] > 0].mean() > 0.8

    def centre_uv(m):
        r, c = np.nonzero(m)
        return np.array([(c.mean() + 0.5) / 256, 1.0 - (r.mean() + 0.5) / 256])

    assert centre_uv(hard["forehead"])[1] > lm[17:27, 1].max()  # above the brows
    g = centre_uv(hard["glabella"])
    assert lm[21, 0] < g[0] < lm[22, 0]
    assert centre_uv(hard["crows_feet_R"])[0] < lm[36, 0] and centre_uv(hard["crows_feet_L"])[0] > lm[45, 0]
    # 'elsewhere' keeps its distance from every wrinkle region
    others = np.zeros((256, 256), bool)
    for name in face_regions.REGION_NAMES:
        if name != "elsewhere":
            others |= hard[name] > 0
    gap = ndimage.distance_transform_edt(~others) * (1.0 / 256) * face_regions.RegionLayout.from_model(model).mm_per_uv
    assert gap[hard["elsewhere"] > 0].min() > 8.0
    # the same shapes at any size
    big = face_regions.region_masks(model, 1024, names=["forehead"])["forehead"]
    assert abs(big.mean() - hard["forehead"].mean()) < 0.01


def test_micro_relief_pores_and_texture():
    mesh = sheet()  # 60 × 60 mm on 0.8 UV: 0.073 mm per texel at 1024
    size = 1024
    params = microrelief.MicroParams(line_depth_mm=0.0, texture_rms_mm=0.0)
    dens = 300.0
    pores = microrelief.micro_relief(mesh, size, seed=2, params=params,
                                     density=lambda n: np.full((n, n), dens, np.float32))
    labels, count = ndimage.label(pores < -0.004)
    expected = dens / 100.0 * 60.0 * 60.0
    assert 0.75 * expected < count < 1.1 * expected, (count, expected)  # some pores merge
    depth = -ndimage.minimum(pores, labels, np.arange(1, count + 1))
    assert 0.01 < np.median(depth) < 0.05 and depth.max() < 0.1
    full = microrelief.micro_relief(mesh, size, seed=2)
    m = full != 0
    assert 0.005 < full[m].std() < 0.03
    # real high-frequency content: most of the relief is at wavelengths under ~1 mm
    low = ndimage.gaussian_filter(full, 1.0 / 0.073)  # σ = 1 mm
    assert (full - low)[m].std() > 0.7 * full[m].std()
    sizes = microrelief.texel_size_mm(mesh, size)
    assert abs(sizes["mean"] - 75.0 / size) < 1e-3


def test_steered_sum_of_a_repeated_tile():
    """Above the noise tile the fine lines are a tile repeated and weighted by steering held over
    blocks: the index arithmetic equals the explicit kron/tile product."""
    rng = np.random.default_rng(0)
    g, reps, blk = 16, 2, microrelief.WEIGHT_BLOCK
    tile = rng.standard_normal((g, g)).astype(np.float32)
    weights = rng.random((g * reps // blk,) * 2).astype(np.float32)
    lines = rng.standard_normal((g * reps,) * 2).astype(np.float32)
    want = lines + np.kron(weights, np.ones((blk, blk), np.float32)) * np.tile(tile, (reps, reps))
    microrelief._add_steered(lines, tile, weights, reps)
    np.testing.assert_allclose(lines, want, rtol=1e-6, atol=1e-6)
