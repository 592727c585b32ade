"""Training RCAN ×4 on detail maps, on patches; PSNR/SSIM for its evaluation.

Training pairs: high-resolution detail maps from the synthetic generator at 1024² (``data.generate``
with ``size=1024``: creases, pores and micro relief, expression wrinkles), the low-resolution
input their 4× area average — exactly how the project reduces its maps (``details.resample``) —,
random 192² patches (48² in) on the face. Applied twice (256² → 1024² → 4096²) with tiles, so
memory is bounded by the tile, not by the map.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from protocol.atomic import replacing

from ..nets import RCAN, RCANConfig
from ..sr import SCALE


@dataclass
class SRConfig:
    steps: int = 3000
    batch: int = 8
    patch: int = 192  # HR patch side (multiple of 4)
    lr: float = 2e-4
    seed: int = 0
    ckpt_every: int = 250
    log_every: int = 25
    holdout_every: int = 10
    # share of patches drawn where bicubic misses most (the creases) rather than uniformly on the
    # face: crease maps are sparse, and uniform patches are mostly empty skin
    detail_share: float = 0.0
    net: RCANConfig = RCANConfig()


def hr_maps(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """Every map of loaded 1024² shards (both expressions of each sample) and their seeds."""
    maps = np.concatenate([data["dx"], data["dy"]]).astype(np.float32)
    return maps, np.concatenate([data["seed"], data["seed"]])


def _box_means(a: np.ndarray, patch: int) -> np.ndarray:
    """Mean of ``a`` over every patch² window, indexed by the window's corner (summed-area table)."""
    c = np.pad(a.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[patch:, patch:] - c[:-patch, patch:] - c[patch:, :-patch] + c[:-patch, :-patch]) / patch ** 2


class Patches:
    def __init__(self, maps: np.ndarray, uv: np.ndarray, patch: int, rng: np.random.Generator,
                 detail_share: float = 0.0):
        self.maps, self.patch, self.rng, self.detail_share = maps, patch, rng, detail_share
        n = maps.shape[-1]
        # patch corners whose patch is at least half on the face
        ys, xs = np.nonzero(_box_means(uv, patch)[: n - patch + 1: 4, : n - patch + 1: 4] > 0.5)
        self.corners = np.stack([ys * 4, xs * 4], 1)
        if not len(self.corners):
            raise ValueError(f"no {patch}² patch of these {n}² maps is half on the face: use a smaller patch")
        self.detail_cdf = None
        if detail_share > 0.0:
            # per map, each corner's share of what bicubic misses (|HR - bicubic(area(HR))| in the patch)
            t = torch.from_numpy(np.ascontiguousarray(maps))[:, None]
            miss = (t - F.interpolate(F.avg_pool2d(t, SCALE), scale_factor=SCALE, mode="bicubic",
                                      align_corners=False)).abs()[:, 0].numpy()
            w = np.maximum(np.stack([_box_means(m, patch)[self.corners[:, 0], self.corners[:, 1]] for m in miss]), 0.0)
            # cumulative, for inverse-transform sampling (np.random.choice is strict about sums)
            self.detail_cdf = np.cumsum(w, 1) / np.maximum(w.sum(1, keepdims=True), 1e-12)

    def get(self, b: int) -> np.ndarray:
        i = self.rng.integers(len(self.maps), size=b)
        k = self.rng.integers(len(self.corners), size=b)
        if self.detail_cdf is not None:
            for j in np.nonzero(self.rng.random(b) < self.detail_share)[0]:
                k[j] = min(int(np.searchsorted(self.detail_cdf[i[j]], self.rng.random())), len(self.corners) - 1)
        c = self.corners[k]
        p = self.patch
        out = np.stack([self.maps[k, y:y + p, x:x + p] for k, (y, x) in zip(i, c)])
        flip = self.rng.random(b) < 0.5  # left/right faces mirror; up/down do not
        out[flip] = out[flip, :, ::-1]
        return np.ascontiguousarray(out)


def train_rcan(data: dict, out_dir: str | os.PathLike, cfg: SRConfig = SRConfig(), device: str | None = None,
               log=print) -> dict:
    """Train (or resume) RCAN on loaded 1024² shards; ``<out>/checkpoint.pt``, ``losses.jsonl``.
    One process: under torchrun every rank would train the same net into the same files."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("RCAN training runs in one process: start it without torchrun")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    net = RCAN(cfg.net).to(dev)
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.05)
    rng = np.random.default_rng(cfg.seed)
    start = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        st = torch.load(ckpt, map_location=dev, weights_only=False)
        net.load_state_dict(st["net"]), opt.load_state_dict(st["opt"]), sched.load_state_dict(st["sched"])
        start = st["step"]
        rng.bit_generator.state = st["np_rng"]
        torch.set_rng_state(st["torch_rng"])
        log(f"resumed at step {start}")
    maps, seeds = hr_maps(data)
    train_maps = maps[seeds % cfg.holdout_every != 0]
    patches = Patches(train_maps, data["mask"], cfg.patch, rng, cfg.detail_share)
    t0 = time.perf_counter()
    last = {}
    with open(out / "losses.jsonl", "a", encoding="utf-8") as lf:
        for step in range(start, cfg.steps):
            hr = torch.from_numpy(patches.get(cfg.batch))[:, None].to(dev)
            lr_ = F.avg_pool2d(hr, SCALE)
            pred = net(lr_)
            loss = (pred - hr).abs().mean()
            bic = (F.interpolate(lr_, scale_factor=SCALE, mode="bicubic", align_corners=False) - hr).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            last = {"l1": loss.item(), "l1_bicubic": bic.item()}
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                lf.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in last.items()},
                                     "s": round(time.perf_counter() - t0, 1)}) + "\n")
                lf.flush()
            if (step + 1) % cfg.ckpt_every == 0 or step == cfg.steps - 1:
                with replacing(ckpt) as tmp:
                    torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                                "step": step + 1, "np_rng": rng.bit_generator.state,
                                "torch_rng": torch.get_rng_state(), "config": asdict(cfg)}, tmp)
    return last


def masked_psnr_ssim(pred: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM over the face texels (the empty UV area would flatter both); the peak is the
    reference's range on the face."""
    on = mask > 0.5
    rng = float(ref[on].max() - ref[on].min()) or 1.0
    mse = float(np.mean((pred[on] - ref[on]) ** 2))
    psnr = 10.0 * np.log10(rng ** 2 / max(mse, 1e-20))
    _, smap = structural_similarity(ref, pred, data_range=rng, full=True)
    return psnr, float(smap[on].mean())
