"""The backend process: JSON-RPC 2.0 over stdin/stdout, one JSON message per line.

    python -m backend.server        (cwd or PYTHONPATH: the folder holding ``backend/``)

Framing: every message is one line of UTF-8 JSON (the server writes ASCII: non-ASCII is
escaped) ending in ``\\n``; no message contains a raw newline. The client writes requests
and notifications to the server's stdin; the server writes responses and notifications to
its stdout. The real stdout is reserved for protocol messages: at startup the server moves
it to a private file descriptor and points ``sys.stdout`` *and* fd 1 at stderr (os.dup2), so
a stray ``print`` or a C library writing to fd 1 lands in the log, never in the channel;
fd 0 becomes /dev/null for the same reason. stderr is the human-readable log (the client
appends it to a log file).

Methods (params are a JSON object; unknown or mistyped params answer -32602):

  health {}                       -> {ok, pid, protocol, python, executable, backend, torch,
                                      cuda, cuda_device, uptime_s, jobs_running, jobs_queued}
  reconstruct {image, out_dir, model_dir?, options?}
                                  -> backend.pipeline.reconstruct(...)'s summary dict
  diagnostics.wait {seconds, steps?=10, noise?=false}
                                  -> {steps, seconds}; sleeps in steps, reports progress and
                                     honours cancel, like a job (tests, health checks)
  diagnostics.fail {kind: "internal"|"facedet"|"exit"} -> always an error (tests)
  cancel {id}                     -> {cancelled: bool}; sets that request's cancel flag; the
                                     cancelled request answers error -32800
  $/cancelRequest {id}            (notification, LSP style) the same, no answer
  shutdown {}                     -> {ok: true, jobs_cancelled: n}; the server reads nothing
                                     more, cancels the running jobs, they answer, and the
                                     process exits with 0

Notification from the server: ``progress`` {id: the request's id, fraction: 0..1 (never
decreasing for one request), message}; only for requests with an id.

Errors (``error.data`` = {hint, kind}): -32700 parse error, -32600 invalid request (also a
batch, or an id already in use), -32601 unknown method, -32602 bad params, -32603 internal
error (the exception's text; the traceback goes to stderr), -32800 cancelled, FaceDetError
codes (-32000, -32010 .. -32013; backend/errors.py).

Threads: the main thread reads stdin and answers ``cancel``/``shutdown`` itself; ``health``
and the diagnostics run on a small "quick" pool, jobs (``reconstruct``, ``diagnostics.wait``)
on a small "job" pool, so a long job never delays cancel, health or shutdown. One bad
request never stops the server. EOF on stdin (the client went away) cancels the running
jobs and exits cleanly.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Optional

from . import __version__, rpc
from .errors import FaceDetError, NoFaceError
from .progress import Job

log = logging.getLogger("facedet3d.backend")

JOB_WORKERS = int(os.environ.get("FACEDET3D_BACKEND_JOB_WORKERS", "2"))
QUICK_WORKERS = 2
SHUTDOWN_GRACE_S = 10.0  # how long shutdown / EOF waits for cancelled jobs to answer
PROGRESS_MIN_INTERVAL_S = 0.1  # repeats of one message are sent at most this often

_NUMBER = (int, float)
_LOG_HINT = "This is a bug in the backend; its traceback is in the backend log{where}."


# ---- params ------------------------------------------------------------------------------

@dataclass
class Param:
    types: tuple
    required: bool = False
    default: Any = None
    check: Optional[Callable[[Any], Optional[str]]] = None  # returns a complaint or None


def _type_name(types: tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             dict: "an object", list: "an array", type(None): "null"}
    if float in types:  # "a number" covers int
        types = tuple(t for t in types if t is not int)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def parse_params(method: str, params: Any, spec: dict[str, Param]) -> dict:
    """Validate ``params`` against ``spec``; raises :class:`rpc.InvalidParams` naming the problem."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise rpc.InvalidParams(f"{method}: params must be an object (named parameters), "
                                f"not {type(params).__name__}.", f"Send {{{', '.join(spec)}}}.")
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise rpc.InvalidParams(f"{method}: unknown parameter(s) {', '.join(unknown)}.",
                                f"Expected: {', '.join(spec) or 'none'}.")
    out = {}
    for name, p in spec.items():
        if name not in params:
            if p.required:
                raise rpc.InvalidParams(f"{method}: missing parameter '{name}'.",
                                        f"'{name}' must be {_type_name(p.types)}.")
            out[name] = p.default
            continue
        v = params[name]
        ok = isinstance(v, p.types) and not (isinstance(v, bool) and bool not in p.types)
        if not ok:
            raise rpc.InvalidParams(f"{method}: '{name}' must be {_type_name(p.types)}, not {json.dumps(v)[:60]}.")
        complaint = p.check(v) if p.check else None
        if complaint:
            raise rpc.InvalidParams(f"{method}: '{name}' {complaint}.")
        out[name] = v
    return out


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


@dataclass
class _Method:
    handler: Callable[..., Any]
    kind: str  # "inline" (reader thread), "quick" (pool) or "job" (job pool, cancellable)
    spec: dict


