"""An AU regressor on detail maps, for evaluation only (issue #6 §4): trained on its own, on the
training identities' physical maps, never used to train DetH (D_Exp has its own AU head), so
"does DetH's output carry the target AUs" is judged by a model DetH could not have fitted.

Input a 256² map; output the 47 rig controls (0..1).
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
from torch import nn

from .nets import MM_SCALE


@dataclass(frozen=True)
class AURegConfig:
    n_aus: int = 47
    width: int = 16
    levels: int = 5


class AURegressor(nn.Module):
    def __init__(self, cfg: AURegConfig = AURegConfig()):
        super().__init__()
        self.cfg = cfg
        chans = [cfg.width * 2 ** min(i, 3) for i in range(cfg.levels + 1)]
        layers: list[nn.Module] = [nn.Conv2d(2, chans[0], 3, padding=1), nn.LeakyReLU(0.2)]
        for i in range(cfg.levels):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        # where a wrinkle is says which AU made it: keep a coarse spatial layout (6×6)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * 36, 128), nn.LeakyReLU(0.2),
                                  nn.Linear(128, cfg.n_aus))

    def forward(self, d, uv_mask):
        h = self.features(torch.cat([d / MM_SCALE, uv_mask], 1))
        h = F.adaptive_avg_pool2d(h, 6)
        return torch.sigmoid(self.head(h))


@dataclass
class AURegTrainConfig:
    steps: int = 1500
    batch: int = 16
    lr: float = 5e-4
    seed: int = 0
    log_every: int = 25
    holdout_every: int = 10
    net: AURegConfig = AURegConfig()


def train_aureg(data: dict, out_dir: str | os.PathLike, cfg: AURegTrainConfig = AURegTrainConfig(),
                device: str | None = None, log=print) -> dict:
    """Train on both maps of every training sample (D(I_x) with x, D(I_y) with y). Not resumable:
    a few minutes on a CPU; writes ``<out>/aureg.pt`` and ``losses.jsonl``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = AURegressor(cfg.net).to(dev)
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr * 0.05)
    train_idx = np.flatnonzero(data["seed"] % cfg.holdout_every != 0)
    maps = np.concatenate([data["dx"][train_idx], data["dy"][train_idx]])
    labels = np.concatenate([data["x"][train_idx], data["y"][train_idx]]).astype(np.float32)
    uv = torch.from_numpy(data["mask"].astype(np.float32))[None, None].to(dev)
    t0 = time.perf_counter()
    last = {}
    with open(out / "losses.jsonl", "w", encoding="utf-8") as lf:
        for step in range(cfg.steps):
            i = rng.integers(len(maps), size=cfg.batch)
            d = torch.from_numpy(maps[i].astype(np.float32))[:, None].to(dev)
            y = torch.from_numpy(labels[i]).to(dev)
            loss = F.mse_loss(net(d, uv.expand(cfg.batch, -1, -1, -1)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            last = {"mse": loss.item()}
            if step % cfg.log_every == 0 or step == cfg.steps - 1:
                lf.write(json.dumps({"step": step, "mse": round(loss.item(), 6),
                                     "s": round(time.perf_counter() - t0, 1)}) + "\n")
                lf.flush()
    torch.save({"net": net.state_dict(), "config": asdict(cfg)}, out / "aureg.pt")
    return last


@torch.no_grad()
def predict(net: AURegressor, maps: np.ndarray, uv: np.ndarray, batch: int = 32) -> np.ndarray:
    dev = next(net.parameters()).device
    m = torch.from_numpy(uv.astype(np.float32))[None, None].to(dev)
    out = []
    for s in range(0, len(maps), batch):
        d = torch.from_numpy(np.asarray(maps[s:s + batch], np.float32))[:, None].to(dev)
        out.append(net(d, m.expand(len(d), -1, -1, -1)).cpu().numpy())
    return np.concatenate(out)
