"""Backend health check and restart."""

from __future__ import annotations

import bpy

from ..addon import jobs, session
from ..addon.preferences import prefs


class FACEDET3D_OT_backend_check(bpy.types.Operator):
    """Start the backend if needed and report its health"""

    bl_idname = "facedet3d.backend_check"
    bl_label = "Check Backend"

    def execute(self, context):
        p = prefs(context)
        try:
            h = session.get_client(p.backend_python if p else "", p.model_dir if p else "").health(timeout=60)
        except Exception as exc:
            self.report({"ERROR"}, jobs.describe(exc))
            return {"CANCELLED"}
        dev = "CUDA" if h.get("cuda") else "CPU"
        learned = h.get("detail_models", {})
        names = learned.get("names", {})
        details = (f"DetH {names.get('deth')} + {names.get('rcan')}" if learned.get("deth")
                   else "physical wrinkle model only (no DetH weights)")
        self.report({"INFO"}, f"Backend OK: pid {h.get('pid')}, Python {h.get('python')}, "
                              f"torch {h.get('torch')} on {dev}; details: {details}")
        return {"FINISHED"}


class FACEDET3D_OT_backend_restart(bpy.types.Operator):
    """Stop the backend process; the next job starts a fresh one"""

    bl_idname = "facedet3d.backend_restart"
    bl_label = "Restart Backend"

    def execute(self, context):
        session.shutdown()
        self.report({"INFO"}, "Backend stopped; it restarts with the next job.")
        return {"FINISHED"}


CLASSES = (FACEDET3D_OT_backend_check, FACEDET3D_OT_backend_restart)
