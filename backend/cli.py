"""Backend command line, no Blender needed.

    python -m backend reconstruct --image photo.jpg --out DIR [--model-dir M]
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backend")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reconstruct", help="photo -> job folder (face.json, mesh.npz, textures, scene.json)")
    r.add_argument("--image", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--model-dir", default="")
    r.add_argument("--texture-size", type=int, default=2048)
    b = sub.add_parser("bench", help="print median timings of the backend stages")
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--model-dir", default="")
    from .learned import cli as learned_cli

    learned_cli.add_parsers(sub)
    args = ap.parse_args(argv)
    if args.command == "reconstruct":
        return _reconstruct(args)
    if args.command in ("synth", "train", "export", "eval"):
        return learned_cli.run(args)
    from .bench import run_bench

    return run_bench(args.repeat, args.model_dir or None)


if __name__ == "__main__":
    sys.exit(main())
