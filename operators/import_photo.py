"""Import Photo: photo -> reconstructed, textured face object, camera and light."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ImportHelper

from ..addon import jobs, scene_builder, session, settings, storage
from ..addon.preferences import prefs


class FACEDET3D_OT_import_photo(bpy.types.Operator, ImportHelper):
    """Reconstruct a textured 3D face from one photo"""

    bl_idname = "facedet3d.import_photo"
    bl_label = "Import Photo"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*" + ";*".join(jobs.IMAGE_EXTENSIONS), options={"HIDDEN"})
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    _call = None
    _timer = None
    _job_dir: Path | None = None

    def _start(self, context):
        p = prefs(context)
        model_dir = settings.model_dir(p.model_dir if p else "")
        jobs.check_inputs(self.filepath, model_dir)
        client = session.get_client(p.backend_python if p else "")
        self._job_dir = storage.new_job_dir(self.filepath, context)
        return client, jobs.reconstruct_params(self.filepath, self._job_dir, model_dir)

    def _finish(self, context):
        try:
            built = scene_builder.build_face(context, self._job_dir)
        except Exception as exc:  # a broken job folder: report, keep the scene as it was
            jobs.discard(self._job_dir)
            self.report({"ERROR"}, f"Could not build the face: {exc}")
            return {"CANCELLED"}
        for o in context.view_layer.objects:
            o.select_set(False)
        built.obj.select_set(True)
        context.view_layer.objects.active = built.obj
        self.report({"INFO"}, f"Imported {built.obj.name} (fit error "
                              f"{built.obj.facedet3d.fit_error_iod * 100:.1f}% of eye distance)")
        return {"FINISHED"}

    def execute(self, context):
        try:
            client, params = self._start(context)
        except (jobs.InputError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:
            # No event loop in `blender -b`: run the job blocking.
            try:
                client.call("reconstruct", params, timeout=1800,
                            on_progress=lambda f, m: print(f"FaceDet3D {f * 100:5.1f}% {m}", flush=True))
            except Exception as exc:
                jobs.discard(self._job_dir)
                self.report({"ERROR"}, jobs.describe(exc))
                return {"CANCELLED"}
            return self._finish(context)
        self._call = client.submit("reconstruct", params)
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        context.workspace.status_text_set("FaceDet3D: starting the backend… (Esc cancels)")
        return {"RUNNING_MODAL"}

    def _cleanup(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)

    def modal(self, context, event):
        if event.type == "ESC":
            self._call.cancel()
            context.workspace.status_text_set("FaceDet3D: cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not self._call.done():
            frac, msg = self._call.progress
            context.window_manager.progress_update(int(frac * 100))
            context.workspace.status_text_set(f"FaceDet3D: {msg} ({frac * 100:.0f}%) — Esc cancels")
            return {"RUNNING_MODAL"}
        self._cleanup(context)
        try:
            self._call.result(timeout=0)
        except Exception as exc:
            jobs.discard(self._job_dir)
            if getattr(exc, "code", None) == -32800:
                self.report({"WARNING"}, "Import cancelled; the scene is unchanged.")
            else:
                self.report({"ERROR"}, jobs.describe(exc))
            return {"CANCELLED"}
        return self._finish(context)

    def cancel(self, context):
        if self._call is not None and not self._call.done():
            self._call.cancel()
        self._cleanup(context)
        if self._job_dir is not None:
            jobs.discard(self._job_dir)


CLASSES = (FACEDET3D_OT_import_photo,)
