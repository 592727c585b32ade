"""Training the neural renderer R (FaceDet3D §3.3.1) on prepared subjects (``subject``), and one
person's training as the backend serves it (``train_subject``, method ``neural_train``): it lives
beside the renderer, not in ``learned.train``, because the installed extension trains each person's
renderer and leaves the development-only ``learned/train/`` out.

Per step, per subject (one view, one fake detail map, drawn at random):
- **photometric**: R through the photo's own detailed geometry must give the photo (L1 and
  LapLoss over the face tile, weighted by its fade);
- **Augmented Wrinkle Loss** (Eq. 15): R through the geometry with fake details must give the
  photo re-shaded with them (LapLoss). The texture map holds nothing of those details, so only
  the detailed raster can supply them;
- **Detailed Shading Loss** (Eq. 16): the reader f (two convolutions) must read the detailed
  shading back from R's images. f itself is trained on the true pairs (photo or re-shaded photo,
  its detailed shading), never through R's images: trained through them, f and R could agree
  on a private code instead of on visible shading.
- **Expression adversarial loss** (§3.3, with ``expression`` > 0; generic training over many
  photos): a critic D (:class:`nets.ExpressionCritic`) learns to tell the photos from R's renders
  and to read each photo's AUs (the reconstruction's readout, the only AU labels there are offline),
  with the non-saturating loss and an R1 penalty on the photos; R is trained to look real to D and to
  show the photo's AUs to D's AU head. Off for one person's training: with one photo D learns that
  one image, which the photometric loss already asks for, and has one AU vector to learn AUs from.

Data parallel under ``torchrun`` like DetH's trainer (``dist``): each rank trains on its own
subject per step, gradients averaged. Fixed seed; ``checkpoint.pt`` and ``losses.jsonl`` in the
output folder when one is given.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from protocol import jsonfile
from protocol import job as job_files

from ...core.progress import Job
from ...detail.face import ReconstructedFace
from ...detail.photo.extract import METHOD_VERSION as DETAIL_METHOD
from ...detail.photo.relight import METHOD_VERSION as LIGHTING_METHOD
from .. import checkpoint
from .. import weights as weights_io
from . import frame
from .nets import ExpressionCritic, NeuralConfig, NeuralRenderer, ShadingReader, laplacian_pyramid_loss
from .subject import Subject, prepare
from ..distributed import average_grads, average_stats, broadcast_weights, process_group


@dataclass
class NeuralTrainConfig:
    steps: int = 600
    lr: float = 1e-3
    lr_reader: float = 2e-3
    photometric: float = 1.0
    augw: float = 1.0  # 0: the ablation without the Augmented Wrinkle Loss
    dsl: float = 0.5  # 0: without the Detailed Shading Loss
    expression: float = 0.0  # the expression adversarial loss's weight (adversarial + AU terms); 0: off
    lr_critic: float = 2e-4
    r1: float = 1.0  # R1 gradient penalty on the photos (Mescheder et al. 2018), gamma
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 200
    net: NeuralConfig = field(default_factory=NeuralConfig)


def _t(a: np.ndarray, dev) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).unsqueeze(0).to(dev)


def blend(pred, target, w):
    """``pred`` where the weight is 1, the target where it is 0: a loss on the blend is the
    loss over the face tile, faded like the composite."""
    return pred * w + target * (1 - w)


class Draw:
    """Tensors of one (view, fake map) draw of a subject."""

    def __init__(self, subject: Subject, rng: np.random.Generator, dev):
        v = subject.views[int(rng.integers(len(subject.views)))]
        z = int(rng.integers(len(v.aug_detail))) if v.aug_detail else None
        self.texture = _t(subject.texture, dev)
        self.uv = torch.from_numpy(v.uv).unsqueeze(0).to(dev)
        self.w = _t(v.weight, dev)
        self.mask = (self.w > 0).float()
        self.target, self.sp, self.sd, self.shading = (_t(a, dev) for a in (v.target, v.shaded_proxy,
                                                                            v.shaded_detail, v.shading))
        self.aug = None if z is None else tuple(_t(a[z], dev) for a in (v.aug_detail, v.aug_target, v.aug_shading))
        self.aus = torch.from_numpy(np.asarray(subject.aus, np.float32)).unsqueeze(0).to(dev)


def critic_loss(D: ExpressionCritic, real, fake, aus, cfg: NeuralTrainConfig) -> tuple[torch.Tensor, dict]:
    """D's loss: non-saturating real/fake, R1 on the photo, the photo's AUs from its AU head."""
    real = real.detach().requires_grad_(True)
    r_logit, r_aus = D(real)
    f_logit, _ = D(fake.detach())
    (grad,) = torch.autograd.grad(r_logit.sum(), real, create_graph=True)
    r1 = grad.pow(2).sum((1, 2, 3)).mean()
    au = F.mse_loss(r_aus, aus)
    loss = F.softplus(-r_logit).mean() + F.softplus(f_logit).mean() + 0.5 * cfg.r1 * r1 + au
    return loss, {"critic": loss.item(), "critic_au": au.item()}


def step_losses(R: NeuralRenderer, f: ShadingReader, d: Draw, cfg: NeuralTrainConfig,
                D: ExpressionCritic | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict]:
    """(R's loss, f's loss, D's loss or None, logged values) of one draw."""
    ntm = R.neural_texture(d.texture)
    pred, _ = R.tex2im(ntm, d.uv, d.sp, d.sd, d.mask)
    l1 = ((pred - d.target).abs() * d.w).sum() / (d.w.sum() * 3).clamp_min(1.0)
    photo = l1 + laplacian_pyramid_loss(blend(pred, d.target, d.w), d.target)
    loss = cfg.photometric * photo
    stats = {"photo": photo.item()}
    reads = [(d.target, d.shading)]
    if d.aug is not None and (cfg.augw > 0 or cfg.dsl > 0):
        sd_z, target_z, shading_z = d.aug
        pred_z, _ = R.tex2im(ntm, d.uv, d.sp, sd_z, d.mask)
        augw = laplacian_pyramid_loss(blend(pred_z, target_z, d.w), target_z)
        stats["augw"] = augw.item()
        loss = loss + cfg.augw * augw
        reads.append((target_z, shading_z))
        if cfg.dsl > 0:
            dsl = (laplacian_pyramid_loss(blend(f(pred_z), shading_z, d.w), shading_z)
                   + laplacian_pyramid_loss(blend(f(pred), d.shading, d.w), d.shading))
            stats["dsl"] = dsl.item()
            loss = loss + cfg.dsl * dsl
    reader = sum(laplacian_pyramid_loss(blend(f(img), s, d.w), s) for img, s in reads)
    stats["reader"] = reader.item()
    critic = None
    if D is not None:
        fake = blend(pred, d.target, d.w)  # the render where the face is, the photo around it
        f_logit, f_aus = D(fake)
        adv, au = F.softplus(-f_logit).mean(), F.mse_loss(f_aus, d.aus)
        loss = loss + cfg.expression * (adv + au)
        stats["adv"], stats["au"] = adv.item(), au.item()
        critic, cstats = critic_loss(D, d.target, fake, d.aus, cfg)
        stats.update(cstats)
    return loss, reader, critic, stats


def train(subjects: list[Subject], cfg: NeuralTrainConfig = NeuralTrainConfig(), out_dir: str | os.PathLike | None = None,
          init: Optional[NeuralRenderer] = None, progress: Callable[[int, dict], None] | None = None,
          device: str | None = None, log=print) -> tuple[NeuralRenderer, ShadingReader, dict]:
    """Train R (from ``init`` when given, e.g. generic weights to fine-tune) and f on ``subjects``;
    ``progress(step, stats)`` after every step (it may raise to cancel). Returns (R, f, last stats)."""
    if not subjects:
        raise ValueError("no subjects to train on")
    with process_group() as (rank, world):
        return _train(subjects, cfg, out_dir, init, progress, device, log, rank, world)


def _train(subjects, cfg: NeuralTrainConfig, out_dir, init, progress, device, log, rank: int, world: int):
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    R = NeuralRenderer(cfg.net).to(dev)
    if init is not None:
        R.load_state_dict(init.state_dict())
    f = ShadingReader().to(dev)
    opt = torch.optim.Adam(R.parameters(), cfg.lr, betas=(0.9, 0.99))
    opt_f = torch.optim.Adam(f.parameters(), cfg.lr_reader, betas=(0.9, 0.99))
    D = opt_D = None
    if cfg.expression > 0:
        names = {s.au_names for s in subjects}
        if len(names) != 1 or not next(iter(names)):
            raise ValueError("the expression loss needs every subject's AUs under the same names (one face model)")
        D = ExpressionCritic(len(next(iter(names)))).to(dev)
        opt_D = torch.optim.Adam(D.parameters(), cfg.lr_critic, betas=(0.0, 0.99))
    rng = np.random.default_rng(cfg.seed)  # the same on every rank: each takes its own subject of a draw
    start = 0
    out = Path(out_dir) if out_dir is not None else None
    ckpt = out / "checkpoint.pt" if out is not None else None
    parts = {"R": R, "f": f, "opt": opt, "opt_f": opt_f}
    if D is not None:
        parts.update(D=D, opt_D=opt_D)
    if ckpt is not None:
        start = checkpoint.resume(ckpt, parts, rng, dev, log)
    broadcast_weights(R), broadcast_weights(f)
    if D is not None:
        broadcast_weights(D)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.steps, 1), eta_min=cfg.lr * 0.05,
                                                       last_epoch=start - 1 if start else -1)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    last: dict = {}
    t0 = time.perf_counter()
    for step in range(start, cfg.steps):
        picks = rng.integers(len(subjects), size=world)
        d = Draw(subjects[int(picks[rank])], np.random.default_rng(rng.integers(1 << 62) + rank), dev)
        loss, reader, critic, stats = step_losses(R, f, d, cfg, D)
        opt.zero_grad(set_to_none=True)
        opt_f.zero_grad(set_to_none=True)
        loss.backward()
        average_grads(R)
        opt.step()
        sched.step()
        opt_f.zero_grad(set_to_none=True)  # f learns from the true pairs only (see the docstring)
        reader.backward()
        average_grads(f)
        opt_f.step()
        if D is not None:  # D's own step (R's loss also reached D's weights: cleared first)
            opt_D.zero_grad(set_to_none=True)
            critic.backward()
            average_grads(D)
            opt_D.step()
        last = average_stats(stats)
        if progress is not None:
            progress(step, last)
        if rank == 0 and out is not None and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            with open(out / "losses.jsonl", "a", encoding="utf-8") as lf:
                lf.write(json.dumps({"step": step, **{k: round(v, 5) for k, v in last.items()},
                                     "s": round(time.perf_counter() - t0, 1)}) + "\n")
        if rank == 0 and ckpt is not None and ((step + 1) % cfg.ckpt_every == 0 or step == cfg.steps - 1):
            checkpoint.save(ckpt, parts, step + 1, rng, asdict(cfg))
    R.eval(), f.eval()
    return R, f, last


