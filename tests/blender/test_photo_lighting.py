"""Photo Lighting on a built face, through the real operator and backend: the skin takes the
albedo tiles, the scene a world from the photo's SH lighting, the key light leaves renders; Studio
Lighting puts everything back; a face whose files are gone is refused with the scene unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import bpy, datablock_counts


@pytest.fixture()
def face(empty_scene, job_dir, ext, tmp_path):
    job = tmp_path / "job"
    shutil.copytree(job_dir, job)  # its own copy: the backend writes the lighting files into it
    obj = ext.addon.scene.builder.build_face(bpy.context, job, name="Lit").obj
    bpy.context.view_layer.objects.active = obj
    return obj


def _skin_images(obj):
    return sorted(Path(bpy.path.abspath(n.image.filepath)).name for m in obj.data.materials if m and m.node_tree
                  for n in m.node_tree.nodes if n.type == "TEX_IMAGE" and n.image
                  and Path(n.image.filepath).stem in ("texture", "head_texture", "albedo", "head_albedo"))


def _render_mean(tmp_path, name):
    sc = bpy.context.scene
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 96, 96, 100
    sc.cycles.samples = 8
    sc.render.filepath = str(tmp_path / name)
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(sc.render.filepath)
    return np.array(img.pixels[:], np.float32).reshape(96, 96, 4)[..., :3]


def test_photo_lighting_then_studio_lighting(face, tmp_path):
    assert _skin_images(face) == ["head_texture.png", "texture.png"]
    studio_world = bpy.context.scene.world
    studio_px = _render_mean(tmp_path, "studio.png")
    assert bpy.ops.facedet3d.photo_lighting() == {"FINISHED"}
    assert face.facedet3d.lighting == "PHOTO"
    assert _skin_images(face) == ["albedo.png", "head_albedo.png"]
    world = bpy.context.scene.world
    env = [n for n in world.node_tree.nodes if n.type == "TEX_ENVIRONMENT"]
    assert world.name == "FaceDet3D Photo World" and len(env) == 1
    assert Path(env[0].image.filepath).name == "lighting_env.exr"
    assert env[0].image.colorspace_settings.name == "Non-Color"
    lights = [o for o in face.users_collection[0].objects if o.type == "LIGHT"]
    assert lights and all(o.hide_render for o in lights)
    photo_px = _render_mean(tmp_path, "photo.png")
    assert photo_px.mean() > 0.05 and np.abs(photo_px - studio_px).mean() > 0.005, "a different light, a lit face"
    assert bpy.ops.facedet3d.studio_lighting() == {"FINISHED"}
    assert _skin_images(face) == ["head_texture.png", "texture.png"]
    assert bpy.context.scene.world == studio_world and not any(o.hide_render for o in lights)


def test_a_face_without_its_files_is_refused_and_the_scene_unchanged(face):
    job = Path(bpy.path.abspath(face.facedet3d.job_dir))
    shutil.rmtree(job)
    before = datablock_counts()
    with pytest.raises(RuntimeError, match="files are missing"):
        bpy.ops.facedet3d.photo_lighting()
    assert datablock_counts() == before and face.facedet3d.lighting == "STUDIO"


def test_headless_photo_lighting(tmp_path):
    import subprocess
    import sys

    from conftest import PHOTO, REPO

    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out", str(out),
                        "--photo-lighting", "--render", "--samples", "4", "--resolution", "96", "--texture-size", "512"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert (out / "astronaut_render.png").is_file() and (out / "astronaut_job" / "lighting_env.exr").is_file()
    bpy.ops.wm.open_mainfile(filepath=str(out / "astronaut.blend"))
    obj = next(o for o in bpy.data.objects if o.type == "MESH")
    assert obj.facedet3d.lighting == "PHOTO" and bpy.context.scene.world.name == "FaceDet3D Photo World"
    env = next(n for n in bpy.context.scene.world.node_tree.nodes if n.type == "TEX_ENVIRONMENT")
    assert env.image.filepath.startswith("//"), "stored relative to the .blend: it travels with it"
