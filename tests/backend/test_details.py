"""Detail maps for a reconstructed face: files, convention, and where the target AUs act."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from backend.core import exr_io
from backend.detail import maps as details
from backend.models.loader import load_model
from backend.models.regions import region_masks
from conftest import PHOTO
from PIL import Image

from backend.detail.photo.extract import METHOD_VERSION
from backend.reconstruct.pipeline import reconstruct
from protocol.details import PHOTO_DETAIL_FILE, PHOTO_DETAIL_STAMP
from protocol.job import FaceReconstruction


# these tests are about the physical model (the learned one: test_learned_serve.py)
def build_details(*args, **kw) -> dict:
    return asdict(details.build_details(*args, detail_model="physical", **kw))


@pytest.fixture(scope="module")
def job(small_job):
    return small_job("details")


@pytest.fixture(scope="module")
def maps(job):
    n = 57
    neutral = build_details(str(job), expression=[0.0] * n, sizes=(256,))
    brows = build_details(str(job), aus={"AU1": 1.0, "AU2": 1.0}, sizes=(256,))
    return neutral, brows


def test_files_follow_the_convention(job, maps):
    neutral, brows = maps
    for res in maps:
        m = exr_io.read_map(job / res["files"]["256"])
        assert m.shape == (256, 256) and m.dtype == np.float32 and np.isfinite(m).all()
        side = json.loads((job / f"detail_{res['tag']}.json").read_text())
        assert side["unit"] == "mm" and side["model"] == "physical"
    assert (job / PHOTO_DETAIL_FILE).is_file(), "D(I_x) is cached per face"
    assert neutral["tag"] != brows["tag"]
    assert brows["aus"]["AU1"] == 1.0 and brows["aus"]["AU2"] == 1.0 and "AU12" not in brows["aus"]


def test_target_aus_change_the_map_only_where_they_act(job, maps):
    neutral, brows = maps
    a = exr_io.read_map(job / neutral["files"]["256"])
    b = exr_io.read_map(job / brows["files"]["256"])
    masks = region_masks(load_model(), 256)
    diff = np.abs(b - a)
    # a few creases on the forehead (tenths of a mm at their floors), nothing in the lower face
    forehead = np.percentile(diff[masks["forehead"] > 0.5], 99)
    elsewhere = np.percentile(diff[masks["elsewhere"] > 0.5], 99)
    assert forehead > 0.05, f"AU1+2 creases the forehead: {forehead:.3f} mm"
    assert forehead > 10 * elsewhere, (forehead, elsewhere)


def test_same_expression_and_seed_reuse_the_same_maps(job, maps):
    neutral, _ = maps
    again = build_details(str(job), expression=[0.0] * 57, sizes=(256,))
    assert again["tag"] == neutral["tag"]
    np.testing.assert_array_equal(exr_io.read_map(job / again["files"]["256"]),
                                  exr_io.read_map(job / neutral["files"]["256"]))


def test_a_target_in_rig_controls_is_the_expression_blender_shows(job):
    """Controls as the AU sliders hold them: driven shapes take their control's value, shapes no
    control drives keep the photo's fitted weight (as the scene's undriven shape keys do)."""
    from backend.detail.face import ReconstructedFace
    from backend.models import emotions

    face = ReconstructedFace.open(str(job))
    rig = emotions.au_rig(face.model)
    res = build_details(str(job), controls={"AU1L": 1.0, "AU2R": 0.5}, sizes=(256,))
    w = np.asarray(res["expression"])
    names = face.model.expression_names
    driven = {s: c["key"] for c in rig for s in c["shapes"]}
    photo = np.asarray(face.rec.fit.expression)
    for i, name in enumerate(names):
        want = {"AU1L": 1.0, "AU2R": 0.5}.get(driven[name], 0.0) if name in driven else photo[i]
        assert abs(w[i] - want) < 1e-4, name  # the side file rounds to 4 decimals
    assert any(n not in driven and photo[names.index(n)] > 0.01 for n in names), "the photo has undriven weights"
    with pytest.raises(ValueError, match="AU99"):
        build_details(str(job), controls={"AU99": 1.0}, sizes=(256,))


def test_bad_expression_length_is_refused(job):
    with pytest.raises(ValueError, match="57"):
        build_details(str(job), expression=[0.0] * 3, sizes=(256,))


def test_another_age_or_seed_never_overwrites_existing_maps(job, maps):
    neutral, _ = maps
    first = job / neutral["files"]["256"]
    stamp = first.stat().st_mtime_ns
    older = build_details(str(job), expression=[0.0] * 57, sizes=(256,), age=70)
    reseeded = build_details(str(job), expression=[0.0] * 57, sizes=(256,), seed=3)
    assert len({neutral["tag"], older["tag"], reseeded["tag"]}) == 3
    assert first.stat().st_mtime_ns == stamp, "the first request's map is untouched"
    again = build_details(str(job), expression=[0.0] * 57, sizes=(256,))
    assert again["tag"] == neutral["tag"] and first.stat().st_mtime_ns == stamp, "reused, not rewritten"


def test_a_new_photo_of_the_same_name_in_the_same_folder_gets_its_own_maps(tmp_path):
    """Caches are keyed by what they were made from (the photo's content and fit), not by file
    names: reconstructing a different photo saved under the old one's name into the old job
    folder must not reuse the old D(I_x) or the old detail maps."""
    photo, job = tmp_path / "face.jpg", tmp_path / "out"
    opts = {"texture_size": 512, "head_texture_size": 128}
    Image.open(PHOTO).save(photo, quality=95)
    reconstruct(str(photo), str(job), options=opts)
    first = build_details(str(job), expression=[0.0] * 57, age=50.0, sizes=(256,))
    d_first = exr_io.read_map(job / PHOTO_DETAIL_FILE)
    again = build_details(str(job), expression=[0.0] * 57, age=50.0, sizes=(256,))
    assert again["tag"] == first["tag"], "the same inputs reuse their maps"

    Image.open(PHOTO).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo, quality=95)  # another photo
    reconstruct(str(photo), str(job), options=opts)
    second = build_details(str(job), expression=[0.0] * 57, age=50.0, sizes=(256,))
    d_second = exr_io.read_map(job / PHOTO_DETAIL_FILE)
    assert second["tag"] != first["tag"], "a new photo's maps are not the old ones"
    assert np.abs(d_second - d_first).max() > 0.05, "D(I_x) was made again from the new photo"
    stamp = json.loads((job / PHOTO_DETAIL_STAMP).read_text())
    assert stamp == {"source": FaceReconstruction.load(job).source_key(), "method": METHOD_VERSION}
