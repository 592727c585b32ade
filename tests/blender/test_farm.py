"""Farm jobs: the Open Job Description template run here with `openjd run` (its frame range as two
chunk tasks, as two workers would take them) renders the same frames as the one-process
`animate`; and the .blend renders those frames in a plain Blender with its own settings, as a stock
job (Flamenco's Simple Blender Render) runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PHOTO, REPO, bpy

OPENJD = Path(sys.executable).parent / "openjd"
TEMPLATE = REPO / "scripts" / "farm" / "animation" / "template.yaml"
WRAPPER = REPO / "scripts" / "farm" / "facedet3d"
KEYS = "1:neutral;3:surprise;5:happy"
SMALL = ["--samples", "2", "--resolution", "64"]


def _pixels(path: Path) -> np.ndarray:
    img = bpy.data.images.load(str(path))
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    return px


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    if not OPENJD.is_file():
        pytest.skip(f"{OPENJD} missing; run scripts/setup.sh (openjd-cli is in requirements/blender.txt)")
    root = tmp_path_factory.mktemp("farm")
    env = dict(os.environ)
    r = subprocess.run([str(OPENJD), "check", str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(OPENJD), "run", str(TEMPLATE), "--step", "Encode", "--run-dependencies",
                        "-p", f"FaceDet3D={WRAPPER}", "-p", f"Photo={PHOTO}", "-p", f"OutDir={root / 'job'}",
                        "-p", "Name=face", "-p", f"Keys={KEYS}", "-p", "Frames=1-5", "-p", "FramesPerTask=3",
                        "-p", "Samples=2", "-p", "Resolution=64", "-p", "WrinkleSize=512"],
                       capture_output=True, text=True, timeout=1200, env=env)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    one = subprocess.run([str(WRAPPER), "animate", "--image", str(PHOTO), "--out", str(root / "one"), "--name", "face",
                          "--keys", KEYS, "--wrinkles", "--wrinkle-aus", "animated", "--wrinkle-size", "512", *SMALL],
                         capture_output=True, text=True, timeout=900, env=env)
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-3000:]
    return root, r.stdout


def test_openjd_job_renders_in_two_chunks_the_frames_animate_renders(farm):
    root, log = farm
    chunks = re.findall(r"Frame\(CHUNK\[INT\]\) = (\S+)", log)
    assert chunks == ["1-3", "4-5"], chunks
    names = [f"frame_{i:04d}.png" for i in range(1, 6)]
    assert sorted(p.name for p in (root / "job" / "face_frames").iterdir()) == names
    for n in names:
        a, b = _pixels(root / "job" / "face_frames" / n), _pixels(root / "one" / "face_frames" / n)
        assert np.abs(a - b).max() <= 1.0 / 255, n
    clip = bpy.data.movieclips.load(str(root / "job" / "face.mp4"))
    assert clip.frame_duration == 5 and tuple(clip.size) == (64, 64)


def test_the_blend_renders_as_a_stock_farm_job_renders_it(farm, tmp_path):
    """Flamenco's stock job runs `blender -b FILE --render-output X --render-frame A..B`: the file's
    own settings, no add-on, nothing outside its folder."""
    root, _ = farm
    blend = root / "job" / "face.blend"
    moved = tmp_path / "elsewhere"  # as a farm's storage copies it (relative paths only)
    shutil.copytree(root / "job", moved, ignore=shutil.ignore_patterns("face_frames", "*.mp4"))
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "blend_frames.py"), str(moved / blend.name),
                        str(tmp_path / "stock"), "--frames", "1,3,5", "--render-as-is"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert '"addon_registered": false' in r.stdout and '"broken_drivers": []' in r.stdout, r.stdout[-1500:]
    for f in (1, 3, 5):
        a = _pixels(tmp_path / "stock" / f"frame_{f}.png")
        b = _pixels(root / "one" / "face_frames" / f"frame_{f:04d}.png")
        assert np.abs(a - b).max() <= 1.0 / 255, f


def test_render_and_encode_refuse_what_they_cannot_do(farm, tmp_path):
    root, _ = farm
    r = subprocess.run([str(WRAPPER), "render", "--blend", str(root / "job" / "face.blend"), "--frames", "5-1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "not a range of frames" in r.stderr, r.stderr[-1000:]
    empty = tmp_path / "copy"
    shutil.copytree(root / "job", empty, ignore=shutil.ignore_patterns("face_frames", "*.mp4"))
    r = subprocess.run([str(WRAPPER), "encode", "--blend", str(empty / "face.blend"), "--out", str(empty / "v.mp4")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "5 of 5 frames are not rendered yet" in r.stderr, r.stderr[-1000:]
    assert not (empty / "v.mp4").exists()
