"""The headless CLI on the bpy module: photo -> .blend + Cycles PNG, paths that travel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PHOTO, REPO, bpy


def test_cli_reconstructs_and_renders_from_a_path_with_spaces_and_non_ascii(tmp_path, ext):
    src = tmp_path / "photos of ü and 名字" / "astronaut portrait é.jpg"
    src.parent.mkdir()
    shutil.copy(PHOTO, src)
    out = tmp_path / "out dir ñ"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(src), "--out", str(out),
                        "--render", "--samples", "4", "--resolution", "96", "--texture-size", "512",
                        "--details", "--detail-size", "256"],
                       cwd=REPO, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    blend = out / "astronaut_portrait_é.blend"
    png = out / "astronaut_portrait_é_render.png"
    assert blend.is_file() and png.is_file(), list(out.iterdir())

    # Move the whole folder: the .blend still finds its textures (relative paths).
    moved = tmp_path / "elsewhere"
    shutil.move(str(out), str(moved))
    bpy.ops.wm.open_mainfile(filepath=str(moved / blend.name))
    imgs = [i for i in bpy.data.images if i.filepath]
    assert imgs
    for img in imgs:
        assert img.filepath.startswith("//")
        assert os.path.isfile(bpy.path.abspath(img.filepath)), img.filepath
    face = next(o for o in bpy.data.objects if o.type == "MESH")
    assert face.modifiers.get("FaceDet3D Detail") is not None, "--details attached the maps"
    assert face.facedet3d.detail_tag
    # auto: the installed model of highest priority — the physical model, ahead of DetH v2 (model card)
    assert face.facedet3d.detail_model == "physical"
    render = bpy.data.images.load(str(moved / png.name))
    assert tuple(render.size) == (96, 96)
    px = np.empty(96 * 96 * 4, np.float32)
    render.pixels.foreach_get(px)
    assert px.reshape(-1, 4)[:, :3].std() > 0.05, "the render is not blank"


def test_cli_bad_input_exits_nonzero_with_a_message(tmp_path):
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(tmp_path / "none.jpg"),
                        "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "No photo" in r.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.fixture(scope="module")
def animated(tmp_path_factory):
    """One headless animation with wrinkles, a video and glTF: keys at frames 1 and 5."""
    out = tmp_path_factory.mktemp("animate") / "anim"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "animate", "--image", str(PHOTO), "--out", str(out),
                        "--key", "1:neutral", "--key", "5:AU1=1,AU2=1,AU27=0.6", "--samples", "2",
                        "--resolution", "128", "--texture-size", "512", "--video", "--wrinkles",
                        "--wrinkle-aus", "animated", "--wrinkle-size", "512", "--detail-size", "1024", "--gltf",
                        "--detail-model", "physical"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out


def test_cli_animates_keys_into_frames_and_a_video(animated, ext):
    out = animated
    frames = sorted((out / "astronaut_frames").glob("frame_*.png"))
    assert [f.name for f in frames] == [f"frame_{i:04d}.png" for i in range(1, 6)]

    def pixels(path):
        img = bpy.data.images.load(str(path))
        px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
        img.pixels.foreach_get(px)
        return px.reshape(img.size[1], img.size[0], 4)[::-1, :, :3]

    first, last = pixels(frames[0]), pixels(frames[-1])
    face = np.abs(last - first)[20:45, 40:72]  # the face's box at 128 px (photo box x 175-265, y 76-166)
    assert face.mean() > 3 * np.abs(last - first)[100:, :].mean() + 1e-3, "the keyed AUs move the face"
    clip = bpy.data.movieclips.load(str(out / "astronaut.mp4"))
    assert clip.frame_duration == 5 and tuple(clip.size) == (128, 128)
    bpy.ops.wm.open_mainfile(filepath=str(out / "astronaut.blend"))
    face_obj = next(o for o in bpy.data.objects if o.type == "MESH")
    assert face_obj.animation_data.action is not None, "the keys are saved in the .blend"
    fd = face_obj.facedet3d
    assert fd.wrinkle_rig and [k.frame for k in fd.wrinkle_keys] == [1, 5], "wrinkles follow the keys"
    assert face_obj.modifiers.get("FaceDet3D Wrinkles") is not None
    side = json.loads((out / "astronaut_maps" / "facedet3d_maps.json").read_text())
    assert (out / "astronaut.glb").is_file() and len(side["keys"]) == 2
    # AU27 (the jaw drop) makes no crease of its own (no FACS line family): its map is skipped
    assert sorted(c for p in side["packs"] for c in p["channels"]) == ["AU1L", "AU1R", "AU2L", "AU2R"]


def _blend_frames(blend, out, *extra):
    """scripts/blend_frames.py in a fresh bpy process: frames 1, 3, 5 evaluated and rendered."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "blend_frames.py"), str(blend), str(out),
                        "--frames", "1,3,5", "--render", "64", *extra],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def test_animated_blend_plays_and_renders_the_same_without_the_addon(animated, tmp_path):
    """A render-farm worker or a colleague opens the .blend in a Blender without FaceDet3D: every
    driver evaluates, the face moves as keyed, frames render the same pixels as with the add-on."""
    plain = _blend_frames(animated / "astronaut.blend", tmp_path / "plain")
    addon = _blend_frames(animated / "astronaut.blend", tmp_path / "addon", "--with-addon")
    assert not plain["addon_registered"] and addon["addon_registered"]
    assert plain["broken_drivers"] == [] == addon["broken_drivers"]

    def png(folder, f):
        img = bpy.data.images.load(str(tmp_path / folder / f"frame_{f}.png"))
        px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
        img.pixels.foreach_get(px)
        bpy.data.images.remove(img)
        return px

    for f in (1, 3, 5):
        v_plain, v_addon = (np.load(tmp_path / d / f"vertices_{f}.npy") for d in ("plain", "addon"))
        assert np.array_equal(v_plain, v_addon), f"frame {f}: the same evaluated face"
        assert np.abs(png("plain", f) - png("addon", f)).max() <= 1.0 / 255, f"frame {f}: the same pixels"
    moved = np.linalg.norm(np.load(tmp_path / "plain" / "vertices_5.npy") - np.load(tmp_path / "plain" / "vertices_1.npy"),
                           axis=1)
    assert moved.max() > 0.005, "without the add-on the face still moves (brows and jaw, millimetres)"
    assert np.abs(png("plain", 5) - png("plain", 1)).max() > 0.1


