"""The crease generator (the physical detail model's wrinkles) and the wrinkle statistics that
measure it: each emotion prototype makes creases only in the regions its AUs name, as many and
as far apart as the anatomy table allows at each age; a neutral face gets none; older skin creases
deeper; a line the person already has is deepened, not doubled."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from backend.core.errors import CancelledError
from backend.core.progress import Job
from backend.detail.creases.anatomy import FAMILIES
from backend.detail.creases.generator import crease_map
from backend.detail.stats import crease_stats, face_map_stats
from backend.models import emotions, facs
from backend.models.loader import load_model
from backend.models.regions import RegionLayout, landmark_uvs, region_masks

SIZE = 1024
FAMILY_OF = {r: f for f in FAMILIES for r in f.regions}


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def presets(model):
    rig = emotions.au_rig(model)
    return {name: emotions.weights_from_controls(rig, model.expression_names, values)
            for name, values in emotions.preset_controls(model, rig).items()}


def allowed_regions(model, weights) -> set[str]:
    """The regions whose families' AUs the expression has (by side for sided regions)."""
    aus = {k: v for k, v in facs.aus_from_weights(model, weights).items() if v >= 0.05}
    out = set()
    for fam in FAMILIES:
        for r in fam.regions:
            side = r[-1] if r[-2:] in ("_R", "_L") else ""
            if any(f"AU{a}{side}" in aus or (not side and f"AU{a}" in aus) for a in fam.aus):
                out.add(r)
    return out


@pytest.mark.parametrize("age", [25.0, 45.0, 70.0])
@pytest.mark.parametrize("name", ["happy", "sad", "surprise", "fear", "anger", "disgust", "contempt"])
def test_prototype_creases_where_its_aus_act_as_many_and_as_spaced_as_documented(model, presets, name, age):
    w = presets[name]
    r = crease_map(model, None, w, size=SIZE, age=age, micro=False)
    allowed = allowed_regions(model, w)
    made = {ln.region for ln in r.lines}
    if max(facs.aus_from_weights(model, w).values()) >= 0.5:  # contempt's AUs are at trace level (A)
        assert made, f"{name} at {age:g}: no crease at all"
    assert made <= allowed, (name, age, made - allowed)
    for region in made:
        count, _, _ = FAMILY_OF[region].at_age(age)
        assert sum(ln.region == region for ln in r.lines) <= count, (name, age, region)
    st = face_map_stats(model, r.displacement)
    assert st.regions["elsewhere"].count == 0, (name, age)
    for region, rs in st.regions.items():
        if rs.count and region != "elsewhere":
            assert region in allowed, (name, age, region, rs)
            if rs.spacing_mm is not None and FAMILY_OF[region].shape == "lines":
                # neighbours no closer than the family's spacing allows (it tightens to 0.8x with intensity;
                # a fork joins two lines, so the minimum over a region can come close to half of it)
                assert rs.spacing_mm >= 0.5 * FAMILY_OF[region].spacing_mm, (name, age, region, rs)
    d = r.displacement
    assert np.isfinite(d).all() and np.abs(d).max() < 2.0


def test_neutral_adds_nothing(model):
    r = crease_map(model, None, np.zeros(model.n_expressions), size=512, age=70.0, micro=False)
    assert not r.lines and not r.displacement.any()


def test_older_skin_creases_deeper_and_more(model, presets):
    fore = region_masks(model, SIZE, names=["forehead"])["forehead"] > 0.5
    depth, count = [], []
    for age in (25.0, 45.0, 70.0):
        r = crease_map(model, None, presets["surprise"], size=SIZE, age=age, micro=False)
        depth.append(-float(r.displacement[fore].min()))
        count.append(sum(ln.family == "forehead" for ln in r.lines))
    assert depth[0] < depth[1] < depth[2], depth
    assert count[0] <= count[1] <= count[2] and count[2] > count[0], count


