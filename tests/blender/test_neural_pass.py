"""The neural pass in Blender: Cycles' raster render agrees with the backend's own rasters of the same
view (so a renderer trained on the backend's views sees the same inputs in a scene); the operator
trains (briefly, here), writes the frame's neural image and composites it over the face only; the
headless animation re-composites from its files in a plain Blender without the add-on; a scene
with its own compositor is refused, unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PHOTO, REPO, backend_run, bpy, datablock_counts

SIZE = 96


@pytest.fixture()
def face(empty_scene, job_dir, ext, tmp_path):
    job = tmp_path / "job"
    shutil.copytree(job_dir, job)  # its own copy: the backend writes the renderer into it
    obj = ext.addon.scene.builder.build_face(bpy.context, job, name="Neural").obj
    bpy.context.view_layer.objects.active = obj
    sc = bpy.context.scene
    sc.render.resolution_x = sc.render.resolution_y = SIZE  # the photo is square: the same view, smaller
    sc.render.resolution_percentage = 100
    sc.cycles.samples = 4
    return obj


def _pixels(path: Path) -> np.ndarray:
    img = bpy.data.images.load(str(path))
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    out = px.reshape(img.size[1], img.size[0], 4)[::-1]  # row 0 at the top
    bpy.data.images.remove(img)
    return out


COMPARE = """
import json, sys, numpy as np
from backend.detail.face import ReconstructedFace
from backend.learned.neural import rasters as R
job, exr, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
f = ReconstructedFace.open(job)
v = f.model.shape(f.identity, np.asarray(f.rec.fit.expression))
fade = R.face_fade(f.model, v)
b = R.from_blender_exr(exr, fade)
m = R.from_model(f.model, v, f.rec.fit.camera, fade, size=(size, size))
from scipy import ndimage
m.face = m.face * ndimage.binary_erosion(m.face > 0, np.ones((3, 3), bool))  # Blender's side leaves the border out
both = (b.face > 0.5) & (m.face > 0.5)
duv = np.linalg.norm(b.uv[both] - m.uv[both], axis=1)
ang = np.degrees(np.arccos(np.clip((b.normal[both] * m.normal[both]).sum(1), -1, 1)))
print(json.dumps({"both": int(both.sum()), "blender": int((b.face > 0.5).sum()), "backend": int((m.face > 0.5).sum()),
                  "uv_median": float(np.median(duv)), "normal_median_deg": float(np.median(ang)),
                  "detail_vs_proxy_deg": float(np.median(np.degrees(np.arccos(np.clip(
                      (b.detail_normal[both] * b.normal[both]).sum(1), -1, 1)))))}))
"""


def test_blender_rasters_match_the_backends_own(face, tmp_path, ext):
    npass = ext.addon.scene.neural_pass
    before = {s.name for s in bpy.data.scenes}
    exr = npass.render_rasters(bpy.context, face, 1, tmp_path / "r.exr")
    assert {s.name for s in bpy.data.scenes} == before, "the raster scene is removed"
    job = Path(bpy.path.abspath(face.facedet3d.job_dir))
    st = json.loads(backend_run(COMPARE, str(job), str(exr), str(SIZE)).strip().splitlines()[-1])
    print(st)
    # the same face pixels: nearly every one of Blender's is the backend's too (measured 0.99), and
    # Blender's cover most of the backend's (0.91: at 96 px the border and the lashes' edge cost more)
    assert st["both"] > 0.95 * st["blender"] and st["blender"] > 0.85 * st["backend"], st
    # at 96 px one pixel spans ~4 % of the face tile: half a pixel's shift either way measured 0.014-0.027
    # (median), the true alignment 0.003; normals within a few degrees (measured 1.0)
    assert st["uv_median"] < 0.006, st
    assert st["normal_median_deg"] < 3.0, st


def test_neural_pass_operator_composites_over_the_face_only(face, tmp_path, ext):
    sc = bpy.context.scene
    sc.render.filepath = str(tmp_path / "plain.png")
    bpy.ops.render.render(write_still=True)
    plain = _pixels(tmp_path / "plain.png")
    assert bpy.ops.facedet3d.neural_pass(steps=5) == {"FINISHED"}
    job = Path(bpy.path.abspath(face.facedet3d.job_dir))
    img = job / "neural" / "frames" / f"neural_{sc.frame_current:04d}.png"
    assert img.is_file() and face.facedet3d.neural
    assert not list((job / "neural").glob("rasters_*.exr")), "the rasters are not kept"
    assert sc.compositing_node_group.name.startswith("FaceDet3D Neural Composite") and sc.render.use_compositing
    rgba = _pixels(img)
    face_px = rgba[..., 3] > 0.99
    assert 0.02 < face_px.mean() < 0.5, "the face tile (4 % of the photo's frame), not the frame"
    sc.render.filepath = str(tmp_path / "neural.png")
    bpy.ops.render.render(write_still=True)
    comp = _pixels(tmp_path / "neural.png")
    outside = rgba[..., 3] == 0
    assert np.abs(comp - plain)[outside][..., :3].max() < 0.2, "outside the face: the Cycles render (noise only)"
    assert np.abs(comp[..., :3] - rgba[..., :3])[face_px].mean() < 0.02, "on the face: the neural image"
    assert bpy.ops.facedet3d.plain_render() == {"FINISHED"}
    assert not sc.render.use_compositing and not face.facedet3d.neural


def test_a_scene_with_its_own_compositor_is_refused_unchanged(face):
    ng = bpy.data.node_groups.new("Mine", "CompositorNodeTree")
    bpy.context.scene.compositing_node_group = ng
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="own node group 'Mine'"):
        bpy.ops.facedet3d.neural_pass(steps=1)
    assert datablock_counts() == before and bpy.context.scene.compositing_node_group == ng


def test_headless_neural_animation_recomposites_without_the_addon(tmp_path):
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "animate", "--image", str(PHOTO), "--out", str(out),
                        "--keys", "1:neutral;3:happy", "--photo-lighting", "--neural", "--neural-steps", "5",
                        "--samples", "2", "--resolution", "64", "--texture-size", "512"],
                       cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    frames = out / "astronaut_job" / "neural" / "frames"
    assert sorted(p.name for p in frames.iterdir()) == [f"neural_{f:04d}.png" for f in (1, 2, 3)]
    a1, a3 = _pixels(frames / "neural_0001.png"), _pixels(frames / "neural_0003.png")
    assert np.abs(a1 - a3)[..., :3].max() > 0.05, "the smile changes the neural image"
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("astronaut_frames"))
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "blend_frames.py"), str(moved / "astronaut.blend"),
                        str(tmp_path / "stock"), "--frames", "1,3", "--render-as-is"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and '"addon_registered": false' in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    for f in (1, 3):
        a = _pixels(tmp_path / "stock" / f"frame_{f}.png")
        b = _pixels(out / "astronaut_frames" / f"frame_{f:04d}.png")
        assert np.abs(a - b).max() <= 2.0 / 255, f"frame {f} re-composites the same without the add-on"


def test_a_scene_without_a_camera_is_refused_unchanged(face):
    sc = bpy.context.scene
    cam = sc.camera
    sc.camera = None
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="no camera"):
        bpy.ops.facedet3d.neural_pass(steps=1)
    assert datablock_counts() == before and sc.compositing_node_group is None and not face.facedet3d.neural
    sc.camera = cam
