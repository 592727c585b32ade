"""Training DetH against D_Exp (FaceDet3D §3.2.1) on the synthetic pairs (``data.py``).

Losses, per step (weights in :class:`TrainConfig`):
- D_Exp: non-saturating GAN loss on its image and pixel realism outputs (real: maps of the
  data, fake: DetH's), the lazy R1 penalty on real maps (Mescheder et al. 2018), and the AU
  regression loss on real maps (Eq. 6).
- DetH: non-saturating adversarial loss, the AU loss through D_Exp's head (Eq. 7), cycle
  consistency x→y→x, the paired target where a pair exists (every synthetic sample is one: the
  paper's weak supervision), and an L1 penalty on the mask so detail the expression does not
  touch is kept (Eq. 4).

Paired and cycle terms compare maps **phase-free** (:func:`wrinkle_features`): a low-pass of the
map (folds, bulges) and its local structure tensor (wrinkle depth and direction, not where each
crest lies), plus a light exact L1. Why: where the source shows no wrinkles the crest positions
of the target's are not in the inputs (the physical model seeds them per person), and an exact
L1 is then minimised by the average of all possible stripes — flat. The first runs (exact L1
only) learned exactly that: they erased the source's wrinkles and drew none of the target's
(docs/deth.md). Each term is averaged over the face and again over the texels the expression
change moves (|D(I_y) − D(I_x)| > ``move_mm``): over the face alone the few moving texels weigh
so little that copying the input is a strong minimum.
All losses are averaged over the texels the face mesh covers (``mask`` of the data).

Resumable: ``<out>/checkpoint.pt`` (nets, optimisers, step, RNG states) every
``ckpt_every`` steps, losses appended to ``<out>/losses.jsonl``. Fixed seed. Runs on CUDA when
present.

Data parallel under ``torchrun`` (rank and world from the environment; NCCL on GPUs, gloo on
CPUs): ``batch`` is the global batch, every rank draws the same global batch from the same seed
and trains on its share, the nets start from rank 0's weights, and each optimiser step uses the
gradients averaged over the ranks (an all-reduce after backward, as StyleGAN2-ADA does, rather
than DistributedDataParallel: DDP does not support the double backward of the R1 penalty, and
both nets run several forwards per backward). No loss uses batch statistics (instance norm) and
the masked means divide by the mask's size over the whole batch (:func:`masked_mean`), so N ranks
take the same steps as one process on the whole batch;
``tests/backend/test_learned_train.py`` checks it with two gloo processes. The logged losses are
averaged over the ranks.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..nets import DetH, DetHConfig, DExp, feature_sigma, wrinkle_features
from .. import checkpoint
from ..distributed import average_grads, average_stats, broadcast_weights, exit_worker, masked_mean, process_group  # noqa: F401 (exit_worker: the CLI's)


@dataclass
class TrainConfig:
    steps: int = 1950
    batch: int = 4
    lr_g: float = 3e-4
    warmup: int = 1800         # first steps: paired losses only (no D_Exp, no cycle), at lr_g_warmup:
    #                            a third of a full step's cost, and the adversarial terms start from a
    #                            net that already draws the right wrinkles in the right places
    lr_g_warmup: float = 1e-3
    lr_d: float = 2e-4
    betas: tuple = (0.5, 0.99)
    r1_gamma: float = 1.0
    r1_every: int = 4
    w_adv: float = 1.0
    w_au: float = 5.0
    w_cyc: float = 5.0
    w_l1: float = 1.0          # exact L1 (keeps the person's detail where nothing moves)
    w_pf: float = 10.0         # phase-free distance on the face
    w_pf_move: float = 10.0    # ... and on the moving texels
    move_mm: float = 0.02
    feature_sigma: float = 3.0  # texels at 256² (scaled with the map size): the structure tensor's window
    w_mask: float = 0.02
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 10
    holdout_every: int = 10  # identities with seed % holdout_every == 0 are never trained on
    deth: DetHConfig = field(default_factory=DetHConfig)


def phase_free(a, b, m, sigma: float, moving=None):
    """Mean |features(a) − features(b)| over the face, and over ``moving`` when given."""
    fa, fb = wrinkle_features(a, m, sigma), wrinkle_features(b, m, sigma)
    diff = (fa - fb).abs()
    return masked_mean(diff, m), (masked_mean(diff, moving) if moving is not None else None)


class Batches:
    """Random training batches (source/target swapped half of the time) from loaded shards."""

    def __init__(self, d: dict, idx: np.ndarray, device, rng: np.random.Generator, n_identity: int):
        self.d, self.idx, self.device, self.rng = d, idx, device, rng
        self.uv = torch.from_numpy(d["mask"].astype(np.float32))[None, None].to(device)
        self.n_identity = n_identity

    def get(self, b: int, rank: int = 0, world: int = 1) -> dict:
        """The global batch of ``b`` samples is drawn alike on every rank; this rank keeps its share."""
        i = self.rng.choice(self.idx, size=b, replace=len(self.idx) < b)
        swap = self.rng.random(b) < 0.5
        share = slice(rank * b // world, (rank + 1) * b // world)
        i, swap = i[share], swap[share]
        b = len(i)
        d = self.d
        src = np.where(swap[:, None, None], d["dy"][i], d["dx"][i]).astype(np.float32)
        tgt = np.where(swap[:, None, None], d["dx"][i], d["dy"][i]).astype(np.float32)
        x = np.where(swap[:, None], d["y"][i], d["x"][i])
        y = np.where(swap[:, None], d["x"][i], d["y"][i])
        ident = np.zeros((b, self.n_identity), np.float32)
        k = min(self.n_identity, d["identity"].shape[1])
        ident[:, :k] = d["identity"][i][:, :k]
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        return {"dx": t(src)[:, None], "dy": t(tgt)[:, None], "x": t(x.astype(np.float32)),
                "y": t(y.astype(np.float32)), "identity": t(ident),
                "faceid": torch.zeros(b, 128, device=self.device), "has_faceid": torch.zeros(b, 1, device=self.device),
                "age": t(d["age"][i].astype(np.float32))[:, None], "uv_mask": self.uv.expand(b, -1, -1, -1)}


def _deth_inputs(bt: dict, dx, x, y) -> dict:
    return dict(dx=dx, uv_mask=bt["uv_mask"], x=x, y=y, identity=bt["identity"], faceid=bt["faceid"],
                has_faceid=bt["has_faceid"], age=bt["age"])


def d_step(G, D, opt_d, bt, cfg: TrainConfig, step: int) -> dict:
    with torch.no_grad():
        fake = G(**_deth_inputs(bt, bt["dx"], bt["x"], bt["y"]))[0]
    m = bt["uv_mask"]
    real = bt["dy"].requires_grad_(step % cfg.r1_every == 0)
    r_real, p_real, au_real = D(real, m)
    r_fake, p_fake, _ = D(fake, m)
    adv = (F.softplus(-r_real).mean() + F.softplus(r_fake).mean()
           + masked_mean(F.softplus(-p_real), m) + masked_mean(F.softplus(p_fake), m))
    au = F.mse_loss(au_real, bt["y"])
    loss = adv + cfg.w_au * au
    r1 = torch.zeros((), device=real.device)
    if real.requires_grad:
        g, = torch.autograd.grad(r_real.sum() + (p_real * m).sum() / m[0].sum(), real, create_graph=True)
        r1 = g.pow(2).flatten(1).sum(1).mean()
        loss = loss + cfg.r1_gamma / 2 * r1 * cfg.r1_every
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    average_grads(D)
    opt_d.step()
    return {"d_adv": adv.item(), "d_au": au.item(), "d_r1": r1.item()}


def g_step(G, D, opt_g, bt, cfg: TrainConfig, full: bool = True) -> dict:
    """One DetH step; ``full`` False (warm-up): the paired and mask terms only."""
    m = bt["uv_mask"]
    fake, _, mask = G(**_deth_inputs(bt, bt["dx"], bt["x"], bt["y"]))
    sigma = feature_sigma(m.shape[-1], cfg.feature_sigma)
    adv = au_loss = cyc = torch.zeros((), device=fake.device)
    if full:
        r, p, au = D(fake, m)
        adv = F.softplus(-r).mean() + masked_mean(F.softplus(-p), m)
        au_loss = F.mse_loss(au, bt["y"])
        back = G(**_deth_inputs(bt, fake, bt["y"], bt["x"]))[0]
        cyc = phase_free(back, bt["dx"], m, sigma)[0]
    l1 = masked_mean((fake - bt["dy"]).abs(), m)
    moving = ((bt["dy"] - bt["dx"]).abs() > cfg.move_mm).float() * m
    pf, pf_move = phase_free(fake, bt["dy"], m, sigma, moving)
    mreg = masked_mean(mask, m)
    loss = (cfg.w_adv * adv + cfg.w_au * au_loss + cfg.w_cyc * cyc + cfg.w_l1 * l1 + cfg.w_pf * pf
            + cfg.w_pf_move * pf_move + cfg.w_mask * mreg)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    average_grads(G)
    opt_g.step()
    with torch.no_grad():  # what copying the input would score, for the log
        l1_move = masked_mean((fake - bt["dy"]).abs(), moving)
        copy_move = masked_mean((bt["dx"] - bt["dy"]).abs(), moving)
        copy_pf_move = phase_free(bt["dx"], bt["dy"], m, sigma, moving)[1]
    return {"g_adv": adv.item(), "g_au": au_loss.item(), "cyc": cyc.item(), "l1": l1.item(),
            "pf": pf.item(), "pf_move": pf_move.item(), "copy_pf_move": copy_pf_move.item(),
            "l1_move": l1_move.item(), "copy_move": copy_move.item(), "mask": mreg.item()}


def split(seeds: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    held = seeds % every == 0
    return np.flatnonzero(~held), np.flatnonzero(held)


def train(data: dict, out_dir: str | os.PathLike, cfg: TrainConfig = TrainConfig(), device: str | None = None,
          log=print) -> dict:
    """Train (or resume) on loaded shards ``data`` (``data.load_shards``); returns the last losses."""
    with process_group() as (rank, world):
        return _train(data, out_dir, cfg, device, log, rank, world)


def _train(data: dict, out_dir, cfg: TrainConfig, device, log, rank: int, world: int) -> dict:
    if cfg.batch % world:
        raise ValueError(f"the global batch ({cfg.batch}) must divide among the {world} processes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    G, D = DetH(cfg.deth).to(dev), DExp(cfg.deth.n_aus).to(dev)
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, betas=cfg.betas)
    rng = np.random.default_rng(cfg.seed)  # the same on every rank: they draw the same global batch
    ckpt = out / "checkpoint.pt"
    parts = {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d}
    start = checkpoint.resume(ckpt, parts, rng, dev, log)
    broadcast_weights(G), broadcast_weights(D)
    train_idx, _ = split(data["seed"], cfg.holdout_every)
    batches = Batches(data, train_idx, dev, rng, cfg.deth.n_identity)
    last: dict = {}
    t0 = time.perf_counter()
    with open(out / "losses.jsonl", "a", encoding="utf-8") as lf:
        for step in range(start, cfg.steps):
            bt = batches.get(cfg.batch, rank, world)
            full = step >= cfg.warmup
            for g in opt_g.param_groups:
                g["lr"] = cfg.lr_g if full else cfg.lr_g_warmup
            last = average_stats({**(d_step(G, D, opt_d, bt, cfg, step) if full else {}),
                                  **g_step(G, D, opt_g, bt, cfg, full)})
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps - 1):
                lf.write(json.dumps({"step": step, **{k: round(v, 5) for k, v in last.items()},
                                     "s": round(time.perf_counter() - t0, 1)}) + "\n")
                lf.flush()
            if rank == 0 and ((step + 1) % cfg.ckpt_every == 0 or step == cfg.steps - 1):
                checkpoint.save(ckpt, parts, step + 1, rng, asdict(cfg))
    return last
