"""Headless reconstruction for pipelines: photo -> job files, .blend and Cycles render.

Run through ``facedet3d.py`` at the extension root, either on the bpy module
(``python -m facedet3d reconstruct --image photo.jpg --out DIR --render``) or in a real
Blender (``blender -b --python facedet3d.py -- reconstruct --image … --out DIR --render``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import bpy

from ..protocol import au_curves, methods
from ..protocol.details import AUTO_MODEL, RIG_SIZES, DetailInfo, WrinkleRig, detail_sizes
from ..protocol._typed import from_json
from ..protocol.capture import Capture
from ..protocol.methods import CaptureParams, DetailsParams, NeuralTrainParams, PhotoLightingParams, RigParams
from ..protocol.scene import VIEWS, FaceRig
from .link import jobs, session, settings
from .scene import au_curves as scene_curves
from .operators.neural_ops import make_frames
from .scene import au_rig, builder, displacement, gltf_export, neural_pass, photo_light, wrinkle_mix


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facedet3d", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reconstruct", help="photo -> textured face .blend (and a render)")
    _job_args(r)
    r.add_argument("--expression", default="", metavar="WHAT",
                   help="set the face to this expression: a preset (happy, sad, surprise, fear, anger, disgust, "
                        "contempt, neutral) or AU1=1,AU2=0.6; with --details its wrinkles are made for it")
    a = sub.add_parser("animate", help="photo + keys -> AU animation: PNG frames, optional video, .blend")
    _job_args(a)
    a.add_argument("--key", action="append", default=[], metavar="FRAME:WHAT",
                   help="a key: FRAME:PRESET (happy, sad, surprise, fear, anger, disgust, contempt, "
                        "neutral) or FRAME:AU1=1,AU2=0.6,AU12L=0.8 (AUn without a side sets both sides); "
                        "repeat for each key")
    a.add_argument("--keys", default="", metavar="'FRAME:WHAT;FRAME:WHAT'",
                   help="several keys in one argument, separated by ';' (for job templates that pass one string)")
    a.add_argument("--curves", default="", metavar="CSV",
                   help="key the AU controls from a capture instead of --key: a Live Link Face CSV (ARKit "
                        "blendshapes) or an OpenFace 2.x CSV (AU intensities), a key per frame from frame 1")
    a.add_argument("--head-rotation", action="store_true",
                   help="with a Live Link Face --curves file: also key the head's turn on the face object")
    _animation_args(a, video_flag="--video")
    cp = sub.add_parser("capture", help="photo + video -> the face animated from the clip: AU keys (and wrinkles), "
                                        "PNG frames, .blend")
    _job_args(cp)
    cp.add_argument("--video", required=True, metavar="CLIP", help="the clip to take the animation from")
    cp.add_argument("--tolerance", type=float, default=0.02,
                    help="key reduction: keys are dropped while the curve stays within this of their lines "
                         "(control units, default 0.02; 0 keys every video frame)")
    cp.add_argument("--no-smoothing", action="store_true", help="keep the landmark jitter (no One Euro filter)")
    cp.add_argument("--head-rotation", action="store_true",
                    help="also key the head's turn on the face object (it turns about its origin; the camera stays)")
    _animation_args(cp, video_flag="--mp4")
    rn = sub.add_parser("render", help="render frames of a .blend into its own output path (no backend, no add-on "
                                       "needed): one farm task")
    rn.add_argument("--blend", required=True)
    rn.add_argument("--frames", required=True, metavar="RANGE",
                    help="frames as a range expression: 1-24, 1-24:2, 1,5,9 (an Open Job Description chunk)")
    en = sub.add_parser("encode", help="the rendered frames of a .blend -> MP4 (H.264) with Blender's FFmpeg")
    en.add_argument("--blend", required=True)
    en.add_argument("--out", required=True, help="the .mp4 to write")
    b = sub.add_parser("bench", help="median timings: scene build and a 512^2 Cycles render")
    b.add_argument("--job", required=True, help="a finished job folder (from `reconstruct`)")
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--samples", type=int, default=32)
    return ap


def _animation_args(a, video_flag: str) -> None:
    a.add_argument("--no-render", action="store_true",
                   help="build the animated .blend (and maps, glTF) without rendering: a farm renders its frames "
                        "(`render`) and encodes them (`encode`)")
    a.add_argument(video_flag, dest="mp4", action="store_true", help="also write an MP4 (H.264) with Blender's FFmpeg")
    a.add_argument("--fps", type=int, default=None, help="scene frame rate (default: animate 24, capture the clip's)")
    a.add_argument("--wrinkles", action="store_true",
                   help="wrinkles follow the animation: per-AU maps mixed by the AUs, exact maps at each key")
    a.add_argument("--wrinkle-size", type=int, default=1024, choices=(512, 1024, 2048),
                   help="per-AU and key wrinkle map size (default 1024)")
    a.add_argument("--wrinkle-aus", choices=("all", "animated"), default="all",
                   help="per-AU maps for every AU (sliders move wrinkles live in the .blend) or only the keyed ones")
    a.add_argument("--gltf", action="store_true", help="also export <name>.glb with its maps in <name>_maps/")


def _job_args(r) -> None:
    r.add_argument("--image", required=True, help="the photo")
    r.add_argument("--out", required=True, help="output folder (job files, .blend, render)")
    r.add_argument("--name", default="", help="name of the .blend and its folders (default: the photo's)")
    r.add_argument("--model-dir", default="",
                   help="face model folder (default: preferences/env/checkout), or a Basel Face Model file "
                        "(.mat / .h5), converted on first use with the default model as reference")
    r.add_argument("--backend-python", default="", help="backend interpreter (default: env/.venv-backend)")
    r.add_argument("--render", action="store_true", help="render a PNG with Cycles (CPU)")
    r.add_argument("--samples", type=int, default=64, help="Cycles samples (default 64)")
    r.add_argument("--resolution", type=int, default=0,
                   help="longest side of the render in pixels (default: the photo's, at most 1024)")
    r.add_argument("--texture-size", type=int, default=2048, help="face texture size (default 2048)")
    r.add_argument("--details", action="store_true",
                   help="add detail maps (photo detail + wrinkles for the photo's expression) as displacement")
    r.add_argument("--detail-size", type=int, default=4096, help="largest detail map size (default 4096)")
    r.add_argument("--age", type=float, default=0.0, help="age for wrinkle depth (default: from the photo)")
    r.add_argument("--face", default="", metavar="N|L,T,R,B",
                   help="which face of a photo with several: its number from the left (0 = leftmost) or its box "
                        "in pixels (left,top,right,bottom); default: the largest")
    r.add_argument("--view", choices=VIEWS, default="photo",
                   help="the camera: the photo's own (default), or portrait: a three-quarter close-up with a raking "
                        "key light, where relief and wrinkles show")
    r.add_argument("--photo-lighting", action="store_true",
                   help="light the face with the photo's own light: the albedo (the photo's lighting divided out) "
                        "under a world made from that lighting, no key light (docs/photo_lighting.md)")
    r.add_argument("--neural", action="store_true",
                   help="composite FaceDet3D's neural render of the face over the Cycles render (its renderer is "
                        "trained on the photo first, a few minutes; best with --photo-lighting, whose light it "
                        "shares: docs/neural_render.md)")
    r.add_argument("--neural-steps", type=int, default=600, help="training steps of the neural renderer (default 600)")
    r.add_argument("--detail-model", default=AUTO_MODEL,
                   help="what makes detail and wrinkle maps: one of the backend's detail models "
                        "(`python -m backend models` lists them; auto: the best installed)")


def bench(args) -> int:
    import statistics

    job = Path(args.job)
    build, render = [], []
    for i in range(args.repeat):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        t0 = time.perf_counter()
        builder.build_face(bpy.context, job, name="bench")
        build.append(time.perf_counter() - t0)
        scene = bpy.context.scene
        scene.render.resolution_x = scene.render.resolution_y = 512
        scene.cycles.samples = args.samples
        scene.render.filepath = str(Path(args.job) / f"bench_render_{i}.png")
        t0 = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        render.append(time.perf_counter() - t0)
        (Path(args.job) / f"bench_render_{i}.png").unlink(missing_ok=True)
    # AU slider -> evaluated mesh (drivers + shape keys), on the last built face.
    obj = next(o for o in bpy.data.objects if o.type == "MESH")
    slider = []
    for i in range(max(5, args.repeat)):
        au_rig.set_values(obj, {"AU12L": 0.2 + 0.1 * (i % 5)})
        t0 = time.perf_counter()
        bpy.context.view_layer.update()
        obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
        slider.append(time.perf_counter() - t0)
        obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh_clear()
    print(f"blender bench: median of {args.repeat}")
    print(f"  {'scene build (mesh, 57 shape keys, materials)':48s} {statistics.median(build) * 1000:9.1f} ms")
    print(f"  {'AU slider change -> evaluated mesh':48s} {statistics.median(slider) * 1000:9.1f} ms")
    print(f"  {f'Cycles CPU render 512x512, {args.samples} spp + denoise':48s} "
          f"{statistics.median(render) * 1000:9.1f} ms")
    maps = sorted(job.glob("detail_*_4096.exr"))
    if maps:
        side = DetailInfo.load(job, maps[0].name[len("detail_"):-len("_4096.exr")])
        displacement.attach(obj, maps[0], vertex_range=side.vertex_range, material_name=side.material)
        disp = []
        for i in range(args.repeat):
            scene.render.filepath = str(job / f"bench_disp_{i}.png")
            t0 = time.perf_counter()
            bpy.ops.render.render(write_still=True)
            disp.append(time.perf_counter() - t0)
            (job / f"bench_disp_{i}.png").unlink(missing_ok=True)
        print(f"  {'  same, with 4096^2 adaptive displacement':48s} {statistics.median(disp) * 1000:9.1f} ms")
    rigs = sorted(job.glob("wrinkles_*.json"), key=lambda p: p.stat().st_mtime)
    if rigs:
        # wrinkles that follow the sliders attached: what dragging a slider costs per viewport mode
        rig = WrinkleRig.load(job, rigs[-1].stem[len("wrinkles_"):])
        rig.job_dir = str(job)
        wrinkle_mix.attach(obj, rig)
        for mode in ("BUMP", "MESH"):
            obj.facedet3d.viewport_relief = mode
            times = []
            for i in range(max(5, args.repeat)):
                au_rig.set_values(obj, {"AU12L": 0.2 + 0.1 * (i % 5)})
                t0 = time.perf_counter()
                dg = bpy.context.evaluated_depsgraph_get()
                dg.update()
                n = len(obj.evaluated_get(dg).data.vertices)
                times.append(time.perf_counter() - t0)
            label = f"AU slider -> face, wrinkles on, relief {mode} ({n} verts)"
            print(f"  {label:48s} {statistics.median(times) * 1000:9.1f} ms")
    return 0


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction * 100:5.1f}%] {message}", flush=True)


def _check_detail_model(client, name: str) -> str:
    """'' when the backend offers the detail model ``name``, else what to choose instead."""
    offered = session.remember_health(client.health(timeout=120)).model_names()
    if name in offered:
        return ""
    return f"the backend has no detail model '{name}'; choose one of: {', '.join(offered)} (--detail-model)"


MAX_FRAME = 1048574  # Blender's last frame (its first is 0)


@dataclass
class Run:
    """A headless run in progress. Everything it makes goes into ``stage``, a fresh folder inside
    ``out``; :func:`_publish` moves it all into ``out`` once the run has succeeded (each entry
    replacing the earlier run's of that name) and :func:`_abandon` removes it after a failure,
    so a failed run leaves an earlier run's results exactly as they were."""

    out: Path
    stage: Path
    stem: str
    created_out: bool  # ``out`` did not exist before this run
    built: object = None
    keyed: list = field(default_factory=list)  # [(frame, control values)]

    @property
    def blend(self) -> Path:
        return self.stage / f"{self.stem}.blend"


def _publish(run: Run) -> list[str]:
    moved, displaced = [], []
    try:
        old = Path(tempfile.mkdtemp(prefix=".replaced-", dir=run.out))
    except OSError:
        _abandon(run)
        raise
    try:
        for entry in sorted(run.stage.iterdir()):
            dst = run.out / entry.name
            if dst.exists() or dst.is_symlink():
                os.replace(dst, old / entry.name)
                displaced.append(entry.name)
            os.replace(entry, dst)
            moved.append(entry.name)
    except OSError:
        for name in reversed(moved):  # put everything back as it was
            os.replace(run.out / name, run.stage / name)
        for name in displaced:
            os.replace(old / name, run.out / name)
        _abandon(run)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    run.stage.rmdir()
    return moved


def _abandon(run: Run) -> None:
    shutil.rmtree(run.stage, ignore_errors=True)
    if run.created_out and run.out.is_dir() and not any(run.out.iterdir()):
        run.out.rmdir()


def _fail(message: str, code: int = 2) -> int:
    session.shutdown()
    print(f"error: {message}", file=sys.stderr)
    return code


def _scene(args, keys: tuple = ()):
    """Steps shared by `reconstruct` and `animate`: every argument checked (the expression and the
    keys against the model's rig, asked of the backend) before any work; then the backend job (and
    details), the face scene and the saved .blend, all in a staging folder (:class:`Run`).
    ``keys``: (frame, preset or AU values). Returns the Run, or an exit code after a message."""
    out = Path(args.out).expanduser().resolve()
    model_dir = settings.model_dir(args.model_dir)
    try:
        jobs.check_inputs(args.image, model_dir, settings.model_dir(""))
    except jobs.InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stem = settings.slug(args.name or Path(args.image).stem)
    try:
        target = parse_expression(args.expression, "--expression") if getattr(args, "expression", "") else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        face = parse_face(args.face) if args.face else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.name and settings.slug(args.name) != args.name:
        print(f"error: --name '{args.name}': use letters, digits, - and _ only (e.g. "
              f"'{settings.slug(args.name)}'); it names the .blend and its folders", file=sys.stderr)
        return 2
    wrinkles = getattr(args, "wrinkles", False)
    sizes_ok = 16 <= args.detail_size <= 8192 and (not wrinkles or args.detail_size in RIG_SIZES)
    if not sizes_ok:
        print(f"error: --detail-size {args.detail_size}: use one of {', '.join(map(str, RIG_SIZES))}", file=sys.stderr)
        return 2
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file; give a folder (it is made if it does not exist)", file=sys.stderr)
        return 2
    client = session.get_client(args.backend_python)
    try:
        if args.details or getattr(args, "wrinkles", False):
            complaint = _check_detail_model(client, args.detail_model)
            if complaint:
                return _fail(complaint)
        rig = from_json(FaceRig, client.call(methods.RIG, RigParams(model_dir=model_dir), timeout=3600,
                                             on_progress=_progress))
        values = rig.values(target) if target is not None else None
        keyed = [(frame, rig.values(what, f"key {frame}")) for frame, what in keys]
    except ValueError as exc:  # a name the rig lacks: the user's input
        return _fail(str(exc))
    except Exception as exc:  # the backend cannot start or cannot load the model: say why, before any work
        return _fail(jobs.describe(exc))
    created_out = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{stem}.partial-", dir=out))
    except OSError as exc:
        return _fail(f"cannot write into the output folder {out} ({exc.strerror or exc}); "
                     "choose a folder you can write to (--out)")
    run = Run(out=out, stage=stage, stem=stem, created_out=created_out, keyed=keyed)
    job_dir = stage / f"{stem}_job"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 beside our output
    t0 = time.perf_counter()
    options = {"texture_size": args.texture_size}
    if args.age > 0:
        options["age"] = args.age
    if args.resolution:
        options["render_long_side"] = args.resolution
    if face is not None:
        options["face"] = face
    detail = None
    try:
        res = client.call(methods.RECONSTRUCT, jobs.reconstruct_params(args.image, job_dir, model_dir, options),
                          timeout=3600, on_progress=_progress)
        if args.photo_lighting:
            client.call(methods.PHOTO_LIGHTING, PhotoLightingParams(job_dir=str(job_dir)), timeout=3600,
                        on_progress=_progress)
        if args.neural:
            client.call(methods.NEURAL_TRAIN, NeuralTrainParams(job_dir=str(job_dir), steps=args.neural_steps),
                        timeout=24 * 3600, on_progress=_progress)
        if args.details:
            detail = DetailInfo.from_dict(client.call(methods.DETAILS, DetailsParams(
                job_dir=str(job_dir), sizes=detail_sizes(args.detail_size), model=args.detail_model,
                controls=values), timeout=3600, on_progress=_progress))
    except BaseException as exc:  # Ctrl-C too: the stage goes, the earlier results stay
        _abandon(run)
        if not isinstance(exc, Exception):
            raise
        print(f"error: {jobs.describe(exc)}", file=sys.stderr)
        return 1
    finally:
        session.shutdown()
    print(f"backend done in {time.perf_counter() - t0:.1f} s: fit error {res['stats']['fit_error_iod']:.3f} IOD")
    for w in res.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    try:
        # Save first so every path the builder stores is relative to the .blend.
        bpy.ops.wm.save_as_mainfile(filepath=str(run.blend))
        built = builder.build_face(bpy.context, job_dir, name=stem, view=args.view)
        if values is not None:
            au_rig.apply_values(built.obj, values)
        if args.photo_lighting:
            photo_light.apply(bpy.context, built.obj, job_dir)
        if detail is not None:
            displacement.attach(built.obj, job_dir / detail.largest(), vertex_range=detail.vertex_range,
                                material_name=detail.material)
            built.obj.facedet3d.detail_tag = detail.tag
            built.obj.facedet3d.detail_model = detail.model
            print(f"details: {detail.model} model, RMS {detail.stats['rms_mm']:.3f} mm")
        bpy.context.scene.cycles.samples = args.samples
        bpy.ops.wm.save_as_mainfile(filepath=str(run.blend))
    except BaseException:
        _abandon(run)
        raise
    run.built = built
    return run


def _neural_frames(args, run: Run, frames: list[int]) -> int:
    """With --neural: the neural image of each frame and the compositor that lays it on the render,
    saved in the .blend (which re-composites from those files wherever it is opened)."""
    if not args.neural:
        return 0
    obj, job_dir = run.built.obj, run.stage / f"{run.stem}_job"
    try:
        make_frames(bpy.context, obj, job_dir, frames, session.get_client(args.backend_python))
        neural_pass.composite(bpy.context.scene, job_dir)
    except Exception as exc:
        print(f"error: neural pass: {jobs.describe(exc)}", file=sys.stderr)
        return 1
    finally:
        session.shutdown()
    obj.facedet3d.neural = True
    bpy.ops.wm.save_as_mainfile(filepath=str(run.blend))
    return 0


def _finish(run: Run, work) -> int:
    """``work(run)`` (renders, exports into the stage) then publish; a failure or an interrupt
    abandons the stage, leaving ``out`` as it was."""
    try:
        code = work(run)
    except BaseException:
        _abandon(run)
        raise
    if code != 0:
        _abandon(run)
        return code
    try:
        moved = _publish(run)
    except OSError as exc:  # put back as it was by _publish
        return _fail(f"could not move the results into {run.out} ({exc.strerror or exc}); the earlier results are "
                     "as they were", 1)
    for name in moved:
        print(f"wrote {run.out / name}")
    return 0


def reconstruct(args) -> int:
    run = _scene(args)
    if isinstance(run, int):
        return run

    def work(run: Run) -> int:
        if _neural_frames(args, run, [bpy.context.scene.frame_current]) != 0:
            return 1
        if args.render:
            png = run.stage / f"{run.stem}_render.png"
            bpy.context.scene.render.filepath = str(png)
            t1 = time.perf_counter()
            bpy.ops.render.render(write_still=True)
            print(f"rendered {png.name} ({time.perf_counter() - t1:.1f} s)")
        return 0

    return _finish(run, work)


PRESETS = ("happy", "sad", "surprise", "fear", "anger", "disgust", "contempt", "neutral")


def parse_expression(what: str, where: str) -> str | dict[str, float]:
    """'happy' -> 'happy'; 'AU1=1,AU12L=0.5' -> {'AU1': 1.0, 'AU12L': 0.5} (``where`` names the
    argument in messages)."""
    what = what.strip()
    if what.lower() in PRESETS:
        return what.lower()
    values = {}
    for part in what.split(","):
        name, eq, val = part.partition("=")
        name = name.strip().upper()
        try:
            v = float(val)
        except ValueError:
            v = None
        if not eq or not name.startswith("AU") or v is None or not 0.0 <= v <= 1.0:
            raise ValueError(f"{where}: '{part}' is not AUn=value with value in 0..1, nor a preset "
                             f"({', '.join(PRESETS)})")
        values[name] = v
    return values


def parse_face(text: str) -> int | list[float]:
    """'2' -> 2; '120,40,260,210' -> [120.0, 40.0, 260.0, 210.0]."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) == 1 and int(parts[0]) >= 0:
            return int(parts[0])
        box = [float(p) for p in parts]
        if len(box) == 4 and box[0] < box[2] and box[1] < box[3]:
            return box
    except ValueError:
        pass
    raise ValueError(f"--face '{text}': give a face number (0 = the leftmost) or a box left,top,right,bottom in pixels")


def parse_key(text: str) -> tuple[int, str | dict[str, float]]:
    """'24:happy' -> (24, 'happy'); '48:AU1=1,AU12L=0.5' -> (48, {'AU1': 1.0, 'AU12L': 0.5})."""
    frame, sep, what = text.partition(":")
    if not sep or not frame.strip().lstrip("-").isdigit():
        raise ValueError(f"key '{text}': write FRAME:PRESET or FRAME:AU1=1,AU2=0.5")
    f = int(frame)
    if not 0 <= f <= MAX_FRAME:
        raise ValueError(f"key '{text}': frame {f} is outside Blender's frames 0 .. {MAX_FRAME}")
    return f, parse_expression(what, f"key '{text}'")


def parse_keys(texts: list[str]) -> list[tuple[int, str | dict[str, float]]]:
    """Every --key, in frame order; two keys at one frame are refused (neither would win knowingly)."""
    keys = [parse_key(t) for t in texts]
    seen: dict[int, str] = {}
    for t, (f, _) in zip(texts, keys):
        if f in seen:
            raise ValueError(f"keys '{seen[f]}' and '{t}' are both at frame {f}: give one key per frame "
                             "(AU values and a preset do not mix; write the AUs you want as AU1=1,AU12=0.5)")
        seen[f] = t
    return sorted(keys, key=lambda k: k[0])


def _encode_video(frames: list[Path], path: Path, fps: int, size, fps_base: float = 1.0) -> None:
    """Frames -> MP4 (H.264) through Blender's sequencer and FFmpeg: no second 3D render."""
    vs = bpy.data.scenes.new("FaceDet3D video")
    try:
        ed = vs.sequence_editor_create()
        strip = ed.strips.new_image("frames", str(frames[0]), 1, 1)
        for f in frames[1:]:
            strip.elements.append(f.name)
        vs.frame_start, vs.frame_end = 1, len(frames)
        r = vs.render
        r.fps, r.fps_base = fps, fps_base
        r.resolution_x, r.resolution_y = size
        r.resolution_percentage = 100
        r.use_sequencer = True
        r.image_settings.media_type = "VIDEO"
        r.image_settings.file_format = "FFMPEG"
        r.ffmpeg.format = "MPEG4"
        r.ffmpeg.codec = "H264"
        r.filepath = str(path)
        r.use_file_extension = False
        bpy.ops.render.render(animation=True, scene=vs.name)
    finally:
        bpy.data.scenes.remove(vs)


def _animate_wrinkles(args, obj) -> int:
    params = wrinkle_mix.request(obj, args.wrinkle_size, args.detail_size, model=args.detail_model, age=args.age,
                                 animated_only=args.wrinkle_aus == "animated")
    try:
        res = WrinkleRig.from_dict(session.get_client(args.backend_python).call(
            methods.WRINKLES, params, timeout=7200, on_progress=_progress))
    except Exception as exc:
        print(f"error: {jobs.describe(exc)}", file=sys.stderr)
        return 1
    finally:
        session.shutdown()
    wrinkle_mix.attach(obj, res)
    print(f"wrinkles: {sum(len(p.controls) for p in res.packs)} AU maps, {len(res.keys)} exact keys")
    return 0


def _animated_outputs(args, run: Run, obj) -> int:
    """What animate and capture do once the face is keyed: wrinkles that follow, glTF, the saved
    .blend rendering into its own folder, the frames and an MP4."""
    scene = bpy.context.scene
    if args.wrinkles and _animate_wrinkles(args, obj) != 0:
        return 1
    if args.gltf:
        glb = run.stage / f"{run.stem}.glb"
        gltf_export.export(obj, glb)
        print(f"exported {glb.name} (+ maps in {glb.stem}_maps/)")
    if _neural_frames(args, run, list(range(scene.frame_start, scene.frame_end + 1))) != 0:
        return 1
    frames_dir = run.stage / f"{run.stem}_frames"
    frames_dir.mkdir(exist_ok=True)
    # relative to the .blend (saved in the stage), so the file renders into its own folder
    # wherever it moves: after the publish, on a farm
    scene.render.filepath = f"//{frames_dir.name}/frame_"
    bpy.ops.wm.save_as_mainfile(filepath=str(run.blend))
    if args.no_render:
        return 0
    t1 = time.perf_counter()
    bpy.ops.render.render(animation=True)
    frames = sorted(frames_dir.glob("frame_*.png"))
    print(f"rendered {len(frames)} frames into {frames_dir.name} ({time.perf_counter() - t1:.1f} s)")
    if args.mp4:
        mp4 = run.stage / f"{run.stem}.mp4"
        _encode_video(frames, mp4, scene.render.fps, (scene.render.resolution_x, scene.render.resolution_y),
                      scene.render.fps_base)
    return 0


def capture(args) -> int:
    clip = Path(args.video).expanduser().resolve()
    if not clip.is_file():
        print(f"error: --video {clip}: no such file; give the clip to animate from", file=sys.stderr)
        return 2
    if not 0.0 <= args.tolerance <= 0.5:
        print(f"error: --tolerance {args.tolerance}: use 0 .. 0.5 (control units)", file=sys.stderr)
        return 2
    run = _scene(args)
    if isinstance(run, int):
        return run

    def work(run: Run) -> int:
        obj, scene = run.built.obj, bpy.context.scene
        try:
            res = session.get_client(args.backend_python).call(
                methods.CAPTURE, CaptureParams(job_dir=str(run.stage / f"{run.stem}_job"), video=str(clip),
                                               tolerance=args.tolerance, smoothing=not args.no_smoothing),
                timeout=24 * 3600, on_progress=_progress)
        except Exception as exc:
            print(f"error: {jobs.describe(exc)}", file=sys.stderr)
            return 1
        finally:
            session.shutdown()
        cap = Capture.load(res["job_dir"], res["name"])
        rate = Fraction(args.fps) if args.fps else Fraction(cap.fps).limit_denominator(1001)
        scene.render.fps, scene.render.fps_base = rate.numerator, float(rate.denominator)
        first, last = scene_curves.key_capture(obj, cap, 1, head=args.head_rotation)
        st = cap.stats
        print(f"capture: {st['frames']} frames ({st['tracked']} with a face) at {st['frames_per_second']} frames/s, "
              f"{st['keys']} keys on frames {first}-{last}")
        for w in res.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr)
        return _animated_outputs(args, run, obj)

    return _finish(run, work)


