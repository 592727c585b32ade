"""Client of the backend process (``backend.service.server``): JSON-RPC 2.0 over the child's stdio.

Pure Python, never imports bpy (used by the operators and the headless CLI); the wire format,
method names and error codes are the shared ``protocol`` package's.

    client = BackendClient("/path/to/python", "/folder/holding/backend", log_path="backend.log")
    client.health(timeout=60)                       # blocking: a dict (pid, torch, cuda, ...)
    call = client.submit("reconstruct", params)     # non-blocking: poll it from a timer
    call.done(); call.progress                      # -> (fraction, message)
    call.cancel()                                   # the call then fails with BackendCancelled
    call.result(timeout=0)                          # the result, or raises a BackendError
    client.call("reconstruct", params, timeout=3600, on_progress=print)   # blocking
    client.shutdown(timeout=10)

The process starts lazily on the first request and stays alive; a dead process is noticed
(EOF on its stdout, or ``poll()``) and the next request starts a new one. Requests in flight
when it died fail with :class:`BackendCrashed`, whose message ends with the last lines of the
backend's stderr. stderr is appended to ``log_path`` and its last lines are kept in memory.

Threads: a reader thread per process dispatches answers and ``progress`` notifications;
``on_progress`` callbacks run on that thread, so they must be quick, must not wait for
another call, and must not touch bpy (poll ``Call.progress`` from the main thread instead).
Every public method is thread-safe; processes are stopped at interpreter exit (atexit).
"""

from __future__ import annotations

import atexit
import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from pathlib import Path
from typing import Any, Callable, Optional

from ...protocol import methods, rpc
from ...protocol.rpc import BACKEND_CRASHED, BACKEND_TIMEOUT, BACKEND_UNAVAILABLE, INTERNAL_ERROR, REQUEST_CANCELLED

TAIL_LINES = 50  # stderr lines kept in memory
TAIL_IN_MESSAGE = 15  # of which this many end a BackendCrashed message
PREFS_HINT = "Set it in Preferences > Add-ons > FaceDet3D > Backend interpreter."

ProgressFn = Callable[[float, str], None]


# ---- errors ------------------------------------------------------------------------------

