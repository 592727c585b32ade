"""What each backend method does: the table the transport dispatches to. Parameters arrive as the
typed dataclasses of :mod:`protocol.methods`; results are JSON-able (the typed side files of
:mod:`protocol.details` as plain objects).

    health {}                 -> protocol.health.Health: process, versions, device, detail models
    reconstruct {image, out_dir, model_dir?, options?}
                              -> backend.reconstruct.pipeline.reconstruct's summary
    details {job_dir, ...}    -> protocol.details.DetailInfo (backend.detail.maps)
    wrinkles {job_dir, ...}   -> protocol.details.WrinkleRig with its keys (backend.detail.rig)
    rig {model_dir?}          -> protocol.scene.FaceRig: the model's AU controls and presets (to check
                                 an expression or keys before a reconstruction)
    fetch_model {dest, source?} -> {model_dir}: the default model's pinned release, verified (models.fetch)
    photo_lighting {job_dir}  -> albedo tiles and the lighting as a world (backend.detail.photo.relight)
    neural_train {job_dir, steps?} -> the person's neural renderer, trained once on the photo
                                 (backend.learned.neural.training.train_subject)
    neural_frame {job_dir, rasters, out} -> the neural image of one Blender frame (backend.learned.neural.frame)
    capture {job_dir, video, name?, tolerance?, max_frames?, smoothing?}
                              -> backend.capture.track.capture's summary; writes protocol.capture.Capture
    diagnostics.wait / .fail  -> test jobs (sleep with progress and cancel; always an error)
    cancel / $/cancelRequest / shutdown   handled by the transport itself
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict

from protocol import methods, rpc
from protocol.details import SIZES
from protocol.health import Health
from protocol.scene import FaceRig, RigControl

from .. import __version__
from ..capture.track import capture as run_capture
from ..core.errors import NoFaceError
from ..core.progress import Job
from ..detail import registry
from ..detail.maps import build_details
from ..detail.photo.relight import photo_lighting as run_photo_lighting
from ..detail.rig import build_animation
from ..models import fetch
from ..models.emotions import au_rig, preset_controls
from ..models.loader import load_model
from ..reconstruct.pipeline import reconstruct as run_reconstruct
from .transport import Handler, Server


def health(server: Server, p: methods.NoParams, job: None) -> dict:
    torch_version, cuda, device, torch_error = None, False, None, None
    try:
        import torch  # the optional heavy dependency: reported, never required to answer

        torch_version = torch.__version__
        cuda = bool(torch.cuda.is_available())
        device = torch.cuda.get_device_name(0) if cuda else None
    except Exception as exc:  # noqa: BLE001 - health reports, never fails
        torch_error = f"{type(exc).__name__}: {exc}"
    running, queued = server.job_counts()
    models, auto = registry.describe()
    return asdict(Health(ok=True, pid=os.getpid(), protocol=rpc.PROTOCOL_VERSION, python=platform.python_version(),
                         executable=sys.executable, backend=__version__, torch=torch_version, cuda=cuda,
                         cuda_device=device, uptime_s=server.uptime_s, jobs_running=running, jobs_queued=queued,
                         detail_models=models, auto_detail_model=auto, torch_error=torch_error))


def reconstruct(server: Server, p: methods.ReconstructParams, job: Job) -> dict:
    return run_reconstruct(p.image, p.out_dir, p.model_dir or None, job, p.options)


def rig(server: Server, p: methods.RigParams, job: Job) -> dict:
    job.report(0.0, "Loading the face model")
    model = load_model(p.model_dir or None, None, job)  # a BFM file converts on first use
    controls = au_rig(model)
    return asdict(FaceRig(controls=[RigControl(**c) for c in controls], presets=preset_controls(model, controls)))


def fetch_model(server: Server, p: methods.FetchModelParams, job: Job) -> dict:
    return {"model_dir": str(fetch.fetch_model(p.dest, p.source or None, job))}


def capture(server: Server, p: methods.CaptureParams, job: Job) -> dict:
    return run_capture(p.job_dir, p.video, p.name, p.tolerance, job, p.max_frames, p.smoothing)


def photo_lighting(server: Server, p: methods.PhotoLightingParams, job: Job) -> dict:
    return run_photo_lighting(p.job_dir, job)


def neural_train(server: Server, p: methods.NeuralTrainParams, job: Job) -> dict:
    from ..learned.neural.training import train_subject  # torch: imported when first asked for

    return train_subject(p.job_dir, p.steps, job)


def neural_frame(server: Server, p: methods.NeuralFrameParams, job: Job) -> dict:
    from ..learned.neural.frame import neural_frame as run_frame

    return run_frame(p.job_dir, p.rasters, p.out, job)


def details(server: Server, p: methods.DetailsParams, job: Job) -> dict:
    return asdict(build_details(p.job_dir, p.expression, p.aus, p.age, tuple(p.sizes) if p.sizes else SIZES, p.seed,
                                job, detail_model=p.model, controls=p.controls))


def wrinkles(server: Server, p: methods.WrinklesParams, job: Job) -> dict:
    return asdict(build_animation(p.job_dir, p.size, p.age, p.seed, p.controls, p.keys or [], job, p.base_size,
                                  detail_model=p.model))


def wait(server: Server, p: methods.WaitParams, job: Job) -> dict:
    """diagnostics.wait: a job that only sleeps in steps, reports progress and honours cancel."""
    seconds, steps, noise = p.seconds, p.steps, p.noise
    t0 = time.monotonic()
    job.report(0.0, f"Waiting {seconds:g} s in {steps} steps")
    if noise:
        _make_noise()
    for i in range(1, steps + 1):
        deadline = t0 + seconds * i / steps
        while True:
            job.check()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.02))
        job.report(i / steps, f"Step {i} of {steps}")
    return {"steps": steps, "seconds": round(time.monotonic() - t0, 4)}


def fail(server: Server, p: methods.FailParams, job: None) -> None:
    """diagnostics.fail: always an error of the asked kind (tests of the error paths)."""
    kind = p.kind
    if kind == "facedet":
        raise NoFaceError("diagnostics.fail: a FaceDetError on purpose.", "Nothing to do: this is a test.")
    if kind == "exit":
        sys.exit(3)  # must not stop the server
    raise RuntimeError("diagnostics.fail: an unexpected exception on purpose")


def cancel(server: Server, p: methods.CancelParams, job: None) -> dict:
    return server.cancel(p.id)


def shutdown(server: Server, p: methods.NoParams, job: None) -> dict:
    return server.shutdown()


def _make_noise() -> None:
    """Write to stdout every way a handler or a library could (diagnostics.wait noise=true)."""
    print("noise: print() from a handler")
    sys.__stdout__.write("noise: sys.__stdout__.write\n")
    sys.__stdout__.flush()
    os.write(1, b"noise: os.write(1, ...)\n")
    try:
        libc = ctypes.CDLL(None)
        libc.puts(b"noise: libc puts()")
        libc.fflush(None)
    except (OSError, AttributeError, TypeError):
        pass
    subprocess.run([sys.executable, "-c", "print('noise: a child process printing')"], timeout=60, check=False)


TABLE: dict[str, Handler] = {
    methods.HEALTH: Handler(health, "quick"),
    methods.RECONSTRUCT: Handler(reconstruct, "job"),
    methods.DETAILS: Handler(details, "job"),
    methods.WRINKLES: Handler(wrinkles, "job"),
    methods.RIG: Handler(rig, "job"),
    methods.FETCH_MODEL: Handler(fetch_model, "job"),
    methods.CAPTURE: Handler(capture, "job"),
    methods.PHOTO_LIGHTING: Handler(photo_lighting, "job"),
    methods.NEURAL_TRAIN: Handler(neural_train, "job"),
    methods.NEURAL_FRAME: Handler(neural_frame, "job"),
    methods.WAIT: Handler(wait, "job"),
    methods.FAIL: Handler(fail, "quick"),
    methods.CANCEL: Handler(cancel, "inline"),
    methods.CANCEL_NOTIFICATION: Handler(cancel, "inline"),
    methods.SHUTDOWN: Handler(shutdown, "inline"),
}
# A request's detail model must be one the registry has (checked only when one is named, so the
# registry, and torch with it, loads on the first request that needs it).
CHECKS = {"model": lambda v: methods.choice_check(registry.names())(v)}
