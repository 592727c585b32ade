"""Backend health check and restart."""

from __future__ import annotations

import bpy

from ..link import jobs, session
from ..prefs import prefs


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


CLASSES = (FACEDET3D_OT_backend_check, FACEDET3D_OT_backend_restart)
