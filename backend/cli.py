"""Backend command line, no Blender needed.

    python -m backend reconstruct --image photo.jpg --out DIR [--model-dir M]
    python -m backend convert-model FILE [--reference DIR]   a BFM .mat/.h5 -> the cache, prints the report
    python -m backend bench [--repeat N]
    python -m backend synth|train|export|eval ...   the learned nets (backend/learned/cli.py)
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import FaceDetError
from .progress import Job


def _reconstruct(args) -> int:
    from .pipeline import reconstruct

    job = Job(lambda f, m: print(f"[{f * 100:5.1f}%] {m}", file=sys.stderr, flush=True))
    try:
        res = reconstruct(args.image, args.out, args.model_dir or None, job,
                          {"texture_size": args.texture_size})
    except FaceDetError as exc:
        print(f"error: {exc.message}\n  what to do: {exc.hint}", file=sys.stderr)
        return 1
    print(json.dumps(res, indent=1))
    return 0


def _convert_model(args) -> int:
    from . import bfm_model

    job = Job(lambda f, m: print(f"[{f * 100:5.1f}%] {m}", file=sys.stderr, flush=True))
    try:
        model = bfm_model.load_bfm_model(args.file, args.reference or None, job)
    except FaceDetError as exc:
        print(f"error: {exc.message}\n  what to do: {exc.hint}", file=sys.stderr)
        return 1
    rep = bfm_model.report_path(model, args.reference or None)
    print(rep.read_text(encoding="utf-8") if rep else json.dumps({"vertices": model.n_vertices}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backend")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reconstruct", help="photo -> job folder (face.json, mesh.npz, textures, scene.json)")
    r.add_argument("--image", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--model-dir", "--model", default="",
                   help="the default model's folder, or a Basel Face Model file (.mat / .h5)")
    r.add_argument("--texture-size", type=int, default=2048)
    c = sub.add_parser("convert-model", help="convert a Basel Face Model file once (cached) and print its report")
    c.add_argument("file")
    c.add_argument("--reference", default="", help="the default model's folder (default: as for reconstruct)")
    b = sub.add_parser("bench", help="print median timings of the backend stages")
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--model-dir", default="")
    b.add_argument("--only", choices=["bfm"], default="", help="only the Basel Face Model conversion rows")
    from .learned import cli as learned_cli

    learned_cli.add_parsers(sub)
    args = ap.parse_args(argv)
    if args.command == "reconstruct":
        return _reconstruct(args)
    if args.command == "convert-model":
        return _convert_model(args)
    if args.command in ("synth", "train", "export", "eval"):
        return learned_cli.run(args)
    from .bench import run_bench

    return run_bench(args.repeat, args.model_dir or None, args.only)


if __name__ == "__main__":
    sys.exit(main())
