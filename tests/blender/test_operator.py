"""Import Photo through the real operator (blocking in background mode, as in `blender -b`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import PHOTO, bpy, datablock_counts


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FACEDET3D_CACHE_DIR", str(d))
    return d


def _import(path) -> None:
    bpy.ops.facedet3d.import_photo(filepath=str(path))


@pytest.mark.parametrize("case", ["missing", "wrong_type", "not_an_image", "truncated", "no_face"])
def test_bad_input_reports_and_leaves_scene_unchanged(case, empty_scene, cache, tmp_path):
    if case == "missing":
        path, expect = tmp_path / "nope.jpg", "No photo"
    elif case == "wrong_type":
        path, expect = tmp_path / "face.txt", "not a supported photo type"
        path.write_text("hello")
    elif case == "not_an_image":
        path, expect = tmp_path / "fake.jpg", "not an image"
        path.write_text("this is text, not a JPEG")
    elif case == "truncated":
        path, expect = tmp_path / "cut.jpg", "truncated"
        path.write_bytes(PHOTO.read_bytes()[:20000])
    else:
        path, expect = tmp_path / "grey.png", "No face"
        img = bpy.data.images.new("flat", 320, 240)
        img.pixels.foreach_set(np.full(320 * 240 * 4, 0.5, np.float32))
        img.filepath_raw = str(path)
        img.file_format = "PNG"
        img.save()
        bpy.data.images.remove(img)
    before = datablock_counts()
    with pytest.raises(RuntimeError, match=expect):
        _import(path)
    assert datablock_counts() == before
    assert not any(cache.glob("*/face.json")), "no half-made job is left"


def test_missing_model_folder(empty_scene, cache, monkeypatch, tmp_path):
    monkeypatch.setenv("FACEDET3D_MODEL_DIR", str(tmp_path / "no_model_here"))
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="model folder"):
        _import(PHOTO)
    assert datablock_counts() == before


def test_import_then_save_moves_files_beside_the_blend(empty_scene, cache, tmp_path):
    _import(PHOTO)
    obj = bpy.context.active_object
    assert obj is not None and obj.facedet3d.job_dir
    assert len(obj.data.vertices) == 26719
    assert bpy.context.scene.camera is not None
    job = Path(obj.facedet3d.job_dir)
    assert job.is_relative_to(cache) and (job / "face.json").is_file()

    user_png = tmp_path / "elsewhere" / "reference.png"
    user_png.parent.mkdir()
    user_img = bpy.data.images.new("reference", 8, 8)
    user_img.filepath_raw = str(user_png)
    user_img.file_format = "PNG"
    user_img.save()
    user_img.use_fake_user = True

    blend = tmp_path / "project" / "scene.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), relative_remap=False)
    assert bpy.data.images["reference"].filepath == str(user_png), "the user's own image is left alone"
    assert obj.facedet3d.job_dir.startswith("//"), obj.facedet3d.job_dir
    moved = Path(bpy.path.abspath(obj.facedet3d.job_dir))
    assert moved.parent == blend.parent / "scene_facedet3d" and (moved / "face.json").is_file()
    assert not job.exists(), "the cache copy is moved, not left behind"
    for img in bpy.data.images:
        if img.filepath and img.name != "reference":
            assert img.filepath.startswith("//"), img.filepath
            assert os.path.isfile(bpy.path.abspath(img.filepath))

    # The saved file reopens with every image found.
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    imgs = [i for i in bpy.data.images if i.filepath]
    assert imgs and all(i.size[0] > 0 for i in imgs), "size loads the pixels: 0 means not found"


def test_detail_model_menus_are_the_backends_registry(ext, monkeypatch):
    """The operators' Model menu lists what the backend's health answer lists (a plugin model
    included), marks an unavailable one, and is "auto" alone when no backend answers."""
    session = ext.addon.link.session
    items = ext.addon.operators.backend_job.detail_model_items
    session.shutdown()
    health = {"ok": True, "pid": 1, "protocol": 2, "python": "3.11.0", "executable": "x", "backend": "0.1.0",
              "torch": None, "cuda": False, "cuda_device": None, "uptime_s": 0.0, "jobs_running": 0, "jobs_queued": 0,
              "auto_detail_model": "physical",
              "detail_models": [{"name": "auto", "label": "Auto", "description": "best", "available": True},
                                {"name": "physical", "label": "Physical", "description": "sim", "available": True},
                                {"name": "toy", "label": "Toy", "description": "a plugin", "available": False,
                                 "reason": "weights missing"}]}
    try:
        session.remember_health(health)
        got = items(None, bpy.context)
        assert [i[0] for i in got] == ["auto", "physical", "toy"]
        assert "unavailable" in got[2][1] and "weights missing" in got[2][2]
        session.shutdown()  # forgets the answer; a backend that cannot start offers auto alone
        monkeypatch.setenv("FACEDET3D_BACKEND_PYTHON", "/nonexistent/python")
        assert [i[0] for i in items(None, bpy.context)] == ["auto"]
    finally:
        session.shutdown()


def test_model_folder_check_knows_both_layouts_of_the_default_model(ext, tmp_path):
    """The archive's folder, the release's FaceXModel folder, or a checkout of the release
    repository pass; a folder with neither is refused with what to point at."""
    import shutil

    jobs = ext.addon.link.jobs
    model = Path(os.environ.get("FACEDET3D_MODEL_DIR") or Path(__file__).resolve().parents[3] / "shared" / "models"
                 / "ict-facekit")
    jobs.check_inputs(str(PHOTO), str(model))
    checkout = tmp_path / "ICT-FaceKit"
    (checkout / "FaceXModel").mkdir(parents=True)
    shutil.copy(model / "generic_neutral_mesh.obj", checkout / "FaceXModel")
    jobs.check_inputs(str(PHOTO), str(checkout))
    jobs.check_inputs(str(PHOTO), str(checkout / "FaceXModel"))
    with pytest.raises(jobs.InputError, match="holds neither ICT-FaceKit Light's ict_facekit_light.npz nor its release"):
        jobs.check_inputs(str(PHOTO), str(tmp_path))


def test_get_default_model_downloads_checks_and_refuses_a_changed_file(ext, tmp_path, monkeypatch):
    """The preferences' button, through the real backend: files from a stand-in for the remote
    (a local mirror, $FACEDET3D_MODEL_SOURCE) checked against a pinned manifest; a changed file
    fails with what to download, and nothing is left where the model would go."""
    import hashlib
    import json

    model = Path(os.environ.get("FACEDET3D_MODEL_DIR") or Path(__file__).resolve().parents[3] / "shared" / "models"
                 / "ict-facekit")
    mirror = tmp_path / "mirror"
    (mirror / "FaceXModel").mkdir(parents=True)
    for rel in ("LICENSE", "FaceXModel/generic_neutral_mesh.obj"):
        (mirror / rel).write_bytes((model / Path(rel).name).read_bytes())
    files = {rel: {"sha256": hashlib.sha256((mirror / rel).read_bytes()).hexdigest(),
                   "bytes": (mirror / rel).stat().st_size} for rel in ("LICENSE", "FaceXModel/generic_neutral_mesh.obj")}
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"repository": "ICT-VGL/ICT-FaceKit", "commit": "0" * 40, "files": files}))
    monkeypatch.setenv("FACEDET3D_MODEL_MANIFEST", str(manifest))
    monkeypatch.setenv("FACEDET3D_MODEL_SOURCE", str(mirror))
    users = tmp_path / "user"
    monkeypatch.setattr(ext.addon.link.session, "user_folder", lambda name: users / name)
    ext.addon.link.session.shutdown()  # the backend starts again with this environment
    try:
        assert bpy.ops.facedet3d.get_default_model() == {"FINISHED"}
        dest = users / "models" / "ict-facekit"
        assert (dest / "FaceXModel" / "generic_neutral_mesh.obj").read_bytes() == (model / "generic_neutral_mesh.obj"
                                                                                   ).read_bytes()
        assert ext.protocol.models.ict_layout(dest)[0] == "release"
        with pytest.raises(RuntimeError, match="already holds a model"):
            bpy.ops.facedet3d.get_default_model()
        shutil.rmtree(dest)
        lic = (mirror / "LICENSE").read_bytes()
        (mirror / "LICENSE").write_bytes(b"X" + lic[1:])  # same size, other bytes: not the pinned file
        with pytest.raises(RuntimeError, match="LICENSE from .* is not the pinned release's file"):
            bpy.ops.facedet3d.get_default_model()
        assert not dest.exists()
    finally:
        ext.addon.link.session.shutdown()
