"""Wrinkles that follow an animation: per-AU maps, key corrections, exactness at keys."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from backend.core import exr_io
from backend.core.errors import BadRequestError
from backend.core.imaging import resample
from backend.core.progress import Job
from backend.detail import rig as wrinkle_rig
from backend.detail.creases.generator import crease_map
from backend.models import emotions
from backend.models.loader import load_model
from backend.models.regions import region_masks
from protocol.details import PHOTO_DETAIL_FILE, WrinkleRig
from protocol.job import FaceReconstruction


# these tests are about the physical model (the learned one: test_learned_serve.py)
def build_animation(*args, **kw) -> dict:
    return asdict(wrinkle_rig.build_animation(*args, detail_model="physical", **kw))


def build_wrinkle_rig(*args, **kw) -> dict:
    return asdict(wrinkle_rig.build_wrinkle_rig(*args, detail_model="physical", **kw))

CONTROLS = ["AU1L", "AU1R", "AU2L", "AU2R", "AU5L", "AU12L", "AU12R"]
BROWS = {"AU1L": 1.0, "AU1R": 1.0, "AU2L": 1.0, "AU2R": 1.0}
SMILE = {"AU12L": 0.7, "AU12R": 0.7}


@pytest.fixture(scope="module")
def job(small_job):
    return small_job("wrinkle_rig")


@pytest.fixture(scope="module")
def anim(job):
    seen = []
    res = build_animation(str(job), size=256, controls=CONTROLS, base_size=256,
                                      keys=[{"frame": 1, "values": BROWS}, {"frame": 20, "values": SMILE}],
                                      job=Job(lambda f, m: seen.append(f)))
    return res, seen


def test_packs_hold_one_map_per_control_and_drop_shallow_ones(job, anim):
    res, seen = anim
    assert res["skipped"] == ["AU5L"], "AU5 (upper lid raiser) makes < 0.1 mm of wrinkles on this face"
    packed = [c for p in res["packs"] for c in p["controls"]]
    assert packed == [c for c in CONTROLS if c != "AU5L"]
    for p in res["packs"]:
        chans = exr_io.read_channels(job / p["file"])
        assert all(c.shape == (256, 256) for c in chans)
        for ch, key in enumerate(p["controls"]):
            assert np.abs(chans[ch]).max() == pytest.approx(res["controls"][key]["peak_mm"], rel=2e-3)
        for ch in range(len(p["controls"]), 3):
            assert not chans[ch].any(), "unused channels are 0"
    assert exr_io.read_map(job / res["base"]["file"]).shape == (256, 256)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0), "progress rises to 1"


def test_each_control_wrinkles_its_own_region(job, anim):
    res, _ = anim
    model = load_model(FaceReconstruction.load(job).model_dir)
    masks = {k: v > 0.5 for k, v in region_masks(model, 256, names=["forehead", "nasolabial"]).items()}
    chans = {k: exr_io.read_channels(job / res["packs"][v["pack"]]["file"])[v["channel"]]
             for k, v in res["controls"].items()}

    def rms(m, region):
        return float(np.sqrt(np.mean(m[region] ** 2)))

    forehead, nasolabial = masks["forehead"], masks["nasolabial"]
    brows = chans["AU1L"] + chans["AU1R"] + chans["AU2L"] + chans["AU2R"]
    smile = chans["AU12L"] + chans["AU12R"]
    assert rms(brows, forehead) > 5 * rms(brows, nasolabial)
    assert rms(smile, nasolabial) > 3 * rms(smile, forehead)


def test_mix_plus_key_correction_is_the_exact_map_at_the_key(job, anim):
    res, _ = anim
    rec = FaceReconstruction.load(job)
    model = load_model(rec.model_dir)
    person = resample(exr_io.read_map(job / PHOTO_DETAIL_FILE), 256)
    for key, values in ((res["keys"][0], BROWS), (res["keys"][1], SMILE)):
        w = emotions.weights_from_controls(emotions.au_rig(model), model.expression_names, values)
        exact = crease_map(model, np.asarray(rec.fit.identity), w, size=256, age=res["age_years"],
                           person_detail=person, seed=res["seed"], micro=False).displacement
        shown = wrinkle_rig.mix(job, WrinkleRig.from_dict(res), values) + exr_io.read_map(job / key["file"])
        # half-float storage: ~1e-3 relative; the maps reach ~1-2 mm
        assert np.abs(shown - exact).max() < 2e-3 + 1e-3 * np.abs(exact).max()
        # a real wrinkle map, not an empty one: at the photo's age (33) a forehead line is ~0.15 mm
        # deep and the nasolabial fold ~0.4 mm (the anatomy table)
        assert np.abs(exact).max() > 0.1, "a real wrinkle map, not an empty one"
    # Creases are not linear in the AUs: two together are not the sum of each alone.
    corr = exr_io.read_map(job / res["keys"][0]["file"])
    assert np.abs(corr).max() > 0.1


def test_identical_requests_reuse_files_and_keys_are_cached(job, anim):
    res, _ = anim
    side = job / f"wrinkles_{res['tag']}.json"
    before = side.stat().st_mtime_ns
    again = build_animation(str(job), size=256, controls=CONTROLS, base_size=256,
                                        keys=[{"frame": 5, "values": dict(BROWS)}])
    assert again["tag"] == res["tag"] and side.stat().st_mtime_ns == before
    assert again["keys"][0]["file"] == res["keys"][0]["file"], "same AU values: same key map"
    other = build_wrinkle_rig(str(job), size=256, controls=["AU12L"], base_size=256, seed=3)
    assert other["tag"] != res["tag"] and (job / f"wrinkles_{res['tag']}.json").is_file()
    assert json.loads(side.read_text())["packs"] == res["packs"]


def test_bad_requests_say_what_to_change(job, anim):
    res, _ = anim
    with pytest.raises(BadRequestError, match="unknown AU controls AU99"):
        build_wrinkle_rig(str(job), size=256, controls=["AU99"], base_size=256)
    with pytest.raises(BadRequestError, match="size must be"):
        build_wrinkle_rig(str(job), size=300, base_size=256)
    with pytest.raises(BadRequestError, match="key 0: unknown AU controls AU12X"):
        wrinkle_rig.build_key_maps(str(job), res["tag"], [{"frame": 1, "values": {"AU12X": 1}}])
    with pytest.raises(BadRequestError, match="no wrinkle maps"):
        wrinkle_rig.build_key_maps(str(job), "0000000000", [{"frame": 1, "values": {}}])
    with pytest.raises(BadRequestError, match="no 'values'"):
        wrinkle_rig.build_key_maps(str(job), res["tag"], [{"frame": 1}])


def test_rgb_pack_round_trip(tmp_path):
    a, b = np.linspace(-2, 2, 64 * 64, dtype=np.float32).reshape(64, 64), np.full((64, 64), 0.5, np.float32)
    exr_io.write_channels(tmp_path / "p.exr", [a, b])
    r, g, bb = exr_io.read_channels(tmp_path / "p.exr")
    np.testing.assert_array_equal(r, a.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(g, b)
    assert not bb.any()
    with pytest.raises(ValueError, match="1 to 3"):
        exr_io.write_channels(tmp_path / "q.exr", [a] * 4)
