"""The learned detail networks (FaceDet3D §3.2): DetH, its expression discriminator D_Exp, and
RCAN ×4 super-resolution. Sized to train on a 2-core CPU (docs/deth.md has the figures).

DetH (Fig. 2 of the paper): encoders for the detail map D(I_x), the source AUs x, the identity
shape coefficients, the face-identity embedding and age; their features concatenated over
channels; a decoder that receives the target AUs y through AdaIN; two heads, a hallucination H
and a mask M, blended with the input (Eq. 4):

    D̃(I_y) = M ⊙ H + (1 − M) ⊙ D(I_x)

D_Exp: a U-Net discriminator (Schönfeld et al. 2020): an image-level realism score from the
encoder, a per-pixel realism map from the decoder, and an AU-regression head.

RCAN (Zhang et al. 2018): residual groups of residual channel-attention blocks, long skips,
pixel-shuffle ×4; one channel in and out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .au_maps import for_model_dir

MM_SCALE = 0.5  # maps are mm; the nets see mm / MM_SCALE so typical wrinkles are O(1)


@dataclass(frozen=True)
class DetHConfig:
    n_aus: int = 47
    n_identity: int = 50
    faceid_dim: int = 128
    width: int = 16          # channels at full resolution; doubles per level
    levels: int = 3          # 256 -> 32 at the bottleneck
    vec_channels: int = 16   # feature maps per conditioning vector
    res_blocks: int = 3
    coords: bool = True      # UV coordinate channels (where on the face a texel is)
    mask_bias: float = 0.0   # the mask head's initial logit (M = 0.5: H's gradient is not damped
    #                          by a small M while it learns; -2 learned about half as fast)
    stripes: int = 3         # wavelengths of fixed stripe channels (see stripe_channels); 0: none
    au_maps: int = 64        # size of the per-control AU maps (learned/au_maps.py); 0: none


class AdaIN(nn.Module):
    """Instance norm whose scale and shift come from the target AUs."""

    def __init__(self, channels: int, cond: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(cond, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h, c):
        g, b = self.affine(c).chunk(2, dim=1)
        return self.norm(h) * (1 + g[..., None, None]) + b[..., None, None]


class AdaBlock(nn.Module):
    def __init__(self, channels: int, cond: int):
        super().__init__()
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.n1 = AdaIN(channels, cond)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.n2 = AdaIN(channels, cond)

    def forward(self, h, c):
        r = F.leaky_relu(self.n1(self.c1(h), c), 0.2)
        return h + self.n2(self.c2(r), c)


def _mlp(i: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, 64), nn.LeakyReLU(0.2), nn.Linear(64, o))


class DetH(nn.Module):
    def __init__(self, cfg: DetHConfig = DetHConfig()):
        super().__init__()
        self.cfg = cfg
        w, L = cfg.width, cfg.levels
        chans = [w * 2 ** i for i in range(L + 1)]
        nc = 2 if cfg.coords else 0
        ns = 8 * cfg.stripes
        # detail map + UV coverage mask (+ u, v): each AU wrinkles fixed places of the UV tile, and
        # convolutions alone only know where they are from the coverage's edges (the first run,
        # without coordinates, learned where expressions act but not which AU acts where);
        # (+ stripes): wrinkles the source does not show must be drawn from nothing, and a small
        # conv net makes 6-16-texel periodic patterns out of smooth inputs only slowly; with fixed
        # plane waves it gates and bends them (a 400-step test at 128²: forehead r -0.09 -> +0.35)
        self.stem = nn.Conv2d(2 + nc + ns, w, 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1) for i in range(L))
        v = cfg.vec_channels
        self.enc_x = _mlp(cfg.n_aus, v)
        self.enc_id = _mlp(cfg.n_identity, v)
        self.enc_fid = _mlp(cfg.faceid_dim + 1, v)  # + presence flag
        self.enc_age = _mlp(1, v)
        cond = 64
        self.enc_y = _mlp(cfg.n_aus, cond)
        # y also enters the bottleneck as feature maps beside x (besides the decoder's AdaIN): the
        # fuse layer can then gate position features by the target AUs directly
        bott = chans[L] + 4 * v + cond + nc + (2 * cfg.n_aus if cfg.au_maps else 0)
        self._maps: dict[tuple, torch.Tensor] = {}  # (model_dir, device) -> AU maps (learned/au_maps.py)
        self.fuse = nn.Conv2d(bott, chans[L], 1)
        self.blocks = nn.ModuleList(AdaBlock(chans[L], cond) for _ in range(cfg.res_blocks))
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1] + chans[i], chans[i], 3, padding=1)
                                for i in reversed(range(L)))
        self.up_norm = nn.ModuleList(AdaIN(chans[i], cond) for i in reversed(range(L)))
        self.head_h = nn.Conv2d(w, 1, 3, padding=1)
        self.head_m = nn.Conv2d(w, 1, 3, padding=1)
        nn.init.constant_(self.head_m.bias, cfg.mask_bias)

    def au_maps(self, size: int, like: torch.Tensor, model_dir: str | None = None) -> torch.Tensor:
        """(1, n_aus, size, size): where each AU control compresses the skin on the face model in
        ``model_dir`` (None: the default model). Cached per model and device; a per-call argument,
        not state, so jobs on different models can share one net from several threads."""
        key = (model_dir, str(like.device))
        maps = self._maps.get(key)
        if maps is None:
            a = torch.from_numpy(for_model_dir(model_dir, self.cfg.au_maps))
            if a.shape[0] != self.cfg.n_aus:
                raise ValueError(f"the face model has {a.shape[0]} AU controls, DetH was made for {self.cfg.n_aus}")
            maps = self._maps[key] = a.to(like.device)[None]
        # compression 0..~0.7 -> O(1) features, at the bottleneck's size
        return F.adaptive_avg_pool2d(maps, size).to(like.dtype) * 4.0

    def forward(self, dx, uv_mask, x, y, identity, faceid, has_faceid, age, model_dir: str | None = None):
        """dx, uv_mask (B,1,S,S) in mm / 0-1; x, y (B, n_aus); identity (B, n_identity); faceid
        (B, 128); has_faceid (B, 1); age (B, 1) years; ``model_dir``: the face model whose UV
        layout the maps are in (None: the default model). Returns (D̃, H, M), maps in mm."""
        inp = [dx / MM_SCALE, uv_mask]
        if self.cfg.coords:
            inp.append(uv_coords(dx.shape[-1], dx).expand(dx.shape[0], -1, -1, -1))
        if self.cfg.stripes:
            inp.append(stripe_channels(dx.shape[-1], self.cfg.stripes, dx).expand(dx.shape[0], -1, -1, -1))
        h = F.leaky_relu(self.stem(torch.cat(inp, 1)), 0.2)
        skips = [h]
        for d in self.down:
            h = F.leaky_relu(d(h), 0.2)
            skips.append(h)
        s = h.shape[-1]
        vecs = [self.enc_x(x), self.enc_id(identity), self.enc_fid(torch.cat([faceid * has_faceid, has_faceid], 1)),
                self.enc_age((age - 50.0) / 20.0)]
        c = self.enc_y(y)
        maps = [h] + [v[..., None, None].expand(-1, -1, s, s) for v in vecs + [c]]
        if self.cfg.coords:
            maps.append(uv_coords(s, h).expand(h.shape[0], -1, -1, -1))
        if self.cfg.au_maps:
            a = self.au_maps(s, h, model_dir)
            maps += [x[..., None, None] * a, y[..., None, None] * a]
        h = F.leaky_relu(self.fuse(torch.cat(maps, 1)), 0.2)
        for b in self.blocks:
            h = b(h, c)
        for conv, norm, skip in zip(self.up, self.up_norm, reversed(skips[:-1])):
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = F.leaky_relu(norm(conv(torch.cat([h, skip], 1)), c), 0.2)
        hall = self.head_h(h) * MM_SCALE
        mask = torch.sigmoid(self.head_m(h))
        return blend(mask, hall, dx), hall, mask


def _blur(t, sigma: float):
    r = max(int(3 * sigma + 0.5), 1)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, device=t.device, dtype=t.dtype) / sigma) ** 2)
    k = (k / k.sum()).repeat(t.shape[1], 1)
    t = F.conv2d(t, k[:, None, None, :], padding=(0, r), groups=t.shape[1])
    return F.conv2d(t, k[:, None, :, None], padding=(r, 0), groups=t.shape[1])


def feature_sigma(size: int, at_256: float = 3.0) -> float:
    """The features' window σ in texels for a size² map (``at_256`` at 256², at least 1)."""
    return max(at_256 * size / 256, 1.0)


