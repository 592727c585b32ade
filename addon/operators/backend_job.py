"""The modal loop every backend-job operator shares: submit, show progress, Esc cancels.

In ``blender -b`` there is no event loop, so the same job runs blocking instead.
Subclasses implement ``start(context) -> (method, params)`` (raising ``jobs.InputError`` on
bad input), ``finish(context, result) -> set`` and optionally ``discard(context)``.
"""

from __future__ import annotations

import bpy

from ...protocol.details import AUTO_MODEL
from ..link import jobs, session
from ..prefs import prefs

_ITEMS: list[tuple[str, str, str]] = []  # Blender keeps no reference to dynamic items: we must


def detail_model_items(self, context):
    """The detail models the backend offers (its registry, through its health answer), for an
    EnumProperty; "auto" alone (the backend picks) when the backend cannot answer."""
    p = prefs(context)
    models = session.detail_models(p.backend_python if p else "", p.model_dir if p else "")
    items = [(m.name, m.label + ("" if m.available else " (unavailable)"),
              m.description + (f" Unavailable: {m.reason}" if not m.available else "")) for m in models]
    _ITEMS[:] = items or [(AUTO_MODEL, "Auto", "The best detail model the backend has (check the backend to list "
                                              "them all)")]
    return _ITEMS


class BackendJobMixin:
    _call = None
    _timer = None
    label_running = "FaceDet3D"

    def discard(self, context) -> None:
        """Undo what start() prepared (e.g. remove a job folder); the scene is untouched."""

    def client(self, context):
        p = prefs(context)
        return session.get_client(p.backend_python if p else "", p.model_dir if p else "")

    def execute(self, context):
        try:
            method, params = self.start(context)
            client = self.client(context)
        except (jobs.InputError, OSError) as exc:
            self.discard(context)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:
            try:
                result = client.call(method, params, timeout=3600, on_progress=lambda f, m: print(
                    f"{self.label_running} {f * 100:5.1f}% {m}", flush=True))
            except Exception as exc:
                return self._failed(context, exc)
            return self._finish(context, result)
        self._call = client.submit(method, params)
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        context.workspace.status_text_set(f"{self.label_running}: starting… (Esc cancels)")
        return {"RUNNING_MODAL"}

    def _failed(self, context, exc):
        self.discard(context)
        if getattr(exc, "code", None) == -32800:
            self.report({"WARNING"}, f"{self.bl_label} cancelled; the scene is unchanged.")
        else:
            self.report({"ERROR"}, jobs.describe(exc))
        return {"CANCELLED"}

    def _finish(self, context, result):
        try:
            return self.finish(context, result)
        except Exception as exc:  # a broken result: report, keep the scene as it was
            self.discard(context)
            self.report({"ERROR"}, f"{self.bl_label} failed while building the scene: {exc}")
            return {"CANCELLED"}

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
            context.workspace.status_text_set(f"{self.label_running}: cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if not self._call.done():
            frac, msg = self._call.progress
            context.window_manager.progress_update(int(frac * 100))
            context.workspace.status_text_set(f"{self.label_running}: {msg} ({frac * 100:.0f}%) — Esc cancels")
            return {"RUNNING_MODAL"}
        self._cleanup(context)
        try:
            result = self._call.result(timeout=0)
        except Exception as exc:
            return self._failed(context, exc)
        return self._finish(context, result)

    def cancel(self, context):
        if self._call is not None and not self._call.done():
            self._call.cancel()
        self._cleanup(context)
        self.discard(context)