@dataclass
class _Running:
    job: Job
    method: str
    started: bool = False


# ---- the server ------------------------------------------------------------------------------

class Server:
    def __init__(self, out: BinaryIO):
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
        seconds = Param(_NUMBER, True, check=lambda v: None if 0 <= v <= 86400 else "must be 0 .. 86400")
        steps = Param((int,), False, 10, check=lambda v: None if 1 <= v <= 100000 else "must be 1 .. 100000")
        detail_model = Param((str,), False, "auto", check=lambda v: None if v in ("auto", "physical", "deth")
                             else "must be auto, physical or deth")
        self.methods: dict[str, _Method] = {
            "health": _Method(self.health, "quick", {}),
            "reconstruct": _Method(self.reconstruct, "job", {
                "image": Param((str,), True), "out_dir": Param((str,), True),
                "model_dir": Param((str, type(None))), "options": Param((dict, type(None)))}),
            "details": _Method(self.details, "job", {
                "job_dir": Param((str,), True), "expression": Param((list, type(None))),
                "aus": Param((dict, type(None))), "age": Param((int, float, type(None))),
                "sizes": Param((list, type(None))), "seed": Param((int,), False, 0), "model": detail_model}),
            "wrinkles": _Method(self.wrinkles, "job", {
                "job_dir": Param((str,), True), "size": Param((int,), False, 1024),
                "age": Param((int, float, type(None))), "seed": Param((int,), False, 0),
                "controls": Param((list, type(None))), "keys": Param((list,), False, []),
                "base_size": Param((int,), False, 4096, check=lambda v: None if v in (256, 512, 1024, 2048, 4096)
                                   else "must be 256, 512, 1024, 2048 or 4096"), "model": detail_model}),
            "diagnostics.wait": _Method(self.wait, "job", {
                "seconds": seconds, "steps": steps, "noise": Param((bool,), False, False)}),
            "diagnostics.fail": _Method(self.fail, "quick", {"kind": Param(
                (str,), True, check=lambda v: None if v in ("internal", "facedet", "exit")
                else "must be internal, facedet or exit")}),
            "cancel": _Method(self.cancel, "inline", {"id": Param((str, int, float), True)}),
            "$/cancelRequest": _Method(self.cancel, "inline", {"id": Param((str, int, float), True)}),
            "shutdown": _Method(self.shutdown, "inline", {}),
        }

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
        entry = self.methods.get(method)
        if entry is None:
            log.warning("unknown method %r (id %s)", method, id_)
            if not notify:
                self._error(id_, rpc.MethodNotFound(
                    f"Unknown method '{method}'.",
                    "Known methods: " + ", ".join(sorted(self.methods)) + ". Are the add-on and the backend "
                    "the same version?").to_dict())
            return
        try:
            kwargs = parse_params(method, msg.get("params"), entry.spec)
        except rpc.RpcError as exc:
            log.warning("%s", exc.message)
            if not notify:
                self._error(id_, exc.to_dict())
            return
        if entry.kind == "inline":
            self._run(entry, method, id_, notify, kwargs, None)
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
        pool.submit(lambda: self._run(entry, method, id_, notify, kwargs, job))

    def _progress_fn(self, id_: Any) -> Callable[[float, str], None]:
        last = {"f": -1.0, "m": None, "t": 0.0}

        def progress(fraction: float, message: str) -> None:
            f = max(float(fraction), last["f"], 0.0)  # never decreases
            now = time.monotonic()
            if message == last["m"] and f < 1.0 and now - last["t"] < PROGRESS_MIN_INTERVAL_S:
                return
            last.update(f=f, m=message, t=now)
            self.send(rpc.notification("progress", {"id": id_, "fraction": round(min(f, 1.0), 6),
                                                    "message": str(message)}))
        return progress

    def _run(self, entry: _Method, method: str, id_: Any, notify: bool, kwargs: dict, job: Optional[Job]) -> None:
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
                value = entry.handler(job=job, **kwargs)
            else:
                value = entry.handler(**kwargs)
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

    # ---- methods ----
    def health(self) -> dict:
        torch_version, cuda, device, torch_error = None, False, None, None
        try:
            import torch

            torch_version = torch.__version__
            cuda = bool(torch.cuda.is_available())
            device = torch.cuda.get_device_name(0) if cuda else None
        except Exception as exc:  # noqa: BLE001 - health reports, never fails
            torch_error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            running = sum(r.started for r in self._running.values())
            queued = len(self._running) - running
        out = {"ok": True, "pid": os.getpid(), "protocol": rpc.PROTOCOL_VERSION,
               "python": platform.python_version(), "executable": sys.executable, "backend": __version__,
               "torch": torch_version, "cuda": cuda, "cuda_device": device,
               "uptime_s": round(time.monotonic() - self._t0, 3), "jobs_running": running, "jobs_queued": queued}
        if torch_error:
            out["torch_error"] = torch_error
        out["detail_models"] = _learned_status()
        return out

    def reconstruct(self, job: Job, image: str, out_dir: str, model_dir: Optional[str] = None,
                    options: Optional[dict] = None) -> dict:
        from .pipeline import reconstruct  # lazily: the server starts without the heavy imports

        return reconstruct(image, out_dir, model_dir or None, job, options)

    def details(self, job: Job, job_dir: str, expression: Optional[list] = None, aus: Optional[dict] = None,
                age: Optional[float] = None, sizes: Optional[list] = None, seed: int = 0,
                model: str = "auto") -> dict:
        from .details import SIZES, build_details  # lazily, like reconstruct

        return build_details(job_dir, expression, aus, age, tuple(sizes) if sizes else SIZES, seed, job,
                             detail_model=model)

    def wrinkles(self, job: Job, job_dir: str, size: int = 1024, age: Optional[float] = None, seed: int = 0,
                 controls: Optional[list] = None, keys: Optional[list] = None, base_size: int = 4096,
                 model: str = "auto") -> dict:
        from .wrinkle_rig import build_animation

        return build_animation(job_dir, size, age, seed, controls, keys or [], job, base_size, detail_model=model)

    def wait(self, job: Job, seconds: float, steps: int = 10, noise: bool = False) -> dict:
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

    def fail(self, kind: str) -> None:
        if kind == "facedet":
            raise NoFaceError("diagnostics.fail: a FaceDetError on purpose.", "Nothing to do: this is a test.")
        if kind == "exit":
            sys.exit(3)  # must not stop the server
        raise RuntimeError("diagnostics.fail: an unexpected exception on purpose")

    def cancel(self, id: Any) -> dict:  # noqa: A002 - the protocol's name
        with self._lock:
            r = self._running.get(_key(id))
        if r is None:
            log.info("cancel %s: no such running request", id)
            return {"cancelled": False}
        r.job.cancel()
        log.info("cancel %s (%s)", id, r.method)
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


