"""The rendering network R of FaceDet3D §3.3 and the Detailed Shading Loss's reader f.

- :class:`NTex` (NTex_phi): the photo's texture map (face tile, sRGB) -> an F-channel neural
  texture map (NTM) on the same UV grid.
- :class:`Tex2Im`: two branches over per-pixel inputs, each "the NTM sampled through a raster"
  plus "the shaded albedo through that raster":
  g_theta sees the *proxy's* raster at half resolution (the detail-invariant image: skin tone,
  eyes, the light's fall-off), g_omega the *detailed* geometry's raster at full resolution (the
  details); the image is their sum (Eq. 13). ``single_branch`` (the paper's ablation) keeps only
  a full-resolution g_omega. With ``residual`` g_omega's output is its U-Net's plus its own
  shaded-albedo input: the albedo tile is the photo's own colour at 2048², so the render starts
  sharp and the nets learn what a Lambertian render of it misses (highlights, the eyes' and lips'
  sheen, the albedo's errors) instead of re-learning every freckle; trained from scratch on one
  photo for a few hundred steps, the plain U-Nets rendered the skin blurred (looked at).
- :class:`ShadingReader` (f_theta of Eq. 16): two convolutions from an image to its detailed
  shading.
- :class:`ExpressionCritic` (D_Exp^RGB): realism and AUs of an image, for the expression
  adversarial loss of training over many photos.

Differences from the paper, and why:
- No AU, albedo-PCA or lighting vector is fed to g: a renderer is trained on one person's one
  photo (or, generically, on many people each under one light), so the expression, light and
  albedo reach g through the shaded-albedo rasters only; a vector input would be a constant.
- The nets are small (a few hundred thousand weights): trained per person on this CPU in minutes.
- Inputs and outputs are sRGB in 0..1 (the photo's own encoding); the shaded albedo is encoded
  the same way so g starts from an image that already looks like the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class NeuralConfig:
    features: int = 8  # F: channels of the neural texture
    width: int = 16  # base channels of each U-Net
    levels: int = 3  # U-Net depth (down-samplings)
    single_branch: bool = False  # the ablation: one g on the detailed raster, no proxy branch
    texture_skip: bool = False  # the NTM carries the texture map itself beside the learned features
    residual: bool = True  # g_omega adds to its own shaded-albedo input (see Tex2Im)

    @property
    def ntm_channels(self) -> int:
        return self.features + (3 if self.texture_skip else 0)


def _block(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(o, o, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))


class UNet(nn.Module):
    """A plain U-Net (no normalisation: the masked losses and one-image batches would make batch
    statistics meaningless), any size divisible by 2**levels."""

    def __init__(self, i: int, o: int, width: int, levels: int):
        super().__init__()
        ch = [width * min(2 ** k, 4) for k in range(levels + 1)]
        self.down = nn.ModuleList([_block(i, ch[0])] + [_block(ch[k], ch[k + 1]) for k in range(levels)])
        self.up = nn.ModuleList([_block(ch[k + 1] + ch[k], ch[k]) for k in reversed(range(levels))])
        self.out = nn.Conv2d(ch[0], o, 1)
        self.levels = levels

    def forward(self, x):
        skips = []
        h = self.down[0](x)
        for k in range(self.levels):
            skips.append(h)
            h = self.down[k + 1](F.avg_pool2d(h, 2))
        for k, blk in enumerate(self.up):
            s = skips[-1 - k]
            h = blk(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        return self.out(h)


def pad_to(x, m: int):
    """Pad (reflect) the last two dims up to multiples of ``m``; returns (padded, (h, w))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def sample_texture(tex, uv):
    """Bilinear lookup of a (B,C,S,S) face-tile texture at UDIM coordinates ``uv`` (B,H,W,2)
    (row 0 of the texture = v = 1)."""
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], -1)
    return F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)


class NTex(nn.Module):
    """The NTM: learned features at half the texture map's resolution, and (``texture_skip``) the
    texture map itself at full resolution beside them: the photo's fine colour (freckles, lashes,
    lip lines) reaches g without first passing a U-Net bottleneck, which on one photo and a few
    hundred steps renders it blurred; the features' U-Net at half size costs a quarter.
    Returns the list of texture grids Tex2Im samples (their channels concatenated)."""

    def __init__(self, cfg: NeuralConfig):
        super().__init__()
        self.skip = cfg.texture_skip
        self.net = UNet(3, cfg.features, cfg.width, cfg.levels)

    def forward(self, texture):
        feat = self.net(F.avg_pool2d(texture, 2))
        return [feat, texture] if self.skip else [feat]