def animate(args) -> int:
    texts = list(args.key) + [k.strip() for k in args.keys.replace("\n", ";").split(";") if k.strip()]
    if texts and args.curves:
        print("error: give keys (--key, --keys) or a curve file (--curves), not both", file=sys.stderr)
        return 2
    if not texts and not args.curves:
        print("error: give at least one key (--key FRAME:WHAT, or --keys 'FRAME:WHAT;FRAME:WHAT') or a curve file "
              "(--curves take.csv)", file=sys.stderr)
        return 2
    curves = None
    if args.curves:  # read before any work: a file that is not the layout is named now
        try:
            text = Path(args.curves).expanduser().read_text(encoding="utf-8-sig")
            curves = au_curves.read_curve_file(text, args.fps or 24, 1)
        except FileNotFoundError:
            print(f"error: --curves {args.curves}: no such file; give a Live Link Face or OpenFace 2.x CSV",
                  file=sys.stderr)
            return 2
        except (OSError, UnicodeDecodeError, au_curves.CurveFileError) as exc:
            print(f"error: --curves {args.curves}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            return 2
    try:
        keys = parse_keys(texts) if texts else []
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = _scene(args, tuple(keys))
    if isinstance(run, int):
        return run

    def work(run: Run) -> int:
        obj, scene = run.built.obj, bpy.context.scene
        scene.render.fps, scene.render.fps_base = args.fps or 24, 1.0
        if curves is not None:
            what, cur = curves
            keyed, skipped = scene_curves.key_curve_file(obj, what, cur, args.head_rotation)
            print(f"{what}: {len(cur.frames)} frames keyed on {keyed} AU controls"
                  + (" and the head's turn" if cur.head and args.head_rotation else ""))
            for s in skipped:
                print(f"note: left out {s}", file=sys.stderr)
            return _animated_outputs(args, run, obj)
        for frame, values in run.keyed:
            au_rig.apply_values(obj, values)
            au_rig.keyframe(obj, frame)
        scene.frame_start, scene.frame_end = keys[0][0], keys[-1][0]
        return _animated_outputs(args, run, obj)

    return _finish(run, work)


def parse_frames(text: str) -> list[int]:
    """A range expression as Open Job Description writes a chunk of frames: '1-24', '1-24:2',
    '1,5,9', '3'; in order, without repeats."""
    frames: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        rng, _, step = part.partition(":")
        a, dash, b = rng.partition("-") if not rng.startswith("-") else ("", "", "")
        try:
            lo = int(a)
            hi = int(b) if dash else lo
            st = int(step) if step else 1
        except ValueError:
            raise ValueError(f"--frames '{text}': '{part}' is not N, A-B or A-B:STEP") from None
        if st < 1 or hi < lo or lo < 0 or hi > MAX_FRAME:
            raise ValueError(f"--frames '{text}': '{part}' is not a range of frames 0 .. {MAX_FRAME} with a step >= 1")
        frames.extend(range(lo, hi + 1, st))
    return sorted(set(frames))


def _open_blend(path: str) -> Path | None:
    blend = Path(path).expanduser().resolve()
    if not blend.is_file():
        print(f"error: no .blend at {blend}", file=sys.stderr)
        return None
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    return blend


def render(args) -> int:
    """Frames of a saved .blend, each written where an animation render of the file writes it
    (its own output path, relative to it): a farm task renders its chunk, any worker, any order."""
    try:
        frames = parse_frames(args.frames)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if _open_blend(args.blend) is None:
        return 2
    scene = bpy.context.scene
    base = scene.render.filepath
    t0 = time.perf_counter()
    for f in frames:
        scene.frame_set(f)
        scene.render.filepath = scene.render.frame_path(frame=f)
        bpy.ops.render.render(write_still=True)
        scene.render.filepath = base
    print(f"rendered frames {args.frames} ({len(frames)}) in {time.perf_counter() - t0:.1f} s")
    return 0


def encode(args) -> int:
    """The frames of a .blend's scene range, found where `render` writes them, as an MP4."""
    if _open_blend(args.blend) is None:
        return 2
    scene = bpy.context.scene
    frames = [Path(scene.render.frame_path(frame=f)) for f in range(scene.frame_start, scene.frame_end + 1)]
    if not frames:
        print(f"error: {args.blend}'s scene has no frames (start {scene.frame_start}, end {scene.frame_end})",
              file=sys.stderr)
        return 2
    missing = [p.name for p in frames if not p.is_file()]
    if missing:
        print(f"error: {len(missing)} of {len(frames)} frames are not rendered yet ({', '.join(missing[:5])}"
              f"{' …' if len(missing) > 5 else ''}); render them first", file=sys.stderr)
        return 1
    out = Path(args.out).expanduser().resolve()
    if out.is_dir():
        print(f"error: --out {out} is a folder; name the .mp4 to write", file=sys.stderr)
        return 2
    tmp = out.with_name(out.stem + ".partial" + out.suffix)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _encode_video(frames, tmp, scene.render.fps, (scene.render.resolution_x, scene.render.resolution_y),
                      scene.render.fps_base)
        os.replace(tmp, out)  # a failed encode leaves an earlier video as it was
    except OSError as exc:
        print(f"error: could not write {out} ({exc.strerror or exc})", file=sys.stderr)
        return 1
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {out}")
    return 0


def _joined_keys(argv: list[str]) -> list[str]:
    """``--key -3:happy`` as ``--key=-3:happy``: argparse takes a value that starts with '-' for
    an option and would answer "expected one argument" instead of our message on the frame."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--key" and i + 1 < len(argv) and argv[i + 1].startswith("-") and ":" in argv[i + 1]:
            out.append(f"--key={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_joined_keys(list(sys.argv[1:] if argv is None else argv)))
    if args.command == "reconstruct":
        return reconstruct(args)
    if args.command == "animate":
        return animate(args)
    if args.command == "capture":
        return capture(args)
    if args.command == "bench":
        return bench(args)
    if args.command == "render":
        return render(args)
    if args.command == "encode":
        return encode(args)
    return 2
