"""Expression wrinkles: surface strain, film-on-substrate buckling, region masks, micro relief.

A synthetic flat sheet (its own vertices, triangles and UVs) checks the mechanics exactly;
the default ICT-FaceKit model checks that each Action Unit wrinkles the skin where anatomy
says it should and nowhere else.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from backend.core.errors import CancelledError
from backend.core.progress import Job
from backend.detail import microrelief, strain
from backend.detail.wrinkles import field as wrinkles
from backend.detail.wrinkles import mechanics
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


def dominant_wave(d: np.ndarray, size: int, lo: float = 0.15, hi: float = 0.85) -> tuple[float, float]:
    """Peak of the windowed, zero-padded spectrum of the central patch: (cycles per UV unit
    along u, along v) with v up."""
    r0, r1 = int(lo * size), int(hi * size)
    p = d[r0:r1, r0:r1].astype(np.float64)
    n = p.shape[0]
    win = np.hanning(n)[:, None] * np.hanning(n)[None, :]
    pad = 4096
    F = np.abs(np.fft.rfft2((p - p.mean()) * win, s=(pad, pad)))
    F[0, 0] = 0
    ky, kx = np.unravel_index(np.argmax(F), F.shape)
    ky = ky if ky <= pad // 2 else ky - pad
    return kx / pad * size, -ky / pad * size


def wavelength_mm(d, size, mm_per_uv_u, mm_per_uv_v) -> tuple[float, float]:
    """(wavelength in mm, angle of the wave vector from +x in degrees, in (-90, 90])."""
    fu, fv = dominant_wave(d, size)
    ku, kv = fu / mm_per_uv_u, fv / mm_per_uv_v  # cycles per mm on the surface
    ang = np.degrees(np.arctan2(kv, ku))
    ang = (ang + 90.0) % 180.0 - 90.0
    return 1.0 / np.hypot(ku, kv), ang


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


@pytest.mark.parametrize("axis, ly", [(0, 60.0), (1, 30.0)])
def test_sheet_buckles_at_predicted_wavelength_and_amplitude(axis, ly):
    """10 % compression: crests run across the compression, at λ = 2πh(E_f/3E_s)^(1/3) on the
    compressed surface, amplitude h·sqrt(ε/ε_c − 1). The 60×30 mm sheet has different u and
    v scales, so the UV metric has to be honoured."""
    mesh = sheet(ly=ly)
    size, h = 512, 0.4
    lam, eps_c, amp = mechanics.buckling(h, 0.1)
    assert 4.0 < lam < 9.0 and 0.02 < eps_c < 0.06 and 0.3 < amp < 0.8  # "a few mm", tenths of mm
    mmuv = [60.0 / 0.8, ly / 0.8]
    mmuv[axis] *= 0.9  # measured on the compressed sheet
    regular = wrinkles.wrinkle_field(mesh, squeezed(mesh, axis, 0.9), size, thickness=h, seed=0,
                                     irregularity=0.0)
    wl, ang = wavelength_mm(regular.displacement, size, *mmuv)
    assert abs(wl / lam - 1.0) < 0.05, (wl, lam)
    expect = 0.0 if axis == 0 else 90.0
    assert abs(abs(ang) - expect) < 3.0, ang  # wave vector along the compression: crests across it
    inner = regular.displacement[int(0.2 * size):int(0.8 * size), int(0.2 * size):int(0.8 * size)]
    half_p2p = (np.percentile(inner, 99.5) - np.percentile(inner, 0.5)) / 2
    assert 0.8 * amp < half_p2p < 1.3 * amp, (half_p2p, amp)
    assert abs(float(inner.mean())) < 0.1 * amp  # zero = the smooth surface
    # the natural (irregular) pattern keeps the wavelength, within ~10 %, over seeds
    wls = [wavelength_mm(wrinkles.wrinkle_field(mesh, squeezed(mesh, axis, 0.9), size, thickness=h,
                                                seed=s).displacement, size, *mmuv)[0] for s in range(3)]
    assert abs(np.median(wls) / lam - 1.0) < 0.10, wls


def test_sheet_without_compression_has_no_wrinkles():
    mesh = sheet()
    size = 256
    for deformed in (mesh.vertices, squeezed(mesh, 0, 1.1)):  # neutral; stretched
        r = wrinkles.wrinkle_field(mesh, deformed, size, thickness=0.4, seed=1)
        assert np.abs(r.displacement).max() == 0.0
    # below onset (2 % < ε_c ≈ 3.8 %): at most the tiny amplification of the skin's relief
    r = wrinkles.wrinkle_field(mesh, squeezed(mesh, 0, 0.98), size, thickness=0.4, seed=1)
    assert np.abs(r.displacement).max() < 0.02
    # with micro relief: only micro relief (tens of µm), no wrinkle-scale energy
    r = wrinkles.wrinkle_field(mesh, mesh.vertices, 1024, thickness=0.4, seed=1, micro=True)
    d = r.displacement[r.mask]
    assert 0.004 < d.std() < 0.03 and np.abs(d).max() < 0.2
    smooth = ndimage.gaussian_filter(r.displacement, 1024 / 75 * 1.0)  # ≥ ~2 mm scales
    assert np.abs(smooth[r.mask]).max() < 0.01


def test_wrinkles_are_the_same_at_every_map_size():
    mesh = sheet()
    deformed = squeezed(mesh, 0, 0.9)
    small = wrinkles.wrinkle_field(mesh, deformed, 128, thickness=0.4, seed=4).displacement
    big = wrinkles.wrinkle_field(mesh, deformed, 512, thickness=0.4, seed=4).displacement
    down = big.reshape(128, 4, 128, 4).mean(axis=(1, 3))
    inner = (slice(20, 108), slice(20, 108))
    assert np.corrcoef(small[inner].ravel(), down[inner].ravel())[0, 1] > 0.95


def test_existing_crease_deepens_and_attracts_a_trough():
    mesh = sheet()
    size = 512
    u = (np.arange(size) + 0.5) / size
    crease_u = 0.53
    pd = np.tile(-0.08 * np.exp(-0.5 * ((u - crease_u) / (0.25 / 75.0)) ** 2), (size, 1)).astype(np.float32)
    col = int(crease_u * size)
    rows = slice(int(0.2 * size), int(0.8 * size))
    # below onset: no wrinkles, but the crease deepens (imperfection amplification)
    low = squeezed(mesh, 0, 0.98)
    plain = wrinkles.wrinkle_field(mesh, low, size, thickness=0.4, seed=3)
    creased = wrinkles.wrinkle_field(mesh, low, size, thickness=0.4, seed=3, person_detail=pd)
    assert np.abs(plain.displacement).max() < 0.02
    assert creased.displacement[rows, col].mean() < -0.04  # deeper by more than half its depth
    flat = ~((u > crease_u - 0.03) & (u < crease_u + 0.03))
    assert np.abs(creased.displacement[rows][:, flat]).max() < 0.02  # only the crease moves
    # beyond onset: a wrinkle trough locks onto the crease (deepening switched off here)
    hi = squeezed(mesh, 0, 0.9)
    params = mechanics.SkinParams(crease_gain_cap=1.0)
    seeds_crest = []
    for seed in range(4):
        a = wrinkles.wrinkle_field(mesh, hi, size, thickness=0.4, seed=seed, params=params)
        b = wrinkles.wrinkle_field(mesh, hi, size, thickness=0.4, seed=seed, params=params, person_detail=pd)
        amp = a.displacement[rows].std()
        assert b.displacement[rows, col].mean() < -0.8 * amp  # a trough on the crease
        seeds_crest.append(a.displacement[rows, col].mean())
    assert max(seeds_crest) > -0.5 * amp  # without the crease the trough is elsewhere for some seed


def test_buckling_parameters_and_age():
    p = mechanics.DEFAULT_SKIN
    ages = [20, 35, 50, 70, 90]
    eps_c = [p.critical_strain(a) for a in ages]
    assert all(x > y for x, y in zip(eps_c, eps_c[1:]))  # older skin buckles earlier
    assert 0.02 < p.critical_strain(35) < 0.06
    for eps in (0.05, 0.1, 0.2):
        amps = [float(mechanics.buckling(0.4, eps, p, a)[2]) for a in ages]
        assert all(x <= y for x, y in zip(amps, amps[1:])) and amps[-1] > amps[0]
    # the imperfect bifurcation: 0 at no strain, smooth through onset, perfect far above it
    a = mechanics.imperfect_amplitude(np.full(4, 0.4), np.array([0.0, 0.5, 1.0, 4.0]), 0.004)
    assert a[0] == 0.0 and 0.0 < a[1] < 0.01 < a[2] < 0.1
    assert abs(a[3] - 0.4 * np.sqrt(3.0)) < 0.02


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


@pytest.fixture(scope="module")
def au_maps(model):
    out = {"neutral": wrinkles.wrinkle_map(model, None, np.zeros(model.n_expressions), size=SIZE, micro=False)}
    for name, (aus, _) in AU_CASES.items():
        out[name] = wrinkles.wrinkle_map(model, None, wrinkles.expression_for_aus(model, aus), size=SIZE,
                                         micro=False)
    return out


def rms(d, m):
    return float(np.sqrt(np.mean(d[m] ** 2)))


def test_expression_for_aus_is_the_facs_table(model):
    aus = {"AU12": 0.7, "AU6L": 0.4}
    np.testing.assert_array_equal(wrinkles.expression_for_aus(model, aus), facs.weights_from_aus(model, aus))


@pytest.mark.parametrize("name", list(AU_CASES))
def test_facs_shapes_compress_their_region(model, regions, name):
    """The measurement the wrinkles rest on: each AU's ICT shapes shorten the skin of its
    region (mean compression well above the film's onset strain), and the neutral face none."""
    aus, region = AU_CASES[name]
    sf = strain.face_strain(model, None, wrinkles.expression_for_aus(model, aus), SIZE)
    m = regions[region] & sf.mask
    assert sf.compression[m].mean() > 0.08, (name, sf.compression[m].mean())
    assert strain.face_strain(model, None, np.zeros(model.n_expressions), 64).compression.max() < 1e-5


def test_neutral_face_has_no_wrinkles(au_maps):
    assert np.abs(au_maps["neutral"].displacement).max() < 1e-6


@pytest.mark.parametrize("name", list(AU_CASES))
def test_au_wrinkles_where_anatomy_says(au_maps, regions, name):
    _, region = AU_CASES[name]
    r = au_maps[name]
    d = r.displacement
    target = rms(d, regions[region] & r.mask)
    elsewhere = rms(d, regions["elsewhere"] & r.mask)
    neutral = rms(au_maps["neutral"].displacement, regions[region] & r.mask)
    assert target > 0.08, (name, target)  # tenths of a mm of relief
    assert target > 3.0 * elsewhere, (name, target, elsewhere)
    assert target > 3.0 * neutral + 0.05
    assert np.abs(d).max() < 3.0 and np.isfinite(d).all()


def test_age_deepens_wrinkles(model, regions):
    w = wrinkles.expression_for_aus(model, {"AU1": 0.8, "AU2": 0.8})
    fore = regions["forehead"]
    young = wrinkles.wrinkle_map(model, None, w, size=SIZE, age=25, micro=False)
    old = wrinkles.wrinkle_map(model, None, w, size=SIZE, age=65, micro=False)
    assert rms(old.displacement, fore) > 1.3 * rms(young.displacement, fore)
    assert old.stats["critical_strain"] < young.stats["critical_strain"]


def test_face_crease_attracts_a_trough(model):
    """A forehead line in the person's own detail map (1024², 0.1 mm deep) becomes a trough of
    the raised-brow wrinkles and deepens."""
    S = 1024
    lm = face_regions.landmark_uvs(model)
    v_c = lm[17:27, 1].max() + 14.0 / face_regions.RegionLayout.from_model(model).mm_per_uv
    v = 1.0 - (np.arange(S) + 0.5) / S
    pd = np.tile((-0.1 * np.exp(-0.5 * ((v - v_c) / 0.001) ** 2))[:, None], (1, S)).astype(np.float32)
    w = wrinkles.expression_for_aus(model, {"AU1": 0.6, "AU2": 0.6})
    a = wrinkles.wrinkle_map(model, None, w, size=SIZE, micro=False, seed=0)
    b = wrinkles.wrinkle_map(model, None, w, size=SIZE, micro=False, seed=0, person_detail=pd)
    row = int(round((1.0 - v_c) * SIZE - 0.5))
    cols = slice(int(0.42 * SIZE), int(0.58 * SIZE))
    amp = a.displacement[row - 20:row + 20, cols].std()
    assert b.displacement[row, cols].mean() < -amp
    assert b.displacement[row, cols].mean() < a.displacement[row, cols].mean() - 0.1


def test_determinism_and_progress(model):
    w = wrinkles.expression_for_aus(model, {"AU4": 1.0})
    seen = []
    job = Job(lambda f, msg: seen.append(f))
    a = wrinkles.wrinkle_map(model, None, w, size=SIZE, seed=7, job=job)
    b = wrinkles.wrinkle_map(model, None, w, size=SIZE, seed=7)
    c = wrinkles.wrinkle_map(model, None, w, size=SIZE, seed=8)
    assert a.displacement.dtype == np.float32 and a.displacement.shape == (SIZE, SIZE)
    np.testing.assert_array_equal(a.displacement, b.displacement)
    assert not np.array_equal(a.displacement, c.displacement)
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    job = Job()
    job.cancel()
    with pytest.raises(CancelledError):
        wrinkles.wrinkle_map(model, None, w, size=SIZE, job=job)


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


def test_face_map_4096_smoke(model):
    """One full-resolution map with micro relief (its time and memory: `python -m backend bench`)."""
    w = wrinkles.expression_for_aus(model, {"AU6": 1.0, "AU12": 1.0})
    r = wrinkles.wrinkle_map(model, None, w, size=4096, seed=0)
    d = r.displacement
    assert d.shape == (4096, 4096) and d.dtype == np.float32 and np.isfinite(d).all()
    assert r.compression.shape == (4096, 4096) and r.mask.mean() > 0.8
    assert abs(r.stats["mm_per_texel"] - 0.0722) < 0.002
    # micro relief resolves at this size: strong content at 2-4 texel wavelengths
    patch = d[1700:2200, 1100:1600]  # cheek
    hp = patch - ndimage.gaussian_filter(patch, 2.0)
    assert hp.std() > 0.003
