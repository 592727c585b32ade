"""JSON-RPC 2.0 over a pair of byte streams, one JSON message per line: framing, dispatch to a
method table, progress notifications, cancellation, and the threads that keep a long job from
blocking ``cancel``, ``health`` or ``shutdown``. What each method does is ``methods``; the
process around it (stdio, logging) is ``server``.

Threads: the reader thread answers "inline" methods (cancel, shutdown) itself; "quick" ones run
on a small pool, jobs on a job pool (``FACEDET3D_BACKEND_JOB_WORKERS``, default 2). One bad
request never stops the server.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional

from protocol import methods, rpc

from ..core.errors import FaceDetError
from ..core.progress import Job

log = logging.getLogger("facedet3d.backend")
BACKEND_PACKAGE = __name__.split(".")[0]  # "backend": an ImportError of it means a broken install

JOB_WORKERS = int(os.environ.get("FACEDET3D_BACKEND_JOB_WORKERS", "2"))
QUICK_WORKERS = 2
SHUTDOWN_GRACE_S = 10.0  # how long shutdown / EOF waits for cancelled jobs to answer
PROGRESS_MIN_INTERVAL_S = 0.1  # repeats of one message are sent at most this often
_LOG_HINT = "This is a bug in the backend; its traceback is in the backend log{where}."


@dataclass
class Handler:
    """A method: ``fn(server, params, job)`` returns the result (JSON-able) or raises;
    ``kind``: "inline" (reader thread), "quick" (pool) or "job" (job pool, cancellable: ``job``
    is its :class:`Job`, else None)."""

    fn: Callable[["Server", Any, Optional[Job]], Any]
    kind: str


@dataclass
class _Running:
    job: Job
    method: str
    started: bool = False


def _request_id_ok(v: Any) -> bool:
    return v is None or isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _key(id_: Any) -> str:
    return json.dumps(id_)  # 1 and "1" are different requests


# ---- a small pool of daemon threads ----------------------------------------------------------

class _Pool:
    """Daemon workers, so a job stuck in C code can never keep the process alive at exit."""

    def __init__(self, n: int, name: str):
        self._q: queue.Queue = queue.Queue()
        for i in range(max(1, n)):
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True).start()

    def submit(self, fn: Callable[[], None]) -> None:
        self._q.put(fn)

    def _work(self) -> None:
        while True:
            fn = self._q.get()
            try:
                fn()
            except BaseException:  # noqa: BLE001 - _run answers; nothing may kill a worker
                traceback.print_exc()


class Server:
    """``table``: method name -> :class:`Handler`; ``checks``: extra parameter checks by name
    (``protocol.methods.parse``)."""

    def __init__(self, out: BinaryIO, table: dict[str, Handler], checks: Optional[dict] = None):
        self._out = out
        self._out_lock = threading.Lock()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running: dict[str, _Running] = {}
        self._inflight = 0  # pooled requests not yet answered
        self._t0 = time.monotonic()
        self.stopping = False
        self._broken = False
        self._quick = _Pool(QUICK_WORKERS, "quick")
        self._jobs = _Pool(JOB_WORKERS, "job")
        self.table = table
        self.checks = checks or {}

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def job_counts(self) -> tuple[int, int]:
        """(running, queued) jobs."""
        with self._lock:
            running = sum(r.started for r in self._running.values())
            return running, len(self._running) - running

    # ---- output ----
    def send(self, msg: dict) -> None:
        self.send_raw(rpc.encode(msg))

    def send_raw(self, data: bytes) -> None:
        with self._out_lock:
            if self._broken:
                return
            try:
                self._out.write(data)
                self._out.flush()
            except (OSError, ValueError) as exc:  # the client went away: stop answering
                self._broken = True
                log.warning("cannot write to the client (%s); stopping", exc)

    def _error(self, id_: Any, err: dict) -> None:
        self.send(rpc.error(id_, err))

    # ---- input ----
    def handle_line(self, raw: bytes) -> None:
        raw = raw.strip()
        if not raw:
            return
        try:
            msg = rpc.decode(raw)
        except ValueError as exc:
            log.warning("parse error: %s in %r", exc, raw[:200])
            self._error(None, rpc.RpcError(f"Parse error: {exc}", "Send one JSON object per line.",
                                           rpc.PARSE_ERROR).to_dict())
            return
        if isinstance(msg, list):
            self._error(None, rpc.InvalidRequest("Batch requests are not supported.",
                                                 "Send one JSON object per line.").to_dict())
            return
        id_ = msg.get("id") if isinstance(msg, dict) else None
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str) \
                or not _request_id_ok(id_) or ("result" in msg or "error" in msg):
            self._error(id_ if _request_id_ok(id_) else None, rpc.InvalidRequest(
                "Invalid request: expected {\"jsonrpc\": \"2.0\", \"method\": <string>, \"params\": {...}, "
                "\"id\": <number or string>}.").to_dict())
            return
        self.dispatch(msg)

    def dispatch(self, msg: dict) -> None:
        method, notify = msg["method"], "id" not in msg
        id_ = msg.get("id")
        entry = self.table.get(method)
        if entry is None:
            log.warning("unknown method %r (id %s)", method, id_)
            if not notify:
                self._error(id_, rpc.MethodNotFound(
                    f"Unknown method '{method}'.",
                    "Known methods: " + ", ".join(sorted(self.table)) + ". Are the add-on and the backend "
                    "the same version?").to_dict())
            return
        try:
            params = methods.parse(method, msg.get("params"), self.checks)
        except rpc.RpcError as exc:
            log.warning("%s", exc.message)
            if not notify:
                self._error(id_, exc.to_dict())
            return
        if entry.kind == "inline":
            self._run(entry, method, id_, notify, params, None)
            return
        job = None
        with self._lock:
            if entry.kind == "job":
                key = _key(id_)
                if not notify and key in self._running:
                    self._error(id_, rpc.InvalidRequest(f"Request id {id_} is already in use by a running "
                                                        "request.", "Use a new id for every request.").to_dict())
                    return
                job = Job(self._progress_fn(id_) if not notify else None)
                if not notify:
                    self._running[key] = _Running(job, method)
            self._inflight += 1
        pool = self._jobs if entry.kind == "job" else self._quick
        pool.submit(lambda: self._run(entry, method, id_, notify, params, job))

    def _progress_fn(self, id_: Any) -> Callable[[float, str], None]:
        last = {"f": -1.0, "m": None, "t": 0.0}

        def progress(fraction: float, message: str) -> None:
            f = max(float(fraction), last["f"], 0.0)  # never decreases
            now = time.monotonic()
            if message == last["m"] and f < 1.0 and now - last["t"] < PROGRESS_MIN_INTERVAL_S:
                return
            last.update(f=f, m=message, t=now)
            self.send(rpc.notification(methods.PROGRESS, {"id": id_, "fraction": round(min(f, 1.0), 6),
                                                    "message": str(message)}))
        return progress

    def _run(self, entry: Handler, method: str, id_: Any, notify: bool, params: Any, job: Optional[Job]) -> None:
        t0 = time.monotonic()
        key = _key(id_)
        reply: Optional[bytes] = None
        try:
            if job is not None:
                with self._lock:
                    r = self._running.get(key)
                    if r is not None and r.job is job:
                        r.started = True
                job.check()  # cancelled while it waited for a worker
                log.info("%s (id %s) started", method, id_)
            value = entry.fn(self, params, job)
            reply = rpc.encode(rpc.result(id_, value))  # inside the try: an unencodable result is an error
            if entry.kind != "inline":
                log.info("%s (id %s) done in %.2f s", method, id_, time.monotonic() - t0)
        except (FaceDetError, rpc.RpcError) as exc:
            log.info("%s (id %s) answered error %s: %s", method, id_, exc.code, exc.message)
            reply = rpc.encode(rpc.error(id_, exc.to_dict()))
        except BaseException as exc:  # noqa: BLE001 - SystemExit in a handler must not stop the server
            log.error("%s (id %s) failed:\n%s", method, id_, traceback.format_exc())
            reply = rpc.encode(rpc.error(id_, _internal_error(exc)))
        finally:
            if job is not None:  # no longer cancellable: `cancel` now answers {cancelled: false}
                with self._lock:
                    r = self._running.get(key)
                    if r is not None and r.job is job:
                        del self._running[key]
        try:
            if reply is not None and not notify:
                self.send_raw(reply)
        finally:
            if entry.kind != "inline":
                with self._lock:
                    self._inflight -= 1
                    self._idle.notify_all()

    def cancel(self, id_: Any) -> dict:
        with self._lock:
            r = self._running.get(_key(id_))
        if r is None:
            log.info("cancel %s: no such running request", id_)
            return {"cancelled": False}
        r.job.cancel()
        log.info("cancel %s (%s)", id_, r.method)
        return {"cancelled": True}

    def shutdown(self) -> dict:
        self.stopping = True
        with self._lock:
            n = len(self._running)
        log.info("shutdown requested (%d job(s) to cancel)", n)
        return {"ok": True, "jobs_cancelled": n}

    def close(self, reason: str) -> bool:
        """Cancel every job, wait for their answers; True when nothing is left running."""
        self.stopping = True
        with self._lock:
            jobs = list(self._running.values())
        for r in jobs:
            r.job.cancel()
        log.info("stopping (%s); cancelled %d job(s)", reason, len(jobs))
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        with self._lock:
            while self._inflight and time.monotonic() < deadline:
                self._idle.wait(timeout=max(0.0, deadline - time.monotonic()))
            left = self._inflight
        if left:
            log.warning("%d request(s) still running after %.0f s; exiting anyway", left, SHUTDOWN_GRACE_S)
        return left == 0


def _internal_error(exc: BaseException) -> dict:
    """-32603 with the exception's text and a hint pointing at the log (or at the missing module)."""
    where = os.environ.get("FACEDET3D_BACKEND_LOG")
    hint = _LOG_HINT.format(where=f" ({where})" if where else "")
    if isinstance(exc, ImportError):
        if (exc.name or "").split(".")[0] == BACKEND_PACKAGE:
            hint = "The backend package is incomplete (a module is missing): reinstall the extension."
        else:
            hint = (f"The backend environment lacks the package '{exc.name}': install it into the backend "
                    "interpreter's environment (scripts/setup.sh does this in a checkout). " + hint)
    return {"code": rpc.INTERNAL_ERROR, "message": f"{type(exc).__name__}: {exc}",
            "data": {"hint": hint, "kind": type(exc).__name__}}
