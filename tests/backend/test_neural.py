"""The neural renderer's backend parts on a real reconstruction: rasters (UVs and normals through the
photo's camera, the detail's bump), the Augmented Wrinkle Loss's re-shaded photo, the nets' shapes
and branches, training that lowers its losses and makes the fake details show, the per-person
training cached with its stamp, a neural frame from Blender-layout rasters, and torchrun ranks that
stay in step."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core.errors import BadRequestError, DamagedFileError
from backend.detail.face import ReconstructedFace
from backend.learned.neural import frame, rasters as ras, subject as subj
from backend.learned.neural.nets import NeuralConfig, NeuralRenderer, laplacian_pyramid_loss
from backend.learned.neural import training as train_neural

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def face(small_job):
    job = small_job("neural")
    f = ReconstructedFace.open(job)
    v = f.model.shape(f.identity, np.asarray(f.rec.fit.expression, np.float64))
    return f, v


@pytest.fixture(scope="module")
def tiny_subject(face):
    """Views of 64 px with three fake maps: what training needs, small."""
    f, _ = face
    return subj.prepare(f.folder, n_fake=3, seed=0, size=64, framings=(1.0,))


def test_rasters_see_the_face_through_the_photos_camera(face):
    f, v = face
    fade = ras.face_fade(f.model, v)
    assert fade.max() == pytest.approx(1.0) and fade.min() == 0.0
    r = ras.from_model(f.model, v, f.rec.fit.camera, fade)
    assert r.shape == (f.rec.fit.camera.height, f.rec.fit.camera.width)
    on = r.face > 0.5
    assert 0.02 < on.mean() < 0.3, "the face tile covers part of the photo"
    assert np.allclose(np.linalg.norm(r.normal[r.hit], axis=1), 1.0, atol=1e-4)
    # the face looks at the camera: world normals point toward it (Blender's -Y is the face's front)
    assert np.median(r.normal[on][:, 1]) < -0.5
    assert np.array_equal(r.detail_normal, r.normal), "no tilt: the detailed normal is the proxy's"
    u = r.uv[on]
    assert ((u >= 0) & (u <= 1)).all(), "face-tile pixels hold tile-0 UVs"


def test_a_bump_tilts_the_normal_away_from_its_top(face):
    f, v = face
    s = 256
    yy, xx = np.mgrid[0:s, 0:s]
    bump = 0.5 * np.exp(-((xx - 128) ** 2 + (yy - 100) ** 2) / (2 * 6.0 ** 2))  # 0.5 mm, on the cheek/nose area
    tilt = ras.detail_tilt(f.model, v, bump, size=s)
    surf = ras.texel_surface(f.model, v, s)
    assert np.abs(ras.detail_tilt(f.model, v, np.zeros((s, s)), size=s)).max() == 0.0
    # left of the top the surface rises toward +column: the tilt points against the column direction
    left, right = tilt[100, 122], tilt[100, 134]
    du = surf.jac[100, 128, :, 0]  # model-frame direction of +column
    assert left @ du < 0 < right @ du
    assert np.abs(tilt[100, 128] @ du) < 0.2 * np.abs(left @ du), "flat at the top"


def test_augmented_target_is_the_photo_when_the_fake_detail_is_the_photos_own(face):
    """Eq. 14 with D(I_z*) = D(I_x): Shading* = Shading, I*_x = I_x."""
    f, v = face
    assets = subj.load_assets(f, v)
    tilt_x = ras.detail_tilt(f.model, v, f.photo_detail())
    photo = subj.srgb_to_linear(subj.load_rgb(f.rec.image))
    whole = ras.from_model(f.model, v, f.rec.fit.camera, assets.fade)
    view = subj.make_view(f, v, assets, photo, subj.face_window(whole, 1.0), 64, tilt_x, [tilt_x, None])
    np.testing.assert_allclose(view.aug_target[0], view.target, atol=1e-6)
    np.testing.assert_allclose(view.aug_detail[0], view.shaded_detail, atol=1e-6)
    m = view.weight[0] > 0.5
    assert np.abs(view.aug_target[1] - view.target)[:, m].max() > 0.002, "no detail at all: a different image"


def test_nets_shapes_branches_and_the_pyramid_loss():
    for single in (False, True):
        R = NeuralRenderer(NeuralConfig(single_branch=single))
        tex = torch.rand(1, 3, 64, 64)
        uv = torch.rand(1, 40, 50, 2)
        sp, sd = torch.rand(1, 3, 40, 50), torch.rand(1, 3, 40, 50)
        img, low = R(tex, uv, sp, sd, torch.ones(1, 1, 40, 50))
        assert img.shape == low.shape == (1, 3, 40, 50)
        assert (low.abs().sum() == 0) == single, "the single branch has no low-resolution part"
    a = torch.rand(1, 3, 32, 32)
    assert float(laplacian_pyramid_loss(a, a)) == 0.0
    b = a.clone()
    b[..., 10, 10] += 0.5
    assert float(laplacian_pyramid_loss(a, b)) > 0.0


def test_training_lowers_the_losses_and_the_fake_details_show(tiny_subject):
    cfg = train_neural.NeuralTrainConfig(steps=60, log_every=1000)
    seen = []
    R, f, last = train_neural.train([tiny_subject], cfg, progress=lambda i, st: seen.append(st), log=lambda *_: None)
    first = np.mean([s["photo"] for s in seen[:5]])
    assert np.mean([s["photo"] for s in seen[-5:]]) < 0.7 * first
    v = tiny_subject.views[0]
    m = v.weight[0] > 0.5

    def render(detail):
        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a, np.float32)).unsqueeze(0)
        with torch.no_grad():
            return R(t(tiny_subject.texture), t(v.uv), t(v.shaded_proxy), t(detail), (t(v.weight) > 0).float())[0][0].numpy()
    change = (render(v.aug_detail[0]) - render(v.shaded_detail)).mean(0)[m]
    truth = (v.aug_target[0] - v.target).mean(0)[m]
    assert np.corrcoef(change, truth)[0, 1] > 0.5, "the render follows the detailed geometry"


def test_per_person_training_is_cached_and_serves_a_frame(face, tmp_path):
    f, v = face
    res = train_neural.train_subject(str(f.folder), steps=3)
    assert res["trained"] and frame.trained(f.folder)
    again = train_neural.train_subject(str(f.folder), steps=3)
    assert not again["trained"], "same photo, fit and steps: not trained again"
    stamp = json.loads((f.folder / "neural" / "renderer.json").read_text())["stamp"]
    assert stamp["steps"] == 3 and stamp["init"] == "scratch"
    # a Blender-layout raster EXR (as addon/scene/neural_pass.py writes it) -> an RGBA PNG
    loaded = frame.load(f.folder)
    r = ras.from_model(f.model, v, f.rec.fit.camera, loaded.assets.fade, size=(128, 128))
    exr = tmp_path / "rasters_0001.exr"
    _write_blender_rasters(exr, r)
    out = tmp_path / "frames" / "neural_0001.png"
    got = frame.neural_frame(str(f.folder), str(exr), str(out))
    from PIL import Image

    from scipy import ndimage

    rgba = np.asarray(Image.open(out))
    inner = ndimage.binary_erosion(r.face > 0, np.ones((3, 3), bool))  # the skin's border pixels go to Cycles
    assert rgba.shape == (128, 128, 4) and got["stats"]["face_pixels"] == int(inner.sum())
    np.testing.assert_allclose(rgba[..., 3] / 255.0, np.where(inner, r.face, 0.0), atol=1 / 255 + 1e-6)
    assert rgba[r.face > 0.5][:, :3].mean() > 20, "a lit face, not black"
    with pytest.raises(DamagedFileError, match="proxy.UV.U"):
        bad = tmp_path / "bad.exr"
        _write_blender_rasters(bad, r, drop="proxy.UV.U")
        frame.neural_frame(str(f.folder), str(bad), str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_a_face_without_a_renderer_is_told_to_train_first(small_job):
    job = small_job("untrained")
    with pytest.raises(BadRequestError, match="no neural renderer"):
        frame.load(job)


def _write_blender_rasters(path: Path, r: ras.Rasters, drop: str = "") -> None:
    import OpenEXR

    alpha = r.hit.astype(np.float32)
    comb = np.stack([alpha] * 4, -1)
    ch = {}
    for layer, n in (("detailed", r.detail_normal), ("proxy", r.normal)):
        ch[f"{layer}.Combined"] = comb
        ch[f"{layer}.UV.U"], ch[f"{layer}.UV.V"] = r.uv[..., 0], r.uv[..., 1]
        for k, a in enumerate("XYZ"):
            ch[f"{layer}.Normal.{a}"] = n[..., k]
    ch["detailed.Material Index.X"] = np.where(r.face > 0, 1.0, 2.0).astype(np.float32)  # the skin's index is 1
    ch.pop(drop, None)
    ch = {k: np.ascontiguousarray(v, np.float32) for k, v in ch.items()}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, ch) as f:
        f.write(str(path))


TORCHRUN = """
import os, sys, torch, numpy as np
from backend.learned.neural.subject import Subject, View
from backend.learned.neural import training as neural
from backend.learned.distributed import exit_worker
rng = np.random.default_rng(0)
def view():
    a = lambda *s: rng.random(s, dtype=np.float32)
    return View(a(3, 32, 32), a(32, 32, 2), np.ones((1, 32, 32), np.float32), a(3, 32, 32), a(3, 32, 32), a(1, 32, 32),
                [a(3, 32, 32)], [a(3, 32, 32)], [a(1, 32, 32)])
