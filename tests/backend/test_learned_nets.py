"""DetH, D_Exp and RCAN: shapes, the mask blend of Eq. 4, and what an untrained net does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.learned.nets import RCAN, DetH, DetHConfig, DExp, blend, n_params, wrinkle_features
from backend.learned.train import data


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
        other = net(**{**inp, "y": torch.zeros(2, 47)})[0]
    assert 0.4 < float(mask.mean()) < 0.6, "the mask starts near 0.5 (mask_bias 0)"
    assert float((out - other).abs().mean()) > 1e-5, "y enters the bottleneck: it matters from the start"
    net(**inp)[0].abs().mean().backward()
    ada = [m.affine.weight for m in net.modules() if m.__class__.__name__ == "AdaIN"]
    assert all(float(w.grad.abs().sum()) > 0 for w in ada), "every AdaIN layer is trained through y"


def test_deth_knows_where_on_the_tile_a_texel_is():
    """On a flat input an untrained DetH's output varies over the tile (UV coordinates, stripe
    channels, AU maps); without them it is constant away from the borders (convolutions only
    know position from padding)."""
    torch.manual_seed(0)
    inp = {**_inputs(b=1, s=512), "dx": torch.zeros(1, 1, 512, 512)}
    centre = (0, 0, slice(224, 288), slice(224, 288))
    for coords in (True, False):
        net = DetH(DetHConfig() if coords else DetHConfig(coords=False, stripes=0, au_maps=0)).eval()
        with torch.no_grad():
            out = net(**inp)[0][centre]
        if coords:
            assert float(out.std()) > 1e-4
        else:
            assert float(out.std()) < 1e-6


@pytest.mark.parametrize("wavelength", [6.0, 12.0])  # texels: crow's feet .. forehead lines at 256²
def test_wrinkle_features_ignore_where_crests_lie_but_not_depth_or_direction(wavelength):
    s = 128
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    m = torch.ones(1, 1, s, s)
    amp = 0.2  # mm; the features see mm / 0.5

    def feats(phase, a=amp, along=yy):  # (4, inner, inner): low-pass, magnitude, orientation ×2
        d = (a * torch.sin(2 * np.pi * along / wavelength + phase))[None, None]
        return wrinkle_features(d, m, 3.0)[0, :, 24:-24, 24:-24]

    f0 = feats(0.0)
    mag = float(f0[1].mean())
    for name, phase in (("half a wavelength", np.pi), ("a quarter", np.pi / 2)):
        diff = (feats(phase) - f0).abs()
        assert float(diff[0].max()) < 0.05 * amp / 0.5, f"low-pass, shifted by {name}"
        assert float(diff[1:].max()) < 0.05 * mag, f"magnitude and direction, shifted by {name}"
    torch.testing.assert_close(feats(0.0, a=2 * amp)[1:], 2 * f0[1:], rtol=0.01, atol=1e-3)
    assert float(f0[2].mean()) < -0.9 * mag, "crests along x: the gradient is along y"
    assert float(feats(0.0, along=xx)[2].mean()) > 0.9 * mag, "crests along y"


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


def test_au_maps_put_each_au_where_its_wrinkles_form():
    """DetH's AU maps (skin compression per control on the mean face) are strongest in the
    region each AU wrinkles, on the right side for sided controls."""
    from backend.learned import au_maps
    from backend.models.emotions import au_rig
    from backend.models.loader import load_model
    from backend.models.regions import region_masks

    model = load_model()
    maps = au_maps.for_model_dir(None)
    keys = [c["key"] for c in au_rig(model)]
    assert maps.shape == (len(keys), au_maps.SIZE, au_maps.SIZE) and float(maps.min()) >= 0
    reg = {k: v > 0.5 for k, v in region_masks(model, au_maps.SIZE, names=["forehead", "glabella", "nasolabial"]).items()}

    def mean_in(key, region):
        return float(maps[keys.index(key)][reg[region]].mean())

    assert mean_in("AU2L", "forehead") > 3 * mean_in("AU2L", "nasolabial")
    assert mean_in("AU12L", "nasolabial") > 3 * mean_in("AU12L", "forehead")
    assert mean_in("AU4L", "glabella") > 2 * mean_in("AU4L", "nasolabial")
    left, right = maps[keys.index("AU12L")], maps[keys.index("AU12R")]
    half = au_maps.SIZE // 2
    # a sided control compresses one half of the tile far more than the other, and the two
    # sides mirror each other (the UV layout is symmetric to within a texel)
    assert abs(float(left[:, :half].sum() - left[:, half:].sum())) > 0.5 * float(left.sum())
    assert np.corrcoef(left.ravel(), right[:, ::-1].ravel())[0, 1] > 0.95