def test_raised_brows_stack_forehead_lines_beyond_the_rigs_compressed_band(model, presets):
    """The rig compresses only the band above the brows; the frontalis's lines stack up the forehead
    one spacing apart (anatomy.Family.spread, trace's seeds beside finished lines)."""
    r = crease_map(model, None, presets["surprise"], size=512, age=70.0, micro=False)
    fam = FAMILY_OF["forehead"]
    lines = [ln for ln in r.lines if ln.family == "forehead"]
    assert len(lines) == fam.at_age(70.0)[0]
    tx = 296.0 / 512  # ~mm per working texel on the ICT face tile
    rows = sorted(float(np.median(ln.points[:, 0])) for ln in lines)
    stack_mm = (rows[-1] - rows[0]) * tx
    assert stack_mm >= 1.6 * fam.spacing_mm, rows  # three rows or more, not dashes along one
    # most lines run the forehead's width (>= 6 cm), not short dashes
    assert sum(len(ln.points) * 0.4 >= 60.0 for ln in lines) >= 3


def test_a_line_the_person_has_is_deepened_not_doubled(model):
    """A forehead line in the person's own map, where raised brows compress the skin most (~20 mm
    above the brows): the brows' crease follows it and no other crease runs beside it."""
    lay = RegionLayout.from_model(model)
    lm = landmark_uvs(model)
    v_line = lm[19:25, 1].mean() + 20.0 / lay.mm_per_uv
    v = 1.0 - (np.arange(SIZE) + 0.5) / SIZE
    u = (np.arange(SIZE) + 0.5) / SIZE
    within = (np.abs(u - lm[27, 0]) < 40.0 / lay.mm_per_uv).astype(np.float32)  # a 80 mm line across the middle
    person = (-0.08 * np.exp(-0.5 * ((v - v_line) * lay.mm_per_uv / 0.4) ** 2))[:, None] * within[None, :]
    w = facs.weights_from_aus(model, {"AU1": 1.0, "AU2": 1.0})
    plain = crease_map(model, None, w, size=SIZE, age=45.0, micro=False)
    seeded = crease_map(model, None, w, size=SIZE, age=45.0, micro=False, person_detail=person.astype(np.float32))
    n = 512
    row_line = (1.0 - v_line) * n - 0.5
    fam = next(f for f in FAMILIES if f.name == "forehead")
    on_line, beside = [], []
    for ln in seeded.lines:
        if ln.family != "forehead":
            continue
        dist_mm = np.abs(ln.points[:, 0] - row_line) * lay.mm_per_uv / n
        (on_line if np.median(dist_mm) < 1.0 else beside).append(float(np.median(dist_mm)))
    assert on_line, "a crease follows the person's own line"
    assert all(d > 0.5 * fam.spacing_mm for d in beside), beside
    row = int(round((1.0 - v_line) * SIZE - 0.5))
    cols = np.nonzero(within > 0)[0][40:-40]
    total = person[row, cols] + seeded.displacement[row, cols]
    assert np.median(total) < np.median(person[row, cols]) - 0.05, "the line is deeper than the person's alone"
    assert np.median(seeded.displacement[row, cols]) < np.median(plain.displacement[row, cols]), \
        "deeper than where the plain map puts its creases"


def test_determinism_progress_and_cancel(model):
    w = facs.weights_from_aus(model, {"AU4": 1.0, "AU9": 1.0})
    seen = []
    a = crease_map(model, None, w, size=512, seed=7, job=Job(lambda f, m: seen.append(f)))
    b = crease_map(model, None, w, size=512, seed=7)
    c = crease_map(model, None, w, size=512, seed=8)
    assert a.displacement.dtype == np.float32 and a.displacement.shape == (512, 512)
    np.testing.assert_array_equal(a.displacement, b.displacement)
    assert not np.array_equal(a.displacement, c.displacement)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    job = Job()
    job.cancel()
    with pytest.raises(CancelledError):
        crease_map(model, None, w, size=512, job=job)


