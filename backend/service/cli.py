"""Backend command line, no Blender needed.

    python -m backend reconstruct --image photo.jpg --out DIR [--model-dir M]
    python -m backend details --job DIR [--model NAME] [--aus AU12=1,AU6=0.8] [--sizes 256,1024]
    python -m backend models                      the detail models this backend offers
    python -m backend wrinkle-stats MAP.exr [--json]   creases per face region (docs/detail_maps.md)
    python -m backend convert-model FILE [--reference DIR]   a BFM .mat/.h5 -> the cache, prints the report
    python -m backend bench [--repeat N]
    python -m backend synth|train|export|eval ...   the learned nets (backend/learned/train/cli.py;
                                                    a development checkout only: not in the extension zip)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from dataclasses import asdict

from protocol.details import AUTO_MODEL, SIZES

from ..capture.track import capture
from ..core import exr_io, memory
from ..core.errors import FaceDetError
from ..core.progress import Job
from ..detail import registry
from ..detail.maps import build_details
from ..detail.stats import face_map_stats
from ..models import fetch
from ..models.bfm import convert as bfm_model
from ..models.loader import load_model
from ..reconstruct import closed_loop
from ..reconstruct.pipeline import reconstruct
from .bench import run_bench

try:  # training ships with a checkout, not with the extension zip
    from ..learned.train import cli as learned_cli
except ImportError:
    learned_cli = None


def _job() -> Job:
    return Job(lambda f, m: print(f"[{f * 100:5.1f}%] {m}", file=sys.stderr, flush=True))


def _error(exc: FaceDetError) -> int:
    print(f"error: {exc.message}\n  what to do: {exc.hint}", file=sys.stderr)
    return 1


def _reconstruct(args) -> int:
    try:
        res = reconstruct(args.image, args.out, args.model_dir or None, _job(), {"texture_size": args.texture_size})
    except FaceDetError as exc:
        return _error(exc)
    print(json.dumps(res, indent=1))
    return 0


def _aus(text: str) -> dict[str, float]:
    """'AU12=1,AU6L=0.8' -> {"AU12": 1.0, "AU6L": 0.8}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        try:
            out[name.strip().upper()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{part}' is not AUn=value") from None
        if not eq:
            raise argparse.ArgumentTypeError(f"'{part}' is not AUn=value")
    return out


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of sizes") from None


def _details(args) -> int:
    try:
        info = build_details(args.job, aus=args.aus or None, age=args.age, sizes=args.sizes, seed=args.seed,
                             job=_job(), detail_model=args.model)
    except FaceDetError as exc:
        return _error(exc)
    print(json.dumps(asdict(info), indent=1))
    return 0


def _models(args) -> int:
    infos, auto = registry.describe()
    for m in infos:
        state = "ready" if m.available else f"unavailable: {m.reason}"
        made = f" (makes {m.made_by})" if m.made_by and m.name != AUTO_MODEL else f" (now {auto or 'none'})"
        print(f"{m.name:10s} {m.label:10s} {state}{made}\n{'':21s}{m.description}")
    return 0


def _wrinkle_stats(args) -> int:
    try:
        m = exr_io.read_map(args.map)
    except (OSError, ValueError) as exc:
        print(f"error: {args.map} is not a readable detail map ({exc})\n  what to do: give an EXR the backend "
              "wrote (detail_*.exr, wrinkles_*_key_*.exr)", file=sys.stderr)
        return 1
    try:
        model = load_model(args.model_dir or None)
    except FaceDetError as exc:
        return _error(exc)
    stats = face_map_stats(model, m)
    if args.json:
        print(json.dumps(stats.to_dict(), indent=1))
        return 0
    print(f"{args.map}: {m.shape[0]}² map, analysed at {stats.mm_per_texel:.3f} mm per texel")
    print(f"{'region':16s}{'count':>6s}{'spacing':>9s}{'length':>9s}{'max len':>9s}{'depth':>8s}{'max':>8s}"
          f"{'width':>8s}{'asym':>7s}{'angle':>7s}")
    for name, r in stats.regions.items():
        def f(v, fmt):
            return format(v, fmt) if v is not None else "-".rjust(int(fmt.split(".")[0]))
        print(f"{name:16s}{r.count:6d}{f(r.spacing_mm, '9.2f')}{f(r.length_mm, '9.1f')}{f(r.length_max_mm, '9.1f')}"
              f"{f(r.depth_mm, '8.3f')}{f(r.depth_max_mm, '8.3f')}{f(r.width_mm, '8.2f')}{f(r.asymmetry, '7.2f')}"
              f"{f(r.angle_deg, '7.0f')}")
    print("mm; angle: of the lines on the face, 0° across (left-right), 90° up-down")
    return 0


def _convert_model(args) -> int:
    try:
        model = bfm_model.load_bfm_model(args.file, args.reference or None, _job())
    except FaceDetError as exc:
        return _error(exc)
    rep = bfm_model.report_path(model, args.reference or None)
    print(rep.read_text(encoding="utf-8") if rep else json.dumps({"vertices": model.n_vertices}))
    return 0


def _fetch_model(args) -> int:
    try:
        dest = fetch.fetch_model(args.to, args.source or None, _job())
    except FaceDetError as exc:
        return _error(exc)
    print(f"the default model is in {dest}: point the model folder at it (or FACEDET3D_MODEL_DIR)")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m backend")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reconstruct", help="photo -> job folder (face.json, mesh.npz, textures, scene.json)")
    r.add_argument("--image", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--model-dir", "--model", default="",
                   help="the default model's folder, or a Basel Face Model file (.mat / .h5)")
    r.add_argument("--texture-size", type=int, default=2048)
    d = sub.add_parser("details", help="detail maps of a job folder for a target expression")
    d.add_argument("--job", required=True, help="a job folder made by `reconstruct`")
    d.add_argument("--model", choices=registry.names(), default=AUTO_MODEL,
                   help="the detail model (`python -m backend models` says which are ready)")
    d.add_argument("--aus", type=_aus, default={}, help="target AUs, e.g. AU1=1,AU2=1 (default: the photo's)")
    d.add_argument("--age", type=float, default=None, help="years (default: the photo's estimate)")
    d.add_argument("--sizes", type=_sizes, default=SIZES, help="map sizes, e.g. 256,1024,4096")
    d.add_argument("--seed", type=int, default=0)
    sub.add_parser("models", help="list the detail models and whether each is ready")
    w = sub.add_parser("wrinkle-stats", help="creases of a detail map per face region: count, spacing, length, "
                                             "depth, width, asymmetry, orientation")
    w.add_argument("map", help="a detail map EXR of the face tile (mm)")
    w.add_argument("--model-dir", default="", help="the face model whose UV layout the map uses (default model)")
    w.add_argument("--json", action="store_true", help="every crease, as JSON")
    c = sub.add_parser("convert-model", help="convert a Basel Face Model file once (cached) and print its report")
    c.add_argument("file")
    c.add_argument("--reference", default="", help="the default model's folder (default: as for reconstruct)")
    fm = sub.add_parser("fetch-model", help="get the default model (the ICT-FaceKit release at its pinned commit, every "
                                            "file checked against its SHA-256) into a new folder")
    fm.add_argument("--to", required=True, help="the new folder")
    fm.add_argument("--source", default="", help="where the files come from instead of GitHub: a checkout or unzipped "
                                                 "download of the repository, or a URL of one (file://, https://)")
    cp = sub.add_parser("capture", help="a video -> AU control curves for a reconstructed face "
                                        "(capture_<name>.json in its job folder)")
    cp.add_argument("--job", required=True, help="a job folder made by `reconstruct` (the identity is held fixed)")
    cp.add_argument("--video", required=True)
    cp.add_argument("--name", default="", help="capture name (default: the video's file name)")
    cp.add_argument("--tolerance", type=float, default=0.02, help="key reduction tolerance in control units")
    cp.add_argument("--no-smoothing", action="store_true")
    ae = sub.add_parser("au-eval", help="closed-loop AU accuracy: render the default model at known AUs (EMFACS "
                                        "prototypes x identities x yaw x lighting), read them back, report MAE per AU")
    ae.add_argument("--texture-job", default="", help="a job folder whose face and head textures dress the renders "
                                                      "(default: a generic painted face, the correspondence's own)")
    ae.add_argument("--identities", type=int, default=3)
    ae.add_argument("--json", default="", help="write the full summary here as JSON")
    b = sub.add_parser("bench", help="print median timings of the backend stages")
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--model-dir", default="")
    b.add_argument("--only", choices=["bfm", "details", "neural", "photo"], default="",
                   help="only the Basel Face Model conversion rows, the detail maps' and learned nets' rows, the "
                        "neural renderer's rows, or the photo step's rows (start, detection, fit, closed loop, "
                        "capture, texture, whole reconstruct)")
    if learned_cli is not None:
        learned_cli.add_parsers(sub)
    return ap


