"""DetH, D_Exp and RCAN: shapes, the mask blend of Eq. 4, and what an untrained net does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.learned import data
from backend.learned.nets import RCAN, DetH, DExp, blend, n_params


def _inputs(b=2, s=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(dx=torch.randn(b, 1, s, s, generator=g) * 0.2, uv_mask=torch.ones(b, 1, s, s),
                x=torch.rand(b, 47, generator=g), y=torch.rand(b, 47, generator=g),
                identity=torch.randn(b, 50, generator=g), faceid=torch.zeros(b, 128),
                has_faceid=torch.zeros(b, 1), age=torch.full((b, 1), 40.0))


def test_deth_shapes_and_eq4_blend():
    torch.manual_seed(0)
    net = DetH().eval()
    inp = _inputs()
    with torch.no_grad():
        out, hall, mask = net(**inp)
    assert out.shape == hall.shape == mask.shape == (2, 1, 256, 256)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    torch.testing.assert_close(out, mask * hall + (1 - mask) * inp["dx"])
    # Eq. 4 at the extremes: M = 1 gives H, M = 0 gives the input unchanged
    torch.testing.assert_close(blend(torch.ones_like(mask), hall, inp["dx"]), hall)
    torch.testing.assert_close(blend(torch.zeros_like(mask), hall, inp["dx"]), inp["dx"])


def test_untrained_deth_mostly_keeps_the_input_and_depends_on_the_target():
    torch.manual_seed(0)
    net = DetH().eval()
    inp = _inputs()
    with torch.no_grad():
        out, _, mask = net(**inp)
        same = net(**{**inp, "y": torch.zeros(2, 47)})[0]
    assert 0.05 < float(mask.mean()) < 0.2, "the mask starts near 0.12: keep D(I_x)"
    # AdaIN starts as plain instance norm (zero affine): y has no effect until trained...
    torch.testing.assert_close(out, same)
    net(**inp)[0].abs().mean().backward()
    ada = [m.affine.weight for m in net.modules() if m.__class__.__name__ == "AdaIN"]
    assert all(float(w.grad.abs().sum()) > 0 for w in ada), "...but every AdaIN layer is trained through y"
    with torch.no_grad():
        for w in ada:
            w.normal_(0, 0.05)
        assert float((net(**inp)[0] - net(**{**inp, "y": torch.zeros(2, 47)})[0]).abs().mean()) > 1e-4


def test_dexp_outputs_image_pixel_and_au_heads():
    net = DExp()
    with torch.no_grad():
        real, pix, aus = net(torch.randn(3, 1, 256, 256), torch.ones(3, 1, 256, 256))
    assert real.shape == (3,) and pix.shape == (3, 1, 256, 256) and aus.shape == (3, 47)
    assert float(aus.min()) >= 0 and float(aus.max()) <= 1


def test_untrained_rcan_is_bicubic_x4():
    net = RCAN()
    lr = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        sr = net(lr)
    assert sr.shape == (1, 1, 128, 128)
    torch.testing.assert_close(sr, F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False))


def test_shipped_size_budget():
    mb = (n_params(DetH()) + n_params(RCAN())) * 4 / 2 ** 20
    assert mb < 20, f"DetH + RCAN weights {mb:.1f} MB (float32) exceed the 20 MB budget"


def test_random_controls_cover_presets_sparse_and_neutral():
    syn_rig = [{"key": f"AU{a}{s}", "au": a, "side": s, "name": "", "shapes": []} for a in (1, 2, 12) for s in "LR"]
    presets = {"happy": {"AU12L": 1.0, "AU12R": 1.0}}
    rng = np.random.default_rng(0)
    vs = np.stack([data.random_controls(syn_rig, presets, rng) for _ in range(400)])
    neutral = (vs == 0).all(1).mean()
    assert 0.08 < neutral < 0.25
    assert ((vs > 0).sum(1) == 1).mean() > 0.05, "one-sided AUs occur"
    assert vs.max() <= 1.0 and vs.min() >= 0.0