def wrinkle_features(d, m, sigma: float):
    """Phase-free description of a map (B,1,S,S, mm) on the face ``m``: (B,4,S,S) = a
    normalised-convolution low-pass (window 2σ: it must pass folds but not forehead lines of
    ~15 texels' wavelength at 256², which a σ window still passes at 45 %), and the
    Gaussian-windowed (σ) structure tensor of the gradient as magnitude √(Jxx+Jyy) and orientation
    (Jxx−Jyy, 2Jxy)/√(Jxx+Jyy) — all linear in the wrinkle amplitude, none dependent on where a
    crest lies within the window."""
    s = d / MM_SCALE
    low = _blur(s * m, 2 * sigma) / _blur(m, 2 * sigma).clamp_min(1e-3)
    gx = F.pad(s[..., :, 2:] - s[..., :, :-2], (1, 1, 0, 0)) * 0.5
    gy = F.pad(s[..., 2:, :] - s[..., :-2, :], (0, 0, 1, 1)) * 0.5
    j = _blur(torch.cat([gx * gx, gy * gy, gx * gy], 1) * m, sigma) / _blur(m, sigma).clamp_min(1e-3)
    mag = torch.sqrt(j[:, :1] + j[:, 1:2] + 1e-6)
    return torch.cat([low, mag, (j[:, :1] - j[:, 1:2]) / mag, 2 * j[:, 2:] / mag], 1)


