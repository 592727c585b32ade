"""Albedo and lighting from the photo (#18, first step): on a render with a known albedo under a
known SH light, the photo pipeline's fit, its lighting estimate and the albedo division give the
light back and an albedo much closer to the truth than the photo's texture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.core.image_io import load_rgb
from backend.core.imaging import srgb_to_linear
from backend.detail.photo import albedo as alb
from backend.detail.photo.extract import extract_photo_detail
from backend.geometry import raster, sh_lighting
from backend.models.loader import load_model
from backend.reconstruct import mesh_landmarks as ml
from backend.reconstruct import texture
from backend.reconstruct.pipeline import reconstruct
from backend.reconstruct.render import render
from protocol.job import FaceReconstruction

SIZE = 512


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("albedo")
    model = load_model()
    V = model.shape()
    A = ml.generic_albedo(model, V)  # the known albedo: skin, brows, lips
    cam = ml.view_camera(model, 15.0, 0.0, size=640, fov_deg=30.0, distance=600.0, vertices=V)
    d = np.array([0.5, 0.6, 0.8]) / np.linalg.norm([0.5, 0.6, 0.8])
    base = sh_lighting.directional_sh(d, 0.9, ambient=0.3)  # a warm key from up right, model frame
    sh_true = np.stack([base, 0.9 * base, 0.8 * base], 1)
    Image.fromarray(render(model, V, cam, sh=sh_true, vertex_rgb=A).image).save(root / "in.png")
    reconstruct(str(root / "in.png"), str(root / "job"), options={"texture_size": SIZE, "head_texture_size": 128})
    rec = FaceReconstruction.load(root / "job")
    photo = load_rgb(str(root / "in.png"))
    light = extract_photo_detail(model, rec, photo, size=256)
    Vf = model.shape(np.asarray(rec.fit.identity), np.asarray(rec.fit.expression))
    face = tuple(model.regions["face"][1])
    tile = alb.albedo_tile(model, Vf, rec.fit.camera, photo, light.sh, face, 0, SIZE)
    lay = texture.uv_layout(model, face[0], face[1], 0, SIZE)
    truth = np.zeros((SIZE * SIZE, 3), np.float32)
    truth[lay.flat] = raster.interpolate(A, lay.tv, lay.t, lay.b)
    tex = srgb_to_linear(np.asarray(Image.open(root / "job" / "texture.png"))).astype(np.float64)
    return model, rec, sh_true, light, tile, truth.reshape(SIZE, SIZE, 3), tex


def _rel_error(est, truth, mask):
    """Per channel: mean |k est - truth| / mean truth, k the least-squares scale (albedo and light
    share one: estimate_lighting sets the skin's mean shading to 1)."""
    k = (truth[mask] * est[mask]).sum(0) / (est[mask] ** 2).sum(0)
    return np.abs(est[mask] * k - truth[mask]).mean(0) / truth[mask].mean(0)


def test_the_lighting_comes_back(loop):
    model, rec, sh_true, light, *_ = loop
    Q = alb._sh_frame(rec.fit.camera)  # model frame -> the camera-facing frame of the estimate
    rng = np.random.default_rng(0)
    n = rng.normal(size=(4000, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    n = n[(n @ Q.T)[:, 2] > 0.2]  # normals the camera can see
    true, est = sh_lighting.shade(n, sh_true), sh_lighting.shade(n @ Q.T, light.sh)
    corr = [np.corrcoef(true[:, c], est[:, c])[0, 1] for c in range(3)]
    assert min(corr) > 0.99, corr  # measured 0.999 per channel
    # the light's colour: the channels' scale ratios keep the key's warmth (1 : 0.9 : 0.8), up to the
    # albedo's share (the estimate gives the skin a mean shading of 1 per channel)
    assert light.stats["lighting_residual"] < 0.05


def test_the_albedo_has_the_light_divided_out(loop):
    model, rec, sh_true, light, tile, truth, tex = loop
    own = tile.weight > 0.9
    covered = truth.sum(-1) > 0
    e_own, e_all, e_tex = _rel_error(tile.linear, truth, own), _rel_error(tile.linear, truth, covered), \
        _rel_error(tex, truth, own)
    # measured at 1024²: 4.8 % where the photo sees the skin well, 6.5-7.1 % over the whole tile
    # (mirror and fill), against 26 % for the photo's texture taken as albedo
    assert (e_own < 0.1).all() and (e_all < 0.15).all() and (e_own < 0.35 * e_tex).all(), (e_own, e_all, e_tex)
    assert tile.stats["mirrored_weight"] > 0.05  # the turned-away side takes the seen side's albedo
    rgb = tile.rgb(alb.headroom(tile))
    assert rgb.dtype == np.uint8 and rgb.shape == (SIZE, SIZE, 3) and alb.headroom(tile) >= 1.0


def test_photo_lighting_writes_its_files_once(loop, tmp_path):
    import shutil

    from backend.core import exr_io
    from backend.detail.photo import relight
    from backend.core.imaging import LUMA
    from backend.detail.photo import world_light
    from backend.detail.photo.world_light import A_L, directions
    from protocol import jsonfile

    model, rec, *_ = loop
    job = tmp_path / "job"
    shutil.copytree(rec_folder(rec), job)
    res = relight.photo_lighting(str(job))
    files = res["files"]
    assert all((job / f).is_file() for f in files.values())
    assert Image.open(job / files["albedo"]).size == (SIZE, SIZE)
    info = jsonfile.read(job / files["lighting"])
    assert info["stamp"]["source"] == FaceReconstruction.load(job).source_key()
    env = np.stack(exr_io.read_channels(job / files["environment"]), -1)
    assert env.shape == (128, 256, 3) and (env >= 0).all()
    # towards the camera the image is the radiance SH at each pixel's direction (clamped at 0, half
    # floats); from behind the head its luminance in the front light's colour
    L = np.asarray(info["radiance_sh_blender_world"])
    d = directions(256)
    expect = np.clip(sh_lighting.shade(d, L), 0, None)
    cam = world_light.toward_camera(rec.fit.camera, model.shape(np.asarray(rec.fit.identity))[:9409].mean(0))
    front, back = d @ cam > 0.35, d @ cam < -0.25
    assert np.abs(env[front] - expect[front]).max() < 0.01 * expect.max() + 1e-3
    tint = env[front].sum(0) / (env[front] @ LUMA).sum()
    ratio = env[back] / np.maximum(env[back] @ LUMA, 1e-6)[:, None]
    assert np.abs(ratio[(env[back] @ LUMA) > 0.05] - tint).max() < 0.02  # the front light's colour
    # and the radiance is pi E / A_l of the irradiance the fit found, turned into Blender's frame
    assert L.shape == (9, 3) and np.isclose(A_L[0], np.pi)
    mtime = (job / files["albedo"]).stat().st_mtime_ns
    again = relight.photo_lighting(str(job))
    assert again["files"] == files and (job / files["albedo"]).stat().st_mtime_ns == mtime  # made once


def rec_folder(rec):
    from pathlib import Path
    return Path(rec.image).parent / "job"