def test_cli_bad_animation_key_fails_before_any_work(tmp_path):
    r = subprocess.run([sys.executable, "-m", "facedet3d", "animate", "--image", str(PHOTO),
                        "--out", str(tmp_path / "o"), "--key", "12:grin"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "FRAME:PRESET" not in r.stderr and "grin" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_unknown_detail_model_is_refused_before_any_work_naming_the_backends_models(tmp_path):
    """The choices come from the backend's registry (its health answer), not a list in the add-on."""
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out",
                        str(tmp_path / "o"), "--details", "--detail-model", "neural"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "no detail model 'neural'" in r.stderr and "auto, physical, deth" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_portrait_view_with_an_expression_and_its_wrinkles(tmp_path, ext):
    """--view portrait: the three-quarter camera and raking light of scene.json; --expression: the
    face shows the preset and the detail maps are made for it, not for the photo's smile."""
    out = tmp_path / "p"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out", str(out),
                        "--render", "--samples", "2", "--resolution", "96", "--texture-size", "512",
                        "--view", "portrait", "--expression", "surprise", "--details", "--detail-size", "256",
                        "--detail-model", "physical"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    bpy.ops.wm.open_mainfile(filepath=str(out / "astronaut.blend"))
    scene = bpy.context.scene
    desc = json.loads((out / "astronaut_job" / "scene.json").read_text())
    assert (scene.render.resolution_x, scene.render.resolution_y) == (77, 96)
    cam = scene.camera
    assert cam.data.lens == desc["portrait"]["camera"]["lens_mm"]
    assert np.allclose(np.array(cam.matrix_world), desc["portrait"]["camera"]["matrix_world"], atol=1e-5)
    light = next(o for o in bpy.data.objects if o.type == "LIGHT")
    assert np.allclose(np.array(light.matrix_world), desc["portrait"]["light"]["matrix_world"], atol=1e-5)
    face = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
    controls = {a.name: face[a.name] for a in face.facedet3d.aus}
    for key, value in desc["presets"]["surprise"].items():
        assert abs(controls[key] - value) < 1e-6, key
    side = json.loads((out / "astronaut_job" / f"detail_{face.facedet3d.detail_tag}.json").read_text())
    assert side["aus"].get("AU1", 0) > 0.9 and side["aus"].get("AU2", 0) > 0.9, side["aus"]
    assert side["aus"].get("AU12", 0) == 0, "made for the preset, not the photo's smile"
    ev = face.evaluated_get(bpy.context.evaluated_depsgraph_get())
    shown = [k.value for k in ev.data.shape_keys.key_blocks[1:]]
    assert np.allclose(shown, side["expression"], atol=1e-4), "the maps are for the expression shown"
    assert (out / "astronaut_render.png").is_file()


def test_cli_expression_naming_an_au_the_rig_lacks_writes_nothing(tmp_path):
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out", str(out),
                        "--texture-size", "512", "--expression", "AU1=1,AU99=0.5"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-3000:]
    assert "--expression: this face has no control AU99" in r.stderr
    assert not out.exists(), "no job folder, no .blend"


def _tree(folder):
    """Every file under ``folder`` (hidden ones too) with its bytes' digest."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_rerun_leaves_the_earlier_results_exactly_as_they_were(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out", str(out),
                        "--texture-size", "512"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    before = _tree(out)
    assert "astronaut.blend" in before and "astronaut_job/face.json" in before
    # a photo with no face, under the earlier photo's name, into the same folder
    other = tmp_path / "new" / "astronaut.jpg"
    other.parent.mkdir()
    bpy.data.images.new("grey", 400, 300).save(filepath=str(other.with_suffix(".png")))
    other.with_suffix(".png").rename(other)
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(other), "--out", str(out),
                        "--texture-size", "512"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "No face found" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert _tree(out) == before, "the earlier .blend, job folder and nothing else"
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.blend", "astronaut_job"], "no staging folder left"


@pytest.mark.parametrize("case", ["out_is_a_file", "out_cannot_be_made", "two_keys_at_a_frame",
                                  "two_presets_at_a_frame", "negative_frame", "unknown_au", "bad_face", "bad_name", "bad_detail_size",
                                  "curves_and_keys", "curves_not_the_layout"])
def test_bad_arguments_are_refused_with_a_message_before_any_work(case, tmp_path):
    out = tmp_path / "o"
    keys = ["--key", "1:neutral", "--key", "5:happy"]
    if case == "out_is_a_file":
        out.write_text("my notes")
        words = "is a file"
    elif case == "out_cannot_be_made":
        out = Path("/proc/facedet3d-test/o")  # not creatable, even by root
        words = "cannot write into the output folder"
    elif case == "two_keys_at_a_frame":
        keys, words = ["--key", "5:happy", "--key", "5:AU1=1"], "both at frame 5"
    elif case == "two_presets_at_a_frame":
        keys, words = ["--key", "5:happy", "--key", "5:sad"], "both at frame 5"
    elif case == "negative_frame":
        keys, words = ["--key", "-3:happy", "--key", "5:sad"], "frame -3 is outside"
    elif case == "unknown_au":
        keys, words = ["--key", "1:happy", "--key", "5:AU999=1"], "no control AU999"
    elif case == "bad_face":
        keys, words = keys + ["--face", "left"], "give a face number"
    elif case == "bad_name":
        keys, words = keys + ["--name", "my face"], "--name 'my face': use letters, digits"
    elif case == "curves_and_keys":
        (tmp_path / "take.csv").write_text("frame, timestamp, confidence, success, AU12_r\n1,0,0.9,1,2\n")
        keys, words = keys + ["--curves", str(tmp_path / "take.csv")], "not both"
    elif case == "curves_not_the_layout":
        (tmp_path / "take.csv").write_text("frame, confidence, success, AU12_r\n1,0.9,1,2\n")
        keys, words = ["--curves", str(tmp_path / "take.csv")], "no column timestamp"
    else:
        keys, words = keys + ["--wrinkles", "--detail-size", "3000"], "--detail-size 3000: use one of"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "animate", "--image", str(PHOTO), "--out", str(out),
                        *keys], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    if case == "out_is_a_file":
        assert out.read_text() == "my notes"
    else:
        assert not out.exists(), "nothing made"
