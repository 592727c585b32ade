"""Command lines for the learned nets (wired into ``python -m backend``):

    synth   --out DIR --n N [--start S] [--size 256|1024]     synthetic shards (resumable; N identities)
    train   deth|rcan|aureg --data DIR --out DIR [--steps N]  resumable (deth, rcan), fixed seed
    export  deth|rcan|aureg --run DIR [--to FILE]             checkpoint -> safetensors + metadata
    eval    --data DIR --hr-data DIR [--out FILE]            held-out figures (docs/deth.md)
    au-data --out FILE --n N [--seed S]                      renders read back by the fit (AU readout data)
    train-au-readout --data FILE... --val FILE [--to FILE]   the AU readout (docs/au_accuracy.md)
    train-neural --photos DIR --out DIR [--steps N]          the generic neural renderer (docs/neural_render.md)
    neural-train --job DIR [--steps N]                       one face's renderer, trained on its photo (once)
    neural-eval --job DIR --out DIR [--steps N]              the renderer's figures: input view, ablation, identity
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from .. import weights
from ..nets import RCAN, DetH, DetHConfig, RCANConfig
from ...core.progress import Job
from ...models.loader import load_model
from ...reconstruct import mesh_landmarks
from ...reconstruct.au_readout import KIND as au_readout_kind
from . import au_data, au_readout, data
from .aureg import NETS, AURegConfig, AURegressor, AURegTrainConfig, train_aureg
from .deth import TrainConfig, exit_worker, train
from . import neural_eval
from ..neural.training import train_subject
from .neural import train_generic
from .evaluate import evaluate
from .rcan import SRConfig, train_rcan


def add_parsers(sub) -> None:
    s = sub.add_parser("synth", help="write synthetic DetH training shards from the physical model")
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--start", type=int, default=0, help="first seed (split ranges across processes)")
    s.add_argument("--size", type=int, default=256, choices=(64, 256, 1024))
    s.add_argument("--expressions", type=int, default=4, help="expressions per identity (chained into pairs)")
    s.add_argument("--no-micro", action="store_true",
                   help="maps without pores and fine lines (RCAN's data: serving adds the face's own after it)")
    s.add_argument("--model-dir", default="")

    t = sub.add_parser("train", help="train DetH (+ D_Exp), RCAN or the evaluation AU regressor")
    t.add_argument("net", choices=("deth", "rcan", "aureg"))
    t.add_argument("--data", required=True, help="folder of synth_*.npz shards (1024² ones for rcan)")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt, losses.jsonl")
    t.add_argument("--steps", type=int, default=0, help="total steps (0: the net's default)")
    t.add_argument("--batch", type=int, default=0)
    t.add_argument("--patch", type=int, default=0, help="rcan: high-resolution patch side (default 192)")
    t.add_argument("--detail-share", type=float, default=None,
                   help="rcan: share of patches drawn where bicubic misses most (default 0: uniform on the face)")
    t.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    t.add_argument("--device", default="", help="cpu or cuda (default: cuda when present)")

    e = sub.add_parser("export", help="a run's checkpoint -> shipped safetensors weights")
    e.add_argument("net", choices=("deth", "rcan", "aureg"))
    e.add_argument("--run", required=True)
    e.add_argument("--data", default="", help="the shards it trained on (recorded in the metadata)")
    e.add_argument("--to", default="", help="output file (default: the shipped weights folder)")
    e.add_argument("--name", default="", help="name in the model card (default: NET-RUNFOLDER)")

    v = sub.add_parser("eval", help="evaluate the weights on held-out synthetic identities")
    v.add_argument("--data", required=True, help="256² shards (DetH, AU regressor)")
    v.add_argument("--hr-data", default="", help="1024² shards (RCAN)")
    v.add_argument("--weights", default="", help="weights folder (default: shipped)")
    v.add_argument("--out", default="", help="write the figures as JSON here too")


    ad = sub.add_parser("au-data", help="renders of the default model at random expressions, read back by the fit "
                                        "(the AU readout's training data)")
    ad.add_argument("--out", required=True, help="an .npz file")
    ad.add_argument("--n", type=int, required=True)
    ad.add_argument("--seed", type=int, default=0)
    ar = sub.add_parser("train-au-readout", help="train the AU readout on au-data files and export its weights")
    ar.add_argument("--data", required=True, nargs="+", help="au-data files, trained on as one set")
    ar.add_argument("--val", required=True)
    ar.add_argument("--to", default="", help="output file (default: the shipped weights folder, and the default "
                                             "model's dense-landmark correspondence beside the code that reads it)")
    ar.add_argument("--no-landmarks", action="store_true", help="the fitted weights and yaw alone as inputs "
                                                                "(au-readout-synth-v1), without the detector's "
                                                                "lid, brow, cheek and mouth geometry")
    nr = sub.add_parser("train-neural", help="the generic neural renderer over a folder of photos (torchrun works); "
                                             "per-person training starts from it when it is in the weights folder")
    nr.add_argument("--photos", required=True, help="folder of .jpg/.png photos, one face each")
    nr.add_argument("--out", required=True, help="run folder: jobs/ (one reconstruction per photo), run/, "
                                                 "neural.safetensors")
    nr.add_argument("--steps", type=int, default=4000)
    nr.add_argument("--prepare-only", action="store_true", help="only reconstruct the photos (do this once before "
                                                                "torchrun)")
    nr.add_argument("--expression-loss", type=float, default=0.1,
                    help="weight of the expression adversarial loss (a critic reads each photo's AUs; 0: off)")
    nr.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    nt = sub.add_parser("neural-train", help="train a reconstructed face's neural renderer on its photo (once)")
    nt.add_argument("--job", required=True, help="the reconstruction's job folder")
    nt.add_argument("--steps", type=int, default=600)
    ne = sub.add_parser("neural-eval", help="the neural renderer's figures on one face (docs/neural_render.md)")
    ne.add_argument("--job", required=True, help="the reconstruction's job folder")
    ne.add_argument("--out", required=True, help="folder for neural_eval.json and identity_strip.png")
    ne.add_argument("--steps", type=int, default=600)
    ne.add_argument("--variants", default="", help="comma-separated ids of the ablation's variants (default all: "
                                                   + ", ".join(neural_eval.VARIANTS) + ")")
    ne.add_argument("--no-identity", action="store_true", help="skip the identity figures")


def _shards(folder: str) -> list[Path]:
    paths = sorted(Path(folder).glob("synth_*.npz"))
    if not paths:
        raise SystemExit(f"error: no synth_*.npz shards in {folder}\n  what to do: run "
                         f"`python -m backend synth --out {folder} --n 2048` first")
    return paths


def run(args) -> int:
    """Run one command; a missing or wrong input file is a message and exit status 1."""
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args) -> int:
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    if args.command == "neural-train":
        res = train_subject(args.job, args.steps, Job(lambda f, m: print(f"{f * 100:5.1f}% {m}", flush=True)))
        print(json.dumps(res))
        return 0
    if args.command == "neural-eval":
        variants = [v.strip() for v in args.variants.split(",") if v.strip()] or None
        unknown = sorted(set(variants or []) - set(neural_eval.VARIANTS))
        if unknown:
            raise ValueError(f"unknown variants {', '.join(unknown)}; choose from {', '.join(neural_eval.VARIANTS)}")
        print(json.dumps(neural_eval.evaluate(args.job, args.out, args.steps, variants, not args.no_identity)))
        return 0
    if args.command == "train-neural":
        info = train_generic(args.photos, args.out, args.steps, args.prepare_only, expression=args.expression_loss)
        print(json.dumps(info))
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            exit_worker(0)
        return 0
    if args.command == "au-data":
        au_data.generate(load_model(None), args.n, args.out, args.seed)
        print(f"wrote {args.out}")
        return 0
    if args.command == "train-au-readout":
        to = args.to or str(weights.SHIPPED / f"{au_readout_kind}.safetensors")
        model = load_model(None)
        info = au_readout.train_readout(model, args.data, args.val, to, landmarks=not args.no_landmarks)
        print(f"wrote {to}: validation {info['validation']} (the fit alone: {info['validation_fit_alone']})")
        if not args.to:  # the shipped readout ships the correspondence its fits were made with
            path, removed = mesh_landmarks.ship(model)
            for old in removed:
                print(f"removed {old}")
            print(f"wrote {path}")
        return 0
    if args.command == "synth":
        data.generate(args.out, args.n, args.start, args.model_dir or None, size=args.size, n_expr=args.expressions,
                      micro=not args.no_micro)
        return 0
    if args.command == "train":
        if args.net == "aureg" and (args.steps or args.batch):
            raise SystemExit("error: the AU regressor is fitted in closed form: no --steps or --batch")
        d = data.load_shards(_shards(args.data))
        print(f"{len(d['seed'])} samples at {d['dx'].shape[-1]}² from {args.data}", flush=True)
        over = {k: v for k, v in (("steps", args.steps), ("batch", args.batch)) if v}
        dev = args.device or None
        if args.patch:
            if args.net != "rcan":
                raise SystemExit("error: --patch is an RCAN training setting")
            over["patch"] = args.patch
        if args.detail_share is not None:
            if args.net != "rcan":
                raise SystemExit("error: --detail-share is an RCAN training setting")
            over["detail_share"] = args.detail_share
        if args.net == "deth":
            last = train(d, args.out, TrainConfig(**over), device=dev)
        elif args.net == "rcan":
            last = train_rcan(d, args.out, SRConfig(**over), device=dev)
        else:
            last = train_aureg(d, args.out, AURegTrainConfig(), device=dev)
        print(json.dumps(last))
        if args.net == "deth" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            exit_worker(0)  # under torchrun: see exit_worker
        return 0
    if args.command == "export":
        if args.net == "rcan" and not args.data:
            raise SystemExit("error: exporting RCAN needs --data (its training shards): serving must know whether "
                             "its maps had pores and fine lines")
        net, info = _from_run(args.net, Path(args.run))
        if args.data:
            d = data.load_shards(_shards(args.data))
            info["data"] = {"samples": int(len(d["seed"])), "size": int(d["dx"].shape[-1]),
                            "seeds": [int(d["seed"].min()), int(d["seed"].max())], "source": "synthetic",
                            "micro": bool(d["micro"])}
        # Unnamed exports take the run folder's name, so two runs never ship under one name.
        info["name"] = args.name or f"{args.net}-{Path(args.run).name}"
        print(weights.export(net, args.net, args.to or weights.path_for(args.net), info, nets=NETS))
        return 0
    figures = evaluate(args.data, args.hr_data or None, args.weights or None, log=print)
    text = json.dumps(figures, indent=1)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


def _from_run(kind: str, run: Path):
    """The net from a run folder's checkpoint, and what the run was (steps, config, last losses)."""
    ck = run / ("aureg.pt" if kind == "aureg" else "checkpoint.pt")
    if not ck.is_file():
        raise SystemExit(f"error: {ck} is missing\n  what to do: train first (`python -m backend train {kind} ...`)")
    st = torch.load(ck, map_location="cpu", weights_only=False)
    cfg = st["config"]
    if kind == "deth":
        net = DetH(DetHConfig(**cfg["deth"]))
        net.load_state_dict(st["G"])
    elif kind == "rcan":
        net = RCAN(RCANConfig(**cfg["net"]))
        net.load_state_dict(st["net"])
    else:
        net = AURegressor(AURegConfig(**cfg["net"]))
        net.load_state_dict(st["net"])
    losses = run / "losses.jsonl"
    rows = losses.read_text(encoding="utf-8").splitlines() if losses.is_file() else []
    info = {"steps": int(st.get("step", cfg.get("steps", 0))), "train_config": cfg,
            "last_losses": json.loads(rows[-1]) if rows else {}}
    return net, info