def _learned_status() -> dict:
    """Which detail models this backend can run (the learned ones need their weights)."""
    try:
        from .learned import weights

        names = {kind: weights.metadata(kind)["info"].get("name", kind)
                 for kind in ("deth", "rcan") if weights.available(kind)}
        return {"physical": True, "deth": len(names) == 2, "names": names, "weights_dir": str(weights.weights_dir())}
    except Exception as exc:  # noqa: BLE001 - health reports, never fails
        return {"physical": True, "deth": False, "error": f"{type(exc).__name__}: {exc}"}


def _internal_error(exc: BaseException) -> dict:
    """-32603 with the exception's text and a hint pointing at the log (or at the missing module)."""
    where = os.environ.get("FACEDET3D_BACKEND_LOG")
    hint = _LOG_HINT.format(where=f" ({where})" if where else "")
    if isinstance(exc, ImportError):
        if (exc.name or "").split(".")[0] == __package__:
            hint = "The backend package is incomplete (a module is missing): reinstall the extension."
        else:
            hint = (f"The backend environment lacks the package '{exc.name}': install it into the backend "
                    "interpreter's environment (scripts/setup.sh does this in a checkout). " + hint)
    return {"code": rpc.INTERNAL_ERROR, "message": f"{type(exc).__name__}: {exc}",
            "data": {"hint": hint, "kind": type(exc).__name__}}


def _make_noise() -> None:
    """Write to stdout every way a handler or a library could (diagnostics.wait noise=true)."""
    import subprocess

    print("noise: print() from a handler")
    sys.__stdout__.write("noise: sys.__stdout__.write\n")
    sys.__stdout__.flush()
    os.write(1, b"noise: os.write(1, ...)\n")
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.puts(b"noise: libc puts()")
        libc.fflush(None)
    except (OSError, AttributeError, TypeError):
        pass
    subprocess.run([sys.executable, "-c", "print('noise: a child process printing')"], timeout=60, check=False)


def _reserve_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Keep the real stdin/stdout for the protocol; fd 1 -> stderr, fd 0 -> /dev/null."""
    sys.stdout.flush()
    out_fd, in_fd = os.dup(1), os.dup(0)  # non-inheritable: children never see the channel
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
    return os.fdopen(out_fd, "wb"), os.fdopen(in_fd, "rb")


def main() -> int:
    out, inp = _reserve_stdio()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d backend[%(process)d] %(levelname)s %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    server = Server(out)
    log.info("backend server %s ready: Python %s (%s), protocol %d", __version__, platform.python_version(),
             sys.executable, rpc.PROTOCOL_VERSION)
    reason = "stdin closed"
    try:
        for raw in iter(inp.readline, b""):
            try:
                server.handle_line(raw)
            except Exception:  # noqa: BLE001 - one bad message never stops the server
                log.error("unexpected error handling a message:\n%s", traceback.format_exc())
            if server.stopping:
                reason = "shutdown"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    clean = server.close(reason)
    log.info("backend server exits")
    sys.stderr.flush()
    if not clean:
        os._exit(0)  # a job stuck in C code: daemon threads would not stop a normal exit, but be sure
    return 0


if __name__ == "__main__":
    sys.exit(main())
