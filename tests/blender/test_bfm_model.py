"""A Basel Face Model chosen in the preferences: Import Photo builds the BFM mesh, headless renders
it. The BFM file is one in the exact 2009 layout built from the default model's geometry
(backend/bfm_synthetic.py), written by the backend environment."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import BACKEND_PY, PHOTO, REPO, bpy, datablock_counts

SYNTH_VERTICES = 11248  # the default model's face + head-and-neck skin


@pytest.fixture(scope="module")
def bfm_file(tmp_path_factory):
    if not BACKEND_PY.exists():
        pytest.skip(f"backend environment missing ({BACKEND_PY}); run scripts/setup.sh")
    path = tmp_path_factory.mktemp("bfm") / "01_MorphableModel.mat"
    code = ("import sys; from backend.models.loader import load_model; from backend.models.bfm import synthetic as b; "
            "b.write_bfm2009(sys.argv[1], b.make_truth(load_model(), seed=3))")
    r = subprocess.run([str(BACKEND_PY), "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return path


@pytest.fixture()
def bfm_prefs(ext, tmp_path, monkeypatch):
    """The add-on's preferences, as when it is enabled in Blender (the test harness registers the
    package without a preferences entry: one is added for the test and removed after)."""
    monkeypatch.setenv("FACEDET3D_CACHE_DIR", str(tmp_path / "cache"))
    mod = sys.modules[ext.__name__ + ".addon.prefs"]
    entry = None
    if mod.prefs() is None:
        entry = bpy.context.preferences.addons.new()
        entry.module = mod.ADDON_ID
    yield mod.prefs()
    if entry is not None:
        bpy.context.preferences.addons.remove(entry)


def test_import_photo_builds_the_bfm_mesh(empty_scene, bfm_prefs, bfm_file):
    bfm_prefs.face_model = "BFM2009"
    bfm_prefs.bfm2009_file = str(bfm_file)
    bpy.ops.facedet3d.import_photo(filepath=str(PHOTO))
    obj = bpy.context.active_object
    assert obj.facedet3d.model == "bfm2009"
    assert len(obj.data.vertices) == SYNTH_VERTICES
    mats = {m.name.split(".")[0] for m in obj.data.materials if m}
    assert any("skin_face" in m for m in mats) and any("skin_head" in m for m in mats), mats
    uv = np.empty(len(obj.data.loops) * 2, np.float32)
    obj.data.uv_layers.active.data.foreach_get("uv", uv)
    assert 0 <= uv.min() and uv.max() <= 2  # face on tile 0, head and neck on tile 1


def test_a_bfm_choice_without_a_file_is_refused_and_changes_nothing(empty_scene, bfm_prefs):
    bfm_prefs.face_model = "BFM2017"
    bfm_prefs.bfm2017_file = ""
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="no file is set"):
        bpy.ops.facedet3d.import_photo(filepath=str(PHOTO))
    assert datablock_counts() == before


def test_a_foreign_model_file_is_refused_with_its_reason(empty_scene, bfm_prefs, tmp_path):
    bad = tmp_path / "generic_model.mat"
    bad.write_text("not a model\n" * 200)
    bfm_prefs.face_model = "BFM2009"
    bfm_prefs.bfm2009_file = str(bad)
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="not a Basel Face Model|neither a MATLAB"):
        bpy.ops.facedet3d.import_photo(filepath=str(PHOTO))
    assert datablock_counts() == before
    assert not any((tmp_path / "cache").glob("*/face.json")), "no half-made job is left"


def test_headless_renders_a_face_on_the_bfm(tmp_path, bfm_file, ext):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out", str(out),
                        "--model-dir", str(bfm_file), "--render", "--samples", "4", "--resolution", "128",
                        "--texture-size", "512", "--details", "--detail-size", "256", "--detail-model", "physical"],
                       cwd=REPO, capture_output=True, text=True, timeout=900,
                       env={**__import__("os").environ, "FACEDET3D_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    img = bpy.data.images.load(str(out / "astronaut_render.png"))
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    rgb = px.reshape(img.size[1], img.size[0], 4)[::-1, :, :3]
    face = rgb[30:70, 50:80]  # the face's box at 128 px
    assert face.std() > 0.03 and face.mean() > 0.1, "the face is rendered, lit and textured"
    assert np.abs(face.mean((0, 1)) - rgb[100:, :].mean((0, 1))).max() > 0.02, "the face differs from below it"


def test_headless_names_a_missing_bfm_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out",
                        str(tmp_path / "o"), "--model-dir", str(tmp_path / "model2017-1_bfm_nomouth.h5")],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "Basel Face Model file" in r.stderr and "does not exist" in r.stderr, r.stderr[-1000:]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