class Tex2Im(nn.Module):
    def __init__(self, cfg: NeuralConfig):
        super().__init__()
        self.cfg = cfg
        i = cfg.ntm_channels + 3
        self.g_omega = UNet(i, 3, cfg.width, cfg.levels)
        self.g_theta = None if cfg.single_branch else UNet(i, 3, cfg.width, cfg.levels)

    def forward(self, ntm, uv, shaded_proxy, shaded_detail, mask):
        """``ntm``: NTex's list of texture grids; ``uv`` (B,H,W,2); ``shaded_*`` (B,3,H,W) sRGB albedo x shading through each raster;
        ``mask`` (B,1,H,W) where the face tile is hit (the NTM is not sampled elsewhere).
        Returns ``(image, low_res_part)`` (B,3,H,W)."""
        m = 2 ** (self.cfg.levels + 1)
        feat = torch.cat([sample_texture(t, uv) for t in ntm], 1) * mask
        x_d, size = pad_to(torch.cat([feat, shaded_detail * mask], 1), m)
        detail = self.g_omega(x_d)[..., : size[0], : size[1]]
        if self.cfg.residual:
            detail = detail + shaded_detail * mask
        if self.g_theta is None:
            return detail, torch.zeros_like(detail)
        x_p = torch.cat([feat, shaded_proxy * mask], 1)
        x_p, _ = pad_to(F.avg_pool2d(pad_to(x_p, 2)[0], 2), m)
        low = self.g_theta(x_p)
        low = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)[..., : size[0], : size[1]]
        return low + detail, low


class ShadingReader(nn.Module):
    """f_theta: two convolutions, image (sRGB) -> detailed shading (luminance)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 5, padding=2), nn.LeakyReLU(0.2, inplace=True),
                                 nn.Conv2d(width, 1, 5, padding=2))

    def forward(self, image):
        return self.net(image)


class ExpressionCritic(nn.Module):
    """D_Exp^RGB of FaceDet3D's expression adversarial loss: from an image (sRGB) a realism logit
    per patch and the image's AUs (0..1). The paper's is a U-Net discriminator (Schonfeld et al.
    2020), per pixel; this one judges 16-pixel patches with a shared trunk, small enough to train
    beside R on this CPU."""

    def __init__(self, n_aus: int, width: int = 32):
        super().__init__()
        layers, c = [], 3
        for k in range(4):  # /16
            o = width * min(2 ** k, 4)
            layers += [nn.Conv2d(c, o, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c = o
        self.trunk = nn.Sequential(*layers)
        self.real = nn.Conv2d(c, 1, 3, padding=1)
        self.aus = nn.Linear(c, n_aus)

    def forward(self, image):
        h = self.trunk(image)
        return self.real(h), torch.sigmoid(self.aus(h.mean((-2, -1))))


class NeuralRenderer(nn.Module):
    """R = (NTex, Tex2Im): the one module saved and served."""

    def __init__(self, cfg: NeuralConfig = NeuralConfig()):
        super().__init__()
        self.cfg = cfg
        self.ntex = NTex(cfg)
        self.tex2im = Tex2Im(cfg)

    def neural_texture(self, texture):
        return self.ntex(texture)

    def forward(self, texture, uv, shaded_proxy, shaded_detail, mask, ntm=None):
        ntm = self.ntex(texture) if ntm is None else ntm
        return self.tex2im(ntm, uv, shaded_proxy, shaded_detail, mask)


def laplacian_pyramid_loss(a, b, levels: int = 4):
    """LapLoss (Ling & Okada 2006, as FaceDet3D uses it): L1 between the Laplacian pyramids of
    ``a`` and ``b``, band j weighted 2^-j (finer bands, where wrinkles live, weigh most)."""
    loss = 0.0
    for j in range(levels):
        if min(a.shape[-2:]) < 4:
            break
        a_lo, b_lo = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        a_up = F.interpolate(a_lo, size=a.shape[-2:], mode="bilinear", align_corners=False)
        b_up = F.interpolate(b_lo, size=b.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss + (2.0 ** -j) * ((a - a_up) - (b - b_up)).abs().mean()
        a, b = a_lo, b_lo
    return loss + (a - b).abs().mean()