def uv_coords(size: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, size, size): u and v of each texel's centre mapped to -1..1 (row 0 = v = 1)."""
    t = (torch.arange(size, device=like.device, dtype=like.dtype) + 0.5) / size * 2 - 1
    v, u = torch.meshgrid(-t, t, indexing="ij")
    return torch.stack([u, v])[None]


def stripe_channels(size: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 8n, size, size): sin and cos of plane waves in 4 directions (0, 45, 90, 135°) at n
    wavelengths from 6 to 16 texels at 256² (scaled with ``size``)."""
    c = uv_coords(size, like) * (size / 2)  # texels from the centre
    out = []
    for lam in torch.linspace(6.0, 16.0, n).tolist() if n > 1 else [10.0]:
        k = 2 * torch.pi / (lam * size / 256)
        for a in (0.0, 0.25, 0.5, 0.75):
            ph = k * (c[:, 0] * torch.cos(torch.tensor(a * torch.pi)) + c[:, 1] * torch.sin(torch.tensor(a * torch.pi)))
            out += [torch.sin(ph), torch.cos(ph)]
    return torch.stack(out, 1)


def blend(mask, hallucination, dx):
    """Eq. 4 of the paper."""
    return mask * hallucination + (1 - mask) * dx


class DExp(nn.Module):
    """U-Net discriminator: (image realism (B,), pixel realism (B,1,S,S), AUs (B, n_aus) in 0..1)."""

    def __init__(self, n_aus: int = 47, width: int = 12, levels: int = 4):
        super().__init__()
        chans = [width * 2 ** i for i in range(levels + 1)]
        self.stem = nn.Conv2d(2, width, 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1) for i in range(levels))
        self.real = nn.Linear(chans[-1], 1)
        self.aus = nn.Linear(chans[-1], n_aus)
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1] + chans[i], chans[i], 3, padding=1)
                                for i in reversed(range(levels)))
        self.pix = nn.Conv2d(width, 1, 1)

    def forward(self, d, uv_mask):
        h = F.leaky_relu(self.stem(torch.cat([d / MM_SCALE, uv_mask], 1)), 0.2)
        skips = [h]
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
            skips.append(h)
        pooled = h.mean(dim=(2, 3))
        real, aus = self.real(pooled).squeeze(1), torch.sigmoid(self.aus(pooled))
        for conv, skip in zip(self.up, reversed(skips[:-1])):
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = F.leaky_relu(conv(torch.cat([h, skip], 1)), 0.2)
        return real, self.pix(h), aus


# ------------------------------------------------------------------ RCAN

@dataclass(frozen=True)
class RCANConfig:
    feats: int = 32
    groups: int = 3
    blocks: int = 4
    reduction: int = 8


class RCAB(nn.Module):
    """Residual channel-attention block."""

    def __init__(self, f: int, r: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.ReLU(True), nn.Conv2d(f, f, 3, padding=1))
        self.att = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(f, f // r, 1), nn.ReLU(True),
                                 nn.Conv2d(f // r, f, 1), nn.Sigmoid())

    def forward(self, h):
        r = self.body(h)
        return h + r * self.att(r)


class ResidualGroup(nn.Module):
    def __init__(self, f: int, r: int, n: int):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(f, r) for _ in range(n)], nn.Conv2d(f, f, 3, padding=1))

    def forward(self, h):
        return h + self.body(h)  # short skip


class RCAN(nn.Module):
    """×4 super-resolution of a one-channel map (mm in, mm out); predicts the residual over
    bicubic upsampling, so an untrained net is bicubic."""

    scale = 4

    def __init__(self, cfg: RCANConfig = RCANConfig()):
        super().__init__()
        self.cfg = cfg
        f = cfg.feats
        self.head = nn.Conv2d(1, f, 3, padding=1)
        self.body = nn.Sequential(*[ResidualGroup(f, cfg.reduction, cfg.blocks) for _ in range(cfg.groups)],
                                  nn.Conv2d(f, f, 3, padding=1))
        self.tail = nn.Sequential(nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2),
                                  nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2),
                                  nn.Conv2d(f, 1, 3, padding=1))
        nn.init.zeros_(self.tail[-1].weight)
        nn.init.zeros_(self.tail[-1].bias)

    def forward(self, lr):
        s = lr / MM_SCALE
        h = self.head(s)
        h = h + self.body(h)  # long skip
        up = F.interpolate(s, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return (up + self.tail(h)) * MM_SCALE


def config_dict(cfg) -> dict:
    return asdict(cfg)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