def test_kept_micro_relief_gives_the_map_a_fresh_run_gives(model):
    """The process keeps a face's micro relief and UV coverage between maps (they do not depend on
    the expression): a map made after another expression's equals one made from scratch, and a
    different age or seed makes new micro relief."""
    from backend.detail.creases import generator

    brows = facs.weights_from_aus(model, {"AU1": 1.0, "AU2": 1.0})
    smile = facs.weights_from_aus(model, {"AU6": 1.0, "AU12": 1.0})
    generator.forget_face_caches()
    crease_map(model, None, brows, size=512, seed=3, age=50.0)
    after = crease_map(model, None, smile, size=512, seed=3, age=50.0).displacement
    generator.forget_face_caches()
    fresh = crease_map(model, None, smile, size=512, seed=3, age=50.0).displacement
    np.testing.assert_array_equal(after, fresh)
    older = crease_map(model, None, np.zeros(model.n_expressions), size=512, seed=3, age=70.0).displacement
    younger = crease_map(model, None, np.zeros(model.n_expressions), size=512, seed=3, age=30.0).displacement
    assert np.sqrt(np.mean(older ** 2)) > np.sqrt(np.mean(younger ** 2)), "older skin: deeper micro relief"


def test_crease_map_4096_with_micro_relief(model):
    """One full-resolution map (its time and memory: `python -m backend bench`)."""
    r = crease_map(model, None, facs.weights_from_aus(model, {"AU6": 1.0, "AU12": 1.0}), size=4096, seed=0)
    d = r.displacement
    assert d.shape == (4096, 4096) and d.dtype == np.float32 and np.isfinite(d).all()
    assert r.mask.mean() > 0.8 and abs(r.stats["mm_per_texel"] - 0.0722) < 0.002
    patch = d[1700:2200, 1100:1600]  # cheek: micro relief resolves at this size (2-4 texel wavelengths)
    assert (patch - ndimage.gaussian_filter(patch, 2.0)).std() > 0.003


def test_wrinkle_stats_measure_known_creases():
    """Three Gaussian valleys 10 mm apart, 0.3 mm deep, 1 mm wide at half depth, 120 mm long, one
    of them widened on its upper side: the statistics read them back."""
    n, tx = 1024, 0.145  # the texel at which 4096² face maps are analysed
    y, x = np.mgrid[0:n, 0:n] * tx
    m = np.zeros((n, n), np.float32)
    ramp = np.clip((x - 15) / 10, 0, 1) * np.clip((145 - x) / 10, 0, 1)
    for row_mm, up in ((90.0, 1.0), (100.0, 1.0), (110.0, 1.6)):
        d = y - row_mm
        sig = np.where(d < 0, up, 1.0) * 1.0 / 2.3548  # rows grow downwards: d < 0 is above the line
        m -= (0.3 * np.exp(-0.5 * (d / sig) ** 2) * ramp).astype(np.float32)
    m += np.random.default_rng(0).normal(0, 0.003, m.shape).astype(np.float32)
    region = np.zeros((n, n), bool)
    region[500:850, 50:1000] = True
    st = crease_stats(m, tx, {"forehead": region, "elsewhere": ~region})
    r = st.regions["forehead"]
    assert r.count == 3 and st.regions["elsewhere"].count == 0
    assert r.spacing_mm == pytest.approx(10.0, abs=0.5)
    assert r.depth_mm == pytest.approx(0.3, abs=0.03)
    assert r.width_mm == pytest.approx(1.0, abs=0.15)
    assert 115.0 < r.length_mm < 135.0
    assert min(abs(r.angle_deg), abs(180 - r.angle_deg)) < 2.0
    widened = max(st.creases, key=lambda c: c.asymmetry)
    assert widened.asymmetry > 0.15 and abs(sorted(c.asymmetry for c in st.creases)[0]) < 0.08


def test_face_micro_relief_is_the_crease_maps_own(model):
    """What other detail models add as pores and fine lines is exactly what a crease map gets."""
    from backend.detail.creases import generator

    w = facs.weights_from_aus(model, {"AU12": 1.0})
    full = crease_map(model, None, w, size=512, seed=5, age=40.0).displacement
    bare = crease_map(model, None, w, size=512, seed=5, age=40.0, micro=False).displacement
    np.testing.assert_allclose(full - bare, generator.face_micro_relief(model, None, 512, 40.0, seed=5), atol=1e-6)