def _capture(args) -> int:
    try:
        res = capture(args.job, args.video, args.name, args.tolerance, smoothing=not args.no_smoothing)
    except FaceDetError as exc:
        return _error(exc)
    st = res["stats"]
    print(f"{res['frames']} frames, {res['tracked']} tracked, {st['frames_per_second']} frames/s; "
          f"{st['keys']} keys -> {Path(res['job_dir']) / res['file']}")
    for w in res["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _au_eval(args) -> int:
    model = load_model(None)
    res = closed_loop.evaluate(model, args.texture_job or None, args.identities)
    print(f"{res['read']} of {res['cases']} renders read; AU MAE (all AUs, all cases) {res['mae_all']}")
    print(f"{'AU':6s} {'MAE':>6s} {'present':>8s} {'absent':>7s} {'|err|<=2sd':>10s}")
    for k, v in res["per_au"].items():
        if v["mae_when_present"] is None and v["mae"] < 0.005:
            continue
        fmt = lambda x: "   -" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"{k:6s} {fmt(v['mae']):>6s} {fmt(v['mae_when_present']):>8s} {fmt(v['mae_when_absent']):>7s} "
              f"{fmt(v['within_2sd']):>10s}")
    for name, v in res["prototypes"].items():
        print(f"{name:9s} prototype AUs read {v['prototype_read']:.2f}, others quiet {v['others_quiet']:.2f}, both "
              f"{v['both']:.2f} (loudest other {v['worst_other'][0]} {v['worst_other'][1]}); its AUs read "
              + ", ".join(f"{k} {x:.2f}" for k, x in v["mean_read"].items()))
    print("MAE by yaw:", res["mae_by_yaw"])
    r = res["random"]
    print(f"random AU combinations ({r['read']} of {r['cases']} read): MAE {r['mae_all']}, present AUs "
          f"{r['mae_present']}, absent {r['mae_absent']}; present per AU {r['per_au_present']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


COMMANDS = {"reconstruct": _reconstruct, "au-eval": _au_eval, "capture": _capture, "details": _details,
            "models": _models, "wrinkle-stats": _wrinkle_stats,
            "convert-model": _convert_model, "fetch-model": _fetch_model,
            "bench": lambda args: run_bench(args.repeat, args.model_dir or None, args.only)}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    memory.keep_freed_memory()  # a photo's large arrays from the heap, kept: docs/benchmarks.md run 15
    if args.command in COMMANDS:
        return COMMANDS[args.command](args)
    return learned_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
