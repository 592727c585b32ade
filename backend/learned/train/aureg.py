"""An AU regressor on detail maps, for evaluation only (issue #6 §4): trained on its own, on the
training identities' physical maps, never used to train DetH (D_Exp has its own AU head), so
"does DetH's output carry the target AUs" is judged by a model DetH could not have fitted.

Input a map (any square size; 256² in practice); output the 47 rig controls (0..1). The model
reads the map's phase-free wrinkle features (``nets.wrinkle_features``: low-pass, wrinkle
magnitude and direction) averaged over a 16 × 16 grid of the UV tile — which AU acts is told by
where wrinkles are, how deep and which way they run, not by where each crest lies, so a
hallucinated wrinkle of the right kind counts whatever its phase — and maps them linearly to the
controls, fitted in closed form (ridge regression), clipped to 0..1.

Why closed form: two gradient-trained conv regressors (on the raw map, then on these features)
collapsed to a constant within the CPU budget (the mean AU vector after 400 steps; all zeros
after 800), which made every method score the same MAE. A linear read-out of regional wrinkle
features cannot collapse, is fitted in seconds, and is deterministic.
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

from .. import weights
from ..nets import feature_sigma, wrinkle_features


@dataclass(frozen=True)
class AURegConfig:
    n_aus: int = 47
    grid: int = 16              # features averaged over grid × grid cells of the tile
    feature_sigma: float = 3.0  # texels at 256², as DetH's training


class AURegressor(nn.Module):
    def __init__(self, cfg: AURegConfig = AURegConfig()):
        super().__init__()
        self.cfg = cfg
        n = 5 * cfg.grid ** 2
        self.register_buffer("centre", torch.zeros(n))
        self.head = nn.Linear(n, cfg.n_aus)

    def features(self, d, uv_mask):
        """(B, 5·grid²): the wrinkle features and the UV coverage, cell means."""
        f = torch.cat([wrinkle_features(d, uv_mask, feature_sigma(d.shape[-1], self.cfg.feature_sigma)), uv_mask], 1)
        return F.adaptive_avg_pool2d(f, self.cfg.grid).flatten(1)

    def forward(self, d, uv_mask):
        return self.head(self.features(d, uv_mask) - self.centre).clamp(0.0, 1.0)


# The weights files training and evaluation read and write: the serving nets and this one.
NETS = {**weights.NETS, "aureg": (AURegressor, AURegConfig)}


@dataclass
class AURegTrainConfig:
    ridge: float = 0.1          # × the mean feature variance (× samples): the regularisation
    holdout_every: int = 10
    net: AURegConfig = AURegConfig()


@torch.no_grad()
def train_aureg(data: dict, out_dir: str | os.PathLike, cfg: AURegTrainConfig = AURegTrainConfig(),
                device: str | None = None, log=print) -> dict:
    """Fit on both maps of every training sample (D(I_x) with x, D(I_y) with y); writes
    ``<out>/aureg.pt`` and ``losses.jsonl`` (the fit's training MSE against the mean predictor's)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    net = AURegressor(cfg.net)
    train_idx = np.flatnonzero(data["seed"] % cfg.holdout_every != 0)
    if not len(train_idx):
        raise ValueError("no training identities (every seed is held out)")
    maps = np.concatenate([data["dx"][train_idx], data["dy"][train_idx]])
    labels = np.concatenate([data["x"][train_idx], data["y"][train_idx]]).astype(np.float64)
    X = np.concatenate([_features(net, maps[s:s + 64], data["mask"]) for s in range(0, len(maps), 64)])
    mu, ybar = X.mean(0), labels.mean(0)
    Xc = X - mu
    lam = cfg.ridge * float((Xc ** 2).mean()) * len(X)
    W = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ (labels - ybar))
    net.centre.copy_(torch.from_numpy(mu.astype(np.float32)))
    net.head.weight.copy_(torch.from_numpy(W.T.astype(np.float32)))
    net.head.bias.copy_(torch.from_numpy(ybar.astype(np.float32)))
    pred = np.clip(Xc @ W + ybar, 0, 1)
    last = {"mse": float(((pred - labels) ** 2).mean()), "mse_mean_predictor": float(((labels - ybar) ** 2).mean()),
            "samples": int(len(X)), "s": round(time.perf_counter() - t0, 1)}
    (out / "losses.jsonl").write_text(json.dumps(last) + "\n", encoding="utf-8")
    torch.save({"net": net.state_dict(), "config": asdict(cfg)}, out / "aureg.pt")
    log(f"AU regressor: training MSE {last['mse']:.4f} (mean predictor {last['mse_mean_predictor']:.4f})")
    return last


def _features(net: AURegressor, maps: np.ndarray, uv: np.ndarray) -> np.ndarray:
    d = torch.from_numpy(np.asarray(maps, np.float32))[:, None]
    m = torch.from_numpy(uv.astype(np.float32))[None, None].expand(len(d), -1, -1, -1)
    return net.features(d, m).double().numpy()


@torch.no_grad()
def predict(net: AURegressor, maps: np.ndarray, uv: np.ndarray, batch: int = 32) -> np.ndarray:
    dev = next(net.parameters()).device
    m = torch.from_numpy(uv.astype(np.float32))[None, None].to(dev)
    out = []
    for s in range(0, len(maps), batch):
        d = torch.from_numpy(np.asarray(maps[s:s + batch], np.float32))[:, None].to(dev)
        out.append(net(d, m.expand(len(d), -1, -1, -1)).cpu().numpy())
    return np.concatenate(out)
