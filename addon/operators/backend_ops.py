"""Backend health check and restart; getting the default model."""

from __future__ import annotations

import os

import bpy
from bpy.props import EnumProperty, StringProperty

from ...protocol.methods import FETCH_MODEL, FetchModelParams
from ..link import backend_env, jobs, session, settings
from ..link.client import BackendClient
from ..prefs import prefs
from .backend_job import BackendJobMixin


class FACEDET3D_OT_backend_check(bpy.types.Operator):
    """Start the backend if needed and report its health"""

    bl_idname = "facedet3d.backend_check"
    bl_label = "Check Backend"

    def execute(self, context):
        p = prefs(context)
        try:
            answer = session.get_client(p.backend_python if p else "", p.model_dir if p else "").health(timeout=60)
            h = session.remember_health(answer)
        except Exception as exc:
            self.report({"ERROR"}, jobs.describe(exc))
            return {"CANCELLED"}
        dev = h.cuda_device or "CUDA" if h.cuda else "CPU"
        ready = [m.label + (f" ({m.made_by})" if m.made_by and m.made_by != m.name else "")
                 for m in h.detail_models[1:] if m.available]
        self.report({"INFO"}, f"Backend OK: pid {h.pid}, Python {h.python}, torch {h.torch} on {dev}; "
                              f"detail models: {', '.join(ready) or 'none'} (auto: {h.auto_detail_model})")
        return {"FINISHED"}


class FACEDET3D_OT_backend_restart(bpy.types.Operator):
    """Stop the backend process; the next job starts a fresh one"""

    bl_idname = "facedet3d.backend_restart"
    bl_label = "Restart Backend"

    def execute(self, context):
        session.shutdown()
        self.report({"INFO"}, "Backend stopped; it restarts with the next job.")
        return {"FINISHED"}


class FACEDET3D_OT_get_default_model(BackendJobMixin, bpy.types.Operator):
    """Download the default face model (the ICT-FaceKit release, MIT, ~400 MB) into the extension's
    user folder, check every file, and set the Model folder to it"""

    bl_idname = "facedet3d.get_default_model"
    bl_label = "Get the Default Model"
    label_running = "Getting the default model"

    def start(self, context):
        dest = session.user_folder("models") / "ict-facekit"
        if dest.is_dir() and any(dest.iterdir()):
            raise jobs.InputError(f"{dest} already holds a model: set 'Model folder' to it, or delete it to "
                                  "download again.")
        # a studio mirror or local copy of the repository instead of GitHub
        return FETCH_MODEL, FetchModelParams(dest=str(dest), source=os.environ.get("FACEDET3D_MODEL_SOURCE") or None)

    def finish(self, context, result):
        p = prefs(context)
        if p is not None:
            p.model_dir = result["model_dir"]
        session.shutdown()  # the backend was started without a model folder: the next job gets it
        self.report({"INFO"}, f"Default model ready in {result['model_dir']} (Model folder set).")
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_backend_check, FACEDET3D_OT_backend_restart, FACEDET3D_OT_get_default_model)


def _env_dir():
    return session.user_folder("backend") / "env"


def _check_health(python: str) -> dict:
    """Start a backend from ``python`` (the new environment) and ask its health."""
    client = BackendClient(python, str(settings.EXTENSION_ROOT), env=session.backend_env(""))
    try:
        return client.health(timeout=300)
    finally:
        client.shutdown(timeout=10)


class FACEDET3D_OT_setup_backend(bpy.types.Operator):
    """Make the backend's Python environment in the extension's user folder (a virtual environment
    with the pinned packages that ship in the extension), check it, and use it"""

    bl_idname = "facedet3d.setup_backend"
    bl_label = "Set Up Backend"

    python: StringProperty(name="Python", default="", subtype="FILE_PATH",
                           description="A Python 3.11 to make the environment with (empty: found automatically)")
    torch_build: EnumProperty(name="Torch build", default="default", items=[
        ("default", "As the package index has it", "What pip resolves: on Linux PyPI's torch brings CUDA "
                                                   "libraries (a GPU is used when there is one); on macOS and "
                                                   "Windows a CPU build"),
        ("cpu", "CPU only", "PyTorch's CPU-only wheels: a smaller download, never a GPU")])

    _job = None
    _timer = None

    def execute(self, context):
        p = prefs(context)
        python, why = backend_env.find_python(self.python or (p.setup_python if p else ""))
        if not python:
            self.report({"ERROR"}, why)
            return {"CANCELLED"}
        session.shutdown()  # a backend running from the environment being changed
        self._job = backend_env.SetupJob(_env_dir(), python, self.torch_build, _check_health).start()
        if bpy.app.background or context.window is None:
            self._job.wait()
            return self._finish(context)
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not self._job.done:
            frac, words = self._job.progress
            context.window_manager.progress_update(int(frac * 100))
            context.workspace.status_text_set(f"Set Up Backend: {words} ({frac * 100:.0f}%) — Esc cancels")
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        context.workspace.status_text_set(None)
        return self._finish(context)

    def _finish(self, context):
        if self._job.error:
            self.report({"ERROR"}, f"Set Up Backend: {self._job.error}")
            return {"CANCELLED"}
        env = _env_dir()
        p = prefs(context)
        if p is not None:
            p.backend_python = backend_env.python_of(env)
        self.report({"INFO"}, f"{backend_env.state(env).detail} ({backend_env.python_of(env)})")
        return {"FINISHED"}


class FACEDET3D_OT_remove_backend(bpy.types.Operator):
    """Delete the backend environment made by Set Up Backend"""

    bl_idname = "facedet3d.remove_backend"
    bl_label = "Remove"

    def execute(self, context):
        env = _env_dir()
        session.shutdown()
        try:
            backend_env.remove(env)
        except OSError as exc:
            self.report({"ERROR"}, f"Could not delete {env} ({exc.strerror or exc}); close programs using it.")
            return {"CANCELLED"}
        p = prefs(context)
        if p is not None and p.backend_python == backend_env.python_of(env):
            p.backend_python = ""
        self.report({"INFO"}, f"Removed {env}")
        return {"FINISHED"}


CLASSES = CLASSES + (FACEDET3D_OT_setup_backend, FACEDET3D_OT_remove_backend)