subjects = [Subject(str(i), rng.random((3, 64, 64), dtype=np.float32), [view()], np.array([0.3 * i, 0.5], np.float32),
                    ("AU1", "AU2")) for i in range(3)]
R, f, last = neural.train(subjects, neural.NeuralTrainConfig(steps=4, expression=0.5), log=lambda *_: None)
rank = int(os.environ.get("RANK", "0"))
torch.save(R.state_dict(), os.path.join(sys.argv[1], f"rank{rank}.pt"))
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    exit_worker(0)
"""


def test_torchrun_ranks_train_one_renderer(tmp_path):
    """Two gloo processes, each on its own subject per step: the gradients are averaged (R's, the
    reader's and the expression critic's), so both ranks end with the same weights (and they differ
    from the start)."""
    script = tmp_path / "run.py"
    script.write_text(TORCHRUN)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{k}.pt") for k in (0, 1))
    torch.manual_seed(0)
    start = NeuralRenderer(NeuralConfig()).state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a), "it trained"
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def _striped_subject(name: str, band: slice, aus) -> "subj.Subject":
    """A 32 px subject whose photo has a bright band (where says its expression) and AUs ``aus``."""
    rng = np.random.default_rng(len(name))
    target = np.full((3, 32, 32), 0.3, np.float32)
    target[:, band] = 0.9
    a = lambda *s: rng.random(s, dtype=np.float32)  # noqa: E731
    v = subj.View(target, a(32, 32, 2), np.ones((1, 32, 32), np.float32), a(3, 32, 32), a(3, 32, 32), a(1, 32, 32))
    return subj.Subject(name, a(3, 64, 64), [v], np.asarray(aus, np.float32), ("AU1", "AU12"))


def test_the_expression_critic_learns_the_photos_aus_and_reaches_the_renderer():
    """Two photos whose expressions differ (a band high or low, AUs 0.9/0.1 against 0.1/0.9): the
    critic's AU head learns to read them (its error on the photos falls far below a constant's,
    0.16), and R trains differently with the loss than without it."""
    subjects = [_striped_subject("a", slice(2, 10), (0.9, 0.1)), _striped_subject("b", slice(22, 30), (0.1, 0.9))]
    seen = []
    cfg = train_neural.NeuralTrainConfig(steps=150, expression=1.0, log_every=1000)
    R, _, _ = train_neural.train(subjects, cfg, progress=lambda i, st: seen.append(st), log=lambda *_: None)
    assert {"adv", "au", "critic", "critic_au"} <= set(seen[-1])
    late = np.mean([st["critic_au"] for st in seen[-20:]])
    assert late < 0.04 < np.mean([st["critic_au"] for st in seen[:5]]), late
    R0, _, _ = train_neural.train(subjects, dataclasses.replace(cfg, expression=0.0), log=lambda *_: None)
    assert any(not torch.equal(a, b) for a, b in zip(R.state_dict().values(), R0.state_dict().values()))
    with pytest.raises(ValueError, match="same names"):
        train_neural.train([subjects[0], dataclasses.replace(subjects[1], au_names=("AU1", "AU2"))], cfg)