class BackendError(Exception):
    """An error answer of the backend, or a failure to reach it: ``code``, ``message``, ``hint``."""

    def __init__(self, code: int, message: str, hint: str = "", data: Optional[dict] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint or ""
        self.data = data or {}

    @property
    def kind(self) -> str:
        """The backend's exception class name (``NoFaceError`` …), or this class's name."""
        return str(self.data.get("kind") or type(self).__name__)

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class BackendCancelled(BackendError):
    """The request was cancelled (code -32800)."""


class BackendUnavailable(BackendError):
    """The backend cannot be started: missing interpreter, missing backend package, OS error."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(BACKEND_UNAVAILABLE, message, hint)


class BackendCrashed(BackendError):
    """The process died (or was stopped) while the request was in flight."""

    def __init__(self, message: str, hint: str = "", returncode: Optional[int] = None,
                 stderr_tail: Optional[list] = None, at_startup: bool = False):
        super().__init__(BACKEND_CRASHED, message, hint)
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail or [])
        self.at_startup = at_startup


class BackendTimeout(BackendError):
    """:meth:`BackendClient.call` got no answer in time (the request was cancelled)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(BACKEND_TIMEOUT, message, hint)


def error_from_response(err: Any) -> BackendError:
    if not isinstance(err, dict):
        return BackendError(INTERNAL_ERROR, f"Malformed error answer from the backend: {err!r}")
    data = err.get("data") if isinstance(err.get("data"), dict) else {}
    code = err.get("code", INTERNAL_ERROR)
    cls = BackendCancelled if code == REQUEST_CANCELLED else BackendError
    return cls(code, str(err.get("message", "Unknown backend error.")), str(data.get("hint", "")), data)


# ---- one request ---------------------------------------------------------------------------

class Call:
    """A request in flight: poll ``done()`` and ``progress``; ``result()`` returns or raises."""

    def __init__(self, client: "BackendClient", id_: int, method: str, params: dict,
                 on_progress: Optional[ProgressFn] = None):
        self.id = id_
        self.method = method
        self.params = params
        self._client = client
        self._on_progress = on_progress
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._result: Any = None
        self._error: Optional[BaseException] = None
        self._progress: tuple[float, str] = (0.0, "Waiting for the backend")
        self._proc: Optional[_Proc] = None
        self.started = time.monotonic()

    def __repr__(self) -> str:
        state = "done" if self.done() else f"{self._progress[0] * 100:.0f}%"
        return f"<Call {self.id} {self.method} {state}>"

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._event.wait(timeout)

    @property
    def progress(self) -> tuple[float, str]:
        """The latest ``(fraction 0..1, message)``."""
        return self._progress

    def result(self, timeout: Optional[float] = None) -> Any:
        """The result; raises a :class:`BackendError` for an error answer, ``TimeoutError`` if
        not done within ``timeout`` seconds (``timeout=0`` polls; the call goes on)."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"'{self.method}' (request {self.id}) has not answered within {timeout} s.")
        if self._error is not None:
            raise self._error
        return self._result

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        if not self._event.wait(timeout):
            raise TimeoutError(f"'{self.method}' (request {self.id}) has not answered within {timeout} s.")
        return self._error

    def cancel(self) -> bool:
        """Ask the backend to cancel; False when the call is already done. Never blocks."""
        if self.done():
            return False
        self._client._send_cancel(self)
        return True

    # called by the client's reader thread
    def _finish(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._result, self._error = result, error
            if error is None:
                self._progress = (1.0, self._progress[1])
            self._event.set()

    def _set_progress(self, fraction: float, message: str) -> None:
        if self.done():
            return
        self._progress = (fraction, message)
        if self._on_progress is not None:
            try:
                self._on_progress(fraction, message)
            except Exception:  # noqa: BLE001 - a broken callback must not stop the reader
                traceback.print_exc()


# ---- one backend process -------------------------------------------------------------------

class _Proc:
    def __init__(self, popen: subprocess.Popen, log_file):
        self.popen = popen
        self.pid = popen.pid
        self.log_file = log_file
        self.pending: dict[Any, Call] = {}
        self.tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
        self.tail_lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.heard_from = False  # any protocol message received (it got past startup)
        self.stopping = False  # we asked it to exit
        self.reaped = False
        self.stdout_thread: Optional[threading.Thread] = None
        self.stderr_thread: Optional[threading.Thread] = None

    def add_line(self, line: str) -> None:
        with self.tail_lock:
            self.tail.append(line)
            if self.log_file is not None:
                try:
                    self.log_file.write(line + "\n")
                    self.log_file.flush()
                except (OSError, ValueError):
                    self.log_file = None

    def tail_lines(self) -> list[str]:
        with self.tail_lock:
            return list(self.tail)


def _describe_returncode(rc: Optional[int]) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


_CLIENTS: "weakref.WeakSet[BackendClient]" = weakref.WeakSet()


def _shutdown_all() -> None:
    for client in list(_CLIENTS):
        try:
            client.shutdown(timeout=3)
        except Exception:  # noqa: BLE001 - at exit, never raise
            pass


atexit.register(_shutdown_all)


class BackendClient:
    """One backend process, started on demand and restarted after it dies.

    ``python``: the backend interpreter; ``root``: the folder holding the ``backend`` package
    (the child's cwd and PYTHONPATH); ``env``: extra environment for the child (wins over
    everything); ``log_path``: the child's stderr is appended there (None: memory only).
    """

    def __init__(self, python: str, root: str, env: Optional[dict] = None, log_path: Optional[str] = None):
        self.python = os.fspath(python) if python else ""
        self.root = os.fspath(root)
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.log_path = os.fspath(log_path) if log_path else None
        self._lock = threading.RLock()
        self._proc: Optional[_Proc] = None
        self._last: Optional[_Proc] = None
        self._ids = itertools.count(1)
        _CLIENTS.add(self)

    # ---- public API ----
    @property
    def pid(self) -> Optional[int]:
        """The live process's pid, or None when none is running."""
        with self._lock:
            p = self._proc
            return p.pid if p is not None and not p.reaped and p.popen.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def stderr_tail(self, n: int = TAIL_LINES) -> list[str]:
        """The last lines the current (or last) backend wrote to stderr."""
        with self._lock:
            p = self._proc or self._last
        return p.tail_lines()[-n:] if p is not None else []

    def start(self) -> int:
        """Start the process now (normally the first request does); returns its pid."""
        with self._lock:
            return self._ensure_proc().pid

    def submit(self, method: str, params=None, on_progress: Optional[ProgressFn] = None) -> Call:
        """Send a request without waiting; ``params``: the method's dataclass of
        :mod:`protocol.methods` or a plain dict. Start failures come back as a failed Call."""
        params = methods.to_params(params)
        call = Call(self, next(self._ids), method, params, on_progress)
        data = rpc.encode(rpc.request(call.id, method, params))
        with self._lock:
            try:
                proc = self._ensure_proc()
            except BackendError as exc:
                call._finish(error=exc)
                return call
            call._proc = proc
            proc.pending[call.id] = call
        self._write(proc, data)
        return call

    def call(self, method: str, params=None, timeout: Optional[float] = None,
             on_progress: Optional[ProgressFn] = None) -> Any:
        """Blocking request. Raises BackendError (BackendTimeout after ``timeout`` s, which
        also cancels the request)."""
        c = self.submit(method, params, on_progress)
        try:
            return c.result(timeout)
        except BackendError:
            raise
        except TimeoutError:
            c.cancel()
            raise BackendTimeout(f"The backend did not answer '{method}' within {timeout:g} s; the request was "
                                 "cancelled.", self._log_hint()) from None

    def health(self, timeout: Optional[float] = 60.0) -> dict:
        return self.call(methods.HEALTH, {}, timeout=timeout)

    def shutdown(self, timeout: float = 10.0) -> Optional[int]:
        """Ask the backend to exit (it cancels running jobs), wait, kill it if it will not.

        Returns its exit code (None when no process was running). The next request starts a
        new process."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            self._proc = None
            proc.stopping = True
        deadline = time.monotonic() + max(timeout, 0.0)
        if not proc.reaped and proc.popen.poll() is None:
            c = Call(self, next(self._ids), methods.SHUTDOWN, {})
            with self._lock:
                if not proc.reaped:
                    proc.pending[c.id] = c
            self._write(proc, rpc.encode(rpc.request(c.id, methods.SHUTDOWN, {})))
            c.wait(max(0.0, deadline - time.monotonic()))
            try:
                proc.popen.stdin.close()  # EOF: the server exits even if it missed the request
            except (OSError, ValueError):
                pass
            try:
                proc.popen.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._note(proc, f"client: backend pid {proc.pid} did not exit within {timeout:g} s; killing it")
                proc.popen.kill()
        self._reap(proc)
        return proc.popen.returncode

    # ---- process management ----
    def _log_hint(self) -> str:
        return f"Details are in the backend log ({self.log_path})." if self.log_path else ""

    def _child_env(self) -> dict:
        env = dict(os.environ)
        # Blender's own Python settings must not leak into another interpreter.
        for k in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "PYTHONSAFEPATH",
                  "__PYVENV_LAUNCHER__", "VIRTUAL_ENV"):
            env.pop(k, None)
        env.update({"PYTHONPATH": self.root, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
        if self.log_path:
            env["FACEDET3D_BACKEND_LOG"] = self.log_path
        env.update(self.env)
        return env

    def _ensure_proc(self) -> _Proc:
        """The live process, starting one if needed (call with the lock held)."""
        p = self._proc
        if p is not None and not p.reaped and p.popen.poll() is None:
            return p
        if p is not None:
            self._reap(p)  # died unnoticed: fail its calls first
        self._proc = self._spawn()
        self._last = self._proc
        return self._proc

    def _spawn(self) -> _Proc:
        py = Path(self.python) if self.python else None
        if py is None or not py.is_file():
            raise BackendUnavailable(f"Backend interpreter {self.python or '(not set)'} not found.", PREFS_HINT)
        if not os.access(py, os.X_OK):
            raise BackendUnavailable(f"Backend interpreter {py} is not executable.", PREFS_HINT)
        if not Path(self.root, *rpc.SERVER_FILE).is_file():
            raise BackendUnavailable(f"No backend package in {self.root} ({'/'.join(rpc.SERVER_FILE)} is missing).",
                                     "Reinstall the FaceDet3D extension.")
        log_file = None
        if self.log_path:
            try:
                Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
                log_file = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the pump
            except OSError:
                log_file = None
        cmd = [str(py), "-u", "-m", rpc.SERVER_MODULE]
        kwargs: dict = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # Ctrl-C in Blender's terminal is Blender's, not ours
        try:
            popen = subprocess.Popen(cmd, cwd=self.root, env=self._child_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                     close_fds=True, **kwargs)
        except OSError as exc:
            if log_file is not None:
                log_file.close()
            raise BackendUnavailable(f"Could not start the backend interpreter {py}: {exc}.", PREFS_HINT) from exc
        proc = _Proc(popen, log_file)
        self._note(proc, f"----- {time.strftime('%Y-%m-%d %H:%M:%S')} client: started backend pid {popen.pid}: "
                         f"{' '.join(cmd)} (cwd {self.root}) -----", tail=False)
        proc.stderr_thread = threading.Thread(target=self._pump_stderr, args=(proc,),
                                              name=f"facedet3d-backend-{popen.pid}-stderr", daemon=True)
        proc.stdout_thread = threading.Thread(target=self._pump_stdout, args=(proc,),
                                              name=f"facedet3d-backend-{popen.pid}-reader", daemon=True)
        proc.stderr_thread.start()
        proc.stdout_thread.start()
        return proc

    def _note(self, proc: _Proc, line: str, tail: bool = True) -> None:
        if tail:
            proc.add_line(line)
        elif proc.log_file is not None:
            with proc.tail_lock:
                try:
                    proc.log_file.write(line + "\n")
                    proc.log_file.flush()
                except (OSError, ValueError):
                    pass

    def _write(self, proc: _Proc, data: bytes) -> None:
        try:
            with proc.write_lock:
                proc.popen.stdin.write(data)
                proc.popen.stdin.flush()
        except (OSError, ValueError):
            # The process is gone or going: make sure it is, so the reader sees EOF and fails
            # the calls in flight with BackendCrashed.
            try:
                proc.popen.kill()
            except OSError:
                pass

    def _send_cancel(self, call: Call) -> None:
        proc = call._proc
        if proc is None or proc.reaped:
            return
        c = Call(self, next(self._ids), methods.CANCEL, {"id": call.id})
        with self._lock:
            if proc.reaped:
                return
            proc.pending[c.id] = c
        self._write(proc, rpc.encode(rpc.request(c.id, methods.CANCEL, {"id": call.id})))

    def _pump_stderr(self, proc: _Proc) -> None:
        try:
            for raw in iter(proc.popen.stderr.readline, b""):
                proc.add_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
        except (OSError, ValueError):
            pass

    def _pump_stdout(self, proc: _Proc) -> None:
        try:
            for raw in iter(proc.popen.stdout.readline, b""):
                try:
                    msg = json.loads(raw)
                except ValueError:
                    proc.add_line(f"client: not a protocol message on the backend's stdout: {raw[:300]!r}")
                    continue
                if isinstance(msg, dict):
                    self._dispatch(proc, msg)
        except (OSError, ValueError):
            pass
        finally:
            self._reap(proc)

    def _dispatch(self, proc: _Proc, msg: dict) -> None:
        proc.heard_from = True
        if "id" in msg and ("result" in msg or "error" in msg):
            with self._lock:
                call = proc.pending.pop(msg["id"], None)
            if call is None:
                return
            if "error" in msg:
                call._finish(error=error_from_response(msg["error"]))
            else:
                call._finish(result=msg.get("result"))
        elif msg.get("method") == methods.PROGRESS:
            p = msg.get("params")
            if not isinstance(p, dict):
                return
            with self._lock:
                call = proc.pending.get(p.get("id"))
            if call is not None:
                try:
                    fraction = min(max(float(p.get("fraction", 0.0)), 0.0), 1.0)
                except (TypeError, ValueError):
                    fraction = call.progress[0]
                call._set_progress(fraction, str(p.get("message", "")))
        else:
            proc.add_line(f"client: unexpected message from the backend: {json.dumps(msg)[:300]}")

    def _reap(self, proc: _Proc) -> None:
        """The process is gone (or must go): collect it and fail the calls it owed. Idempotent."""
        with self._lock:
            if proc.reaped:
                return
            proc.reaped = True
            pending = list(proc.pending.values())
            proc.pending.clear()
            if self._proc is proc:
                self._proc = None
        try:
            rc = proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            rc = proc.popen.wait(timeout=5)
        if proc.stderr_thread is not None and proc.stderr_thread is not threading.current_thread():
            proc.stderr_thread.join(timeout=2)
        for f in (proc.popen.stdin, proc.popen.stdout, proc.popen.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        self._note(proc, f"client: backend pid {proc.pid} ended ({_describe_returncode(rc)})")
        with proc.tail_lock:
            if proc.log_file is not None:
                try:
                    proc.log_file.close()
                except OSError:
                    pass
                proc.log_file = None
        for call in pending:
            call._finish(error=self._crash_error(proc, rc, call))

    def _crash_error(self, proc: _Proc, rc: Optional[int], call: Call) -> BackendCrashed:
        tail = [ln for ln in proc.tail_lines() if not ln.startswith("client: backend pid")]
        how = _describe_returncode(rc)
        if proc.stopping:
            msg = f"The backend was stopped ({how}) before '{call.method}' answered."
            hint = "Run it again; a new backend starts."
        elif not proc.heard_from:
            msg = f"The backend process ({self.python}) exited during startup ({how})."
            hint = ("Check that it is the backend's Python environment (scripts/setup.sh makes one). "
                    + PREFS_HINT + (" " + self._log_hint() if self._log_hint() else ""))
        else:
            msg = f"The backend process stopped unexpectedly ({how}) while running '{call.method}'."
            hint = "It restarts with the next request. " + self._log_hint()
        if tail:
            msg += "\nLast backend output:\n" + "\n".join(tail[-TAIL_IN_MESSAGE:])
        return BackendCrashed(msg, hint.strip(), rc, tail, at_startup=not proc.heard_from and not proc.stopping)


__all__ = ["BackendClient", "Call", "BackendError", "BackendCancelled", "BackendUnavailable", "BackendCrashed",
           "BackendTimeout", "error_from_response"]