METHOD_VERSION = 1  # the subject's views, losses and nets: a change retrains every person's renderer


def train_subject(job_dir: str, steps: int = NeuralTrainConfig.steps, job: Job | None = None,
                  cfg: NeuralTrainConfig | None = None) -> dict:
    """Train the renderer of the face in ``job_dir`` on its own photo (backend method
    ``neural_train``), once: a request whose stamp (photo, fit, methods, steps) matches the stored
    renderer's returns at once. Starts from the generic weights (``neural.safetensors`` in the
    weights folder) when there are any. The weights are written only when training finished."""
    job = job or Job()
    cfg = cfg or NeuralTrainConfig(steps=steps)
    folder = frame.weights_folder(job_dir)
    face = ReconstructedFace.open(job_dir)
    init, init_name = None, "scratch"
    if weights_io.available("neural"):
        init, meta = weights_io.load("neural", nets=frame.NETS)
        init_name = f"generic ({meta['info'].get('name', 'neural.safetensors')})"
        cfg = dataclasses.replace(cfg, net=init.cfg)
    stamp = {"source": face.rec.source_key(), "method": METHOD_VERSION, "detail_method": DETAIL_METHOD,
             "lighting_method": LIGHTING_METHOD, "steps": cfg.steps, "init": init_name, "net": asdict(cfg.net)}
    old = frame.info(job_dir)
    if old.get("stamp") == stamp and frame.trained(job_dir):
        job.report(1.0, "The neural renderer was already trained")
        return {"job_dir": str(Path(job_dir).resolve()), "stats": old.get("stats", {}), "trained": False}
    t0 = time.perf_counter()
    job.report(0.0, "Preparing the training views")
    subject = prepare(job_dir, job=job.child(0.0, 0.15))
    t1 = time.perf_counter()
    train_job = job.child(0.15, 1.0)

    def progress(step: int, stats: dict) -> None:
        train_job.check()
        if step % 10 == 0 or step == cfg.steps - 1:
            train_job.report((step + 1) / cfg.steps, f"Training the neural renderer: step {step + 1} of {cfg.steps}")

    R, _, last = train([subject], cfg, init=init, progress=progress, log=lambda *_: None)
    stats = {"steps": cfg.steps, "prepare_s": round(t1 - t0, 1), "train_s": round(time.perf_counter() - t1, 1),
             "losses": {k: round(v, 5) for k, v in last.items()}, "init": init_name}
    weights_io.export(R, "neural", weights_io.path_for("neural", folder),
                      {"name": f"per-subject renderer of {Path(face.rec.image).name}", "data": "one photo",
                       "steps": cfg.steps}, nets=frame.NETS)
    jsonfile.write_atomic(folder / job_files.NEURAL_INFO, {"stamp": stamp, "stats": stats})
    job.report(1.0, "The neural renderer is trained")
    return {"job_dir": str(Path(job_dir).resolve()), "stats": stats, "trained": True}
