"""Animate from Video, through the real operator and the headless `capture` command, on a clip of
the bundled photo panning across the frame (the backend tracks it; its curves are tested on
synthetic clips with known AU curves in tests/backend/test_capture.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import PHOTO, REPO, backend_run, bpy, datablock_counts

CLIP = """
import sys, numpy as np, av
from PIL import Image
img = Image.open(sys.argv[1]).convert("RGB")
c = av.open(sys.argv[2], "w")
s = c.add_stream("mpeg4", rate=12)
s.width, s.height, s.pix_fmt, s.bit_rate = 512, 512, "yuv420p", 4_000_000
for i in range(12):
    fr = np.asarray(img.transform(img.size, Image.Transform.AFFINE, (1, 0, 2 * i - 12, 0, 1, 0)))
    for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(fr), format="rgb24")):
        c.mux(p)
for p in s.encode():
    c.mux(p)
c.close()
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "pan.mp4"
    backend_run(CLIP, str(PHOTO), str(path))
    return path


@pytest.fixture()
def face(animatable_face):
    return animatable_face


def test_animate_from_video_keys_the_controls(face, clip, ext):
    bpy.context.scene.frame_set(1)
    assert bpy.ops.facedet3d.animate_from_video(filepath=str(clip)) == {"FINISHED"}
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 23)  # 12 frames at 12 fps on a 24 fps scene
    fcurves = ext.addon.scene.wrinkle_mix._au_fcurves(face)
    scene.frame_set(12)
    # the photo smiles: its smile reads through the whole clip (the photo's own AU12 ~0.8)
    assert face["AU12L"] > 0.4 and face["AU12R"] > 0.4
    assert face["AU27"] < 0.3
    keys = fcurves["AU12L"].keyframe_points  # reduced keys, straight lines between them
    assert 2 <= len(keys) <= 12 and all(k.interpolation == "LINEAR" for k in keys)
    assert keys[0].co[0] == 1.0 and keys[-1].co[0] == pytest.approx(23.0, abs=0.01)


def test_a_file_that_is_not_a_video_changes_nothing(face, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="not a video FFmpeg can read"):
        bpy.ops.facedet3d.animate_from_video(filepath=str(bad))
    assert datablock_counts() == before
    assert face.animation_data is None or face.animation_data.action is None


def test_headless_capture_builds_an_animated_blend(clip, tmp_path):
    out = tmp_path / "cap"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "capture", "--image", str(PHOTO), "--video", str(clip),
                        "--out", str(out), "--no-render", "--resolution", "128", "--texture-size", "512"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "capture: 12 frames (12 with a face)" in r.stdout
    bpy.ops.wm.open_mainfile(filepath=str(out / "astronaut.blend"))
    scene = bpy.context.scene
    assert scene.render.fps == 12 and (scene.frame_start, scene.frame_end) == (1, 12)
    obj = next(o for o in bpy.data.objects if o.type == "MESH")
    assert obj.animation_data.action is not None
    scene.frame_set(6)
    assert obj["AU12L"] > 0.4
    assert (out / "astronaut_job" / "capture_pan.json").is_file()


def test_headless_capture_refuses_a_missing_clip_before_any_work(tmp_path):
    r = subprocess.run([sys.executable, "-m", "facedet3d", "capture", "--image", str(PHOTO), "--video",
                        str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--video" in r.stderr and "no such file" in r.stderr
    assert not (tmp_path / "o").exists()


SYNTH = """
import sys
from pathlib import Path
from PIL import Image
from backend.capture import synthetic
from backend.models.loader import load_model
from backend.reconstruct.pipeline import reconstruct
m = load_model()
out = Path(sys.argv[1])
Image.fromarray(synthetic.neutral_frame(m)).save(out / "face.png")
reconstruct(str(out / "face.png"), str(out / "job"), options={"texture_size": 256, "head_texture_size": 128})
synthetic.write_clip(out / "turn.mp4", synthetic.frames(m))
"""


def test_head_rotation_follows_the_clip(ext, empty_scene, tmp_path):
    """The synthetic clip turns the head +-10 deg about its vertical axis (backend.capture.synthetic):
    keyed, the face's forward axis turns the same way in Blender's world."""
    import math

    import numpy as np

    backend_run(SYNTH, str(tmp_path))
    obj = ext.addon.scene.builder.build_face(bpy.context, tmp_path / "job", name="Turn").obj
    bpy.context.view_layer.objects.active = obj
    bpy.context.scene.render.fps = 24
    base = np.array(obj.matrix_world.to_3x3())
    assert bpy.ops.facedet3d.animate_from_video(filepath=str(tmp_path / "turn.mp4"), head_rotation=True) == {"FINISHED"}
    for frame, yaw in ((1, 0.0), (13, 10.0), (37, -10.0)):  # 0, 0.5 and 1.5 s: yaw 10 sin(pi t)
        bpy.context.scene.frame_set(frame)
        rot = np.array(obj.matrix_world.to_3x3())
        forward = rot @ np.linalg.inv(base) @ np.array([0.0, -1.0, 0.0])  # the face looks down -Y at rest
        got = math.degrees(math.atan2(forward[0], -forward[1]))
        assert abs(got - yaw) < 3.0, (frame, got, yaw)
