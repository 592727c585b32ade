"""Backend health check and restart; getting the default model."""

from __future__ import annotations

import os

import bpy

from ...protocol.methods import FETCH_MODEL, FetchModelParams
from ..link import jobs, session
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
