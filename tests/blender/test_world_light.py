"""The photo's lighting as a Blender world (backend.detail.photo.world_light): a white Lambertian
sphere rendered by Cycles under the environment image made from known SH irradiance gives that
irradiance back at every normal. This pins Blender's equirectangular layout (first row up, left edge
-X, a quarter across +Y) and the radiance scale (pi E / A_l)."""

from __future__ import annotations

import math

import numpy as np
from conftest import backend_run, bpy

N = 96
ORTHO = 2.2

MAKE = f"""
import sys, numpy as np
from backend.core import exr_io
from backend.detail.photo import world_light as wl
from backend.geometry import sh_lighting
d = np.array([0.6, -0.5, 0.6]); d /= np.linalg.norm(d)
E = sh_lighting.directional_sh(d, 0.8, ambient=0.3)
E = np.stack([E, 0.9 * E, 0.7 * E], 1)  # irradiance, Blender world frame: a warm key, front right, above
env = wl.environment(E * (np.pi / wl.A_L)[:, None])
exr_io.write_channels(sys.argv[1], [env[..., 0], env[..., 1], env[..., 2]], unit="radiance")
s = {ORTHO} / {N}
yy, xx = np.mgrid[0:{N}, 0:{N}]
x, z = (xx + 0.5) * s - {ORTHO} / 2, {ORTHO} / 2 - (yy + 0.5) * s
n = np.stack([x, -np.sqrt(np.clip(1 - x * x - z * z, 0, 1)), z], -1)  # the sphere seen from -Y
np.save(sys.argv[2], sh_lighting.shade(n, E))
"""


def test_a_sphere_under_the_photo_world_gets_the_photos_irradiance(ext, empty_scene, tmp_path):
    env_path, expect_path = tmp_path / "env.exr", tmp_path / "expect.npy"
    backend_run(MAKE, str(env_path), str(expect_path))
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.device, sc.cycles.samples, sc.cycles.use_denoising = "CPU", 128, False
    sc.render.resolution_x = sc.render.resolution_y = N
    sc.view_settings.view_transform = "Standard"
    world = bpy.data.worlds.new("W")
    sc.world = world
    world.use_nodes = True
    env = world.node_tree.nodes.new("ShaderNodeTexEnvironment")
    env.image = bpy.data.images.load(str(env_path))
    env.image.colorspace_settings.name = "Non-Color"
    world.node_tree.links.new(env.outputs["Color"], world.node_tree.nodes["Background"].inputs["Color"])
    bpy.ops.mesh.primitive_uv_sphere_add(segments=96, ring_count=48, radius=1.0)
    sphere = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    mat = bpy.data.materials.new("white")
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (1, 1, 1, 1)
    bsdf.inputs["Roughness"].default_value = 1.0
    bsdf.inputs["Specular IOR Level"].default_value = 0.0
    sphere.data.materials.append(mat)
    cam = bpy.data.objects.new("C", bpy.data.cameras.new("C"))
    cam.data.type, cam.data.ortho_scale = "ORTHO", ORTHO
    sc.collection.objects.link(cam)
    sc.camera = cam
    cam.location, cam.rotation_euler = (0, -10, 0), (math.pi / 2, 0, 0)
    sc.render.image_settings.file_format = "OPEN_EXR"
    sc.render.filepath = str(tmp_path / "sphere.exr")
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(tmp_path / "sphere.exr"))
    got = np.array(img.pixels[:], np.float32).reshape(N, N, 4)[::-1, :, :3]
    expect = np.load(expect_path)
    yy, xx = np.mgrid[0:N, 0:N]
    x, z = (xx + 0.5) * ORTHO / N - ORTHO / 2, ORTHO / 2 - (yy + 0.5) * ORTHO / N
    inside = x * x + z * z < 0.9 ** 2  # away from the silhouette's grazing pixels
    # measured: correlation 0.9999 per channel, 1.1 % mean error (the clamped negative radiance,
    # Monte Carlo noise at 128 samples)
    for c in range(3):
        assert np.corrcoef(got[inside, c], expect[inside, c])[0, 1] > 0.995
    assert np.abs(got[inside] - expect[inside]).mean() < 0.03 * expect[inside].mean()
