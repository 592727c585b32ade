"""The process boundary: addon/link/client.py (Blender's interpreter) <-> backend.service.server (the
backend venv), both speaking protocol/.

Runs in the Blender-side environment (``.venv-blender/bin/python -m pytest tests/test_rpc.py``),
where the client lives; the child is always the backend interpreter. Every blocking step has a
timeout.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_EXE = "Scripts/python.exe" if sys.platform == "win32" else "bin/python"
BACKEND_PY = Path(os.environ.get("FACEDET3D_BACKEND_PYTHON") or REPO / ".venv-backend" / _EXE)

if not BACKEND_PY.is_file():
    pytest.skip(f"backend interpreter {BACKEND_PY} missing; run scripts/setup.sh (or set "
                "FACEDET3D_BACKEND_PYTHON)", allow_module_level=True)


def _extension_package():
    """The checkout as the package ``facedet3d_ext`` (facedet3d.py's loader; not registered)."""
    spec = importlib.util.spec_from_file_location("facedet3d_bootstrap", REPO / "facedet3d.py")
    boot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(boot)
    return boot.load_package()


_extension_package()
from facedet3d_ext.addon.link import client as client_mod  # noqa: E402 - after the package is loaded
from facedet3d_ext.protocol import rpc as rpc_mod  # noqa: E402

BackendClient = client_mod.BackendClient
BackendError = client_mod.BackendError


def _until(pred, timeout: float, what: str, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still "exists": ask /proc where there is one
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():
        try:
            return stat.read_text().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False
    return True


@pytest.fixture()
def make_client(tmp_path):
    made = []

    def make(python=BACKEND_PY, **kw):
        kw.setdefault("log_path", str(tmp_path / f"backend{len(made)}.log"))
        c = BackendClient(str(python), str(REPO), **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown(timeout=5)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One backend shared by the tests that leave it healthy."""
    c = BackendClient(str(BACKEND_PY), str(REPO), log_path=str(tmp_path_factory.mktemp("log") / "backend.log"))
    yield c
    c.shutdown(timeout=5)


# ---- round trips and errors ------------------------------------------------------------------

def test_health_round_trip(client):
    h = client.health(timeout=60)
    assert h["ok"] is True and h["pid"] == client.pid
    assert h["protocol"] == rpc_mod.PROTOCOL_VERSION
    assert h["python"].count(".") == 2 and h["backend"]
    assert isinstance(h["cuda"], bool) and (h["torch"] is None or isinstance(h["torch"], str))
    assert h["uptime_s"] >= 0 and h["jobs_running"] == 0 and h["jobs_queued"] == 0


def test_client_errors_carry_the_protocol_codes():
    assert client_mod.BackendUnavailable("x").code == rpc_mod.BACKEND_UNAVAILABLE
    assert client_mod.BackendTimeout("x").code == rpc_mod.BACKEND_TIMEOUT
    assert client_mod.BackendCrashed("x").code == rpc_mod.BACKEND_CRASHED
    err = client_mod.error_from_response({"code": rpc_mod.REQUEST_CANCELLED, "message": "m", "data": {"hint": "h"}})
    assert isinstance(err, client_mod.BackendCancelled) and err.hint == "h" and err.code == rpc_mod.REQUEST_CANCELLED
    err = client_mod.error_from_response({"code": rpc_mod.NO_FACE, "message": "m", "data": {"kind": "NoFaceError"}})
    assert type(err) is client_mod.BackendError and err.kind == "NoFaceError"
    assert client_mod.error_from_response("junk").code == rpc_mod.INTERNAL_ERROR


def test_unknown_method(client):
    with pytest.raises(BackendError) as ei:
        client.call("no.such.method", {}, timeout=10)
    assert ei.value.code == -32601 and "no.such.method" in ei.value.message
    assert "health" in ei.value.hint


@pytest.mark.parametrize("method,params,words", [
    ("diagnostics.wait", {"seconds": "x"}, "'seconds' must be a number"),
    ("diagnostics.wait", {}, "missing parameter 'seconds'"),
    ("diagnostics.wait", {"seconds": 1, "bogus": 2}, "unknown parameter(s) bogus"),
    ("diagnostics.wait", {"seconds": 1, "steps": 0}, "'steps' must be 1"),
    ("diagnostics.wait", {"seconds": True}, "'seconds' must be a number"),
    ("diagnostics.wait", [1, 2], "params must be an object"),
    ("reconstruct", {"out_dir": "/tmp/x"}, "missing parameter 'image'"),
    ("cancel", {}, "missing parameter 'id'"),
    ("wrinkles", {"job_dir": "/tmp/x", "base_size": 300}, "'base_size' must be 256, 512"),
    ("wrinkles", {"job_dir": "/tmp/x", "keys": {"1": {}}}, "'keys' must be"),
    ("details", {"job_dir": "/tmp/x", "model": "neural"}, "'model' must be auto, physical or deth"),
])
def test_bad_params(client, method, params, words):
    with pytest.raises(BackendError) as ei:
        client.call(method, params, timeout=10)
    assert ei.value.code == -32602
    assert words in ei.value.message


def test_handler_errors_keep_the_server_alive(client):
    pid = client.start()
    with pytest.raises(BackendError) as ei:
        client.call("diagnostics.fail", {"kind": "internal"}, timeout=10)
    assert ei.value.code == -32603 and "RuntimeError" in ei.value.message and "on purpose" in ei.value.message
    assert "backend log" in ei.value.hint
    with pytest.raises(BackendError) as ei:
        client.call("diagnostics.fail", {"kind": "exit"}, timeout=10)  # sys.exit inside a handler
    assert ei.value.code == -32603
    with pytest.raises(BackendError) as ei:
        client.call("diagnostics.fail", {"kind": "facedet"}, timeout=10)
    assert ei.value.code == -32011 and ei.value.kind == "NoFaceError" and ei.value.hint
    assert client.call("diagnostics.wait", {"seconds": 0}, timeout=10)["steps"] == 10
    assert client.pid == pid
    _until(lambda: any("Traceback" in ln for ln in client.stderr_tail()), 5, "the traceback in the log")


def test_reconstruct_reaches_the_pipeline(client, tmp_path):
    """The real handler (backend.reconstruct.pipeline); a bad input answers its FaceDetError."""
    with pytest.raises(BackendError) as ei:
        client.call("reconstruct", {"image": str(tmp_path / "missing.jpg"), "out_dir": str(tmp_path / "job"),
                                    "model_dir": str(tmp_path / "no_model")}, timeout=60)
    if ei.value.kind in ("ImportError", "ModuleNotFoundError"):
        pytest.skip(f"backend.pipeline does not import ({ei.value}); its own tests cover it")
    assert -32099 <= ei.value.code <= -32000, ei.value
    assert ei.value.hint
    assert not (tmp_path / "job" / "face.json").exists()


# ---- progress and cancel -----------------------------------------------------------------------

def test_progress_arrives_in_order(client):
    seen = []
    res = client.call("diagnostics.wait", {"seconds": 0.5, "steps": 5}, timeout=10,
                      on_progress=lambda f, m: seen.append((f, m)))
    assert res["steps"] == 5
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions), seen
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(seen) == 6
    assert [m for _, m in seen[1:]] == [f"Step {i} of 5" for i in range(1, 6)]


def test_call_progress_can_be_polled(client):
    call = client.submit("diagnostics.wait", {"seconds": 0.4, "steps": 4})
    assert not call.done()
    with pytest.raises(TimeoutError):
        call.result(timeout=0)  # a poll: the call goes on
    _until(lambda: call.progress[0] >= 0.5, 5, "half-way progress")
    assert call.result(timeout=5)["steps"] == 4
    assert call.done() and call.progress[0] == 1.0


def test_cancel_mid_way_answers_quickly(client):
    call = client.submit("diagnostics.wait", {"seconds": 30, "steps": 300})
    _until(lambda: call.progress[0] > 0, 5, "the job to report progress")
    t0 = time.monotonic()
    assert call.cancel() is True
    with pytest.raises(client_mod.BackendCancelled) as ei:
        call.result(timeout=5)
    # Not a speed target: the job would run 30 s, so 10 s proves cancel did not wait for it.
    assert time.monotonic() - t0 < 10.0
    assert ei.value.code == -32800
    assert call.cancel() is False  # already done
    assert client.health(timeout=10)["jobs_running"] == 0


def test_long_jobs_do_not_block_health_or_cancel(client):
    calls = [client.submit("diagnostics.wait", {"seconds": 30, "steps": 30}) for _ in range(3)]  # 2 workers
    _until(lambda: calls[0].progress[0] > 0 and calls[1].progress[0] > 0, 5, "two running jobs")
    t0 = time.monotonic()
    h = client.health(timeout=10)
    assert time.monotonic() - t0 < 10.0  # answered while 30 s jobs run, not after them
    assert (h["jobs_running"], h["jobs_queued"]) == (2, 1)
    for c in calls:
        c.cancel()
    for c in calls:
        with pytest.raises(client_mod.BackendCancelled):
            c.result(timeout=5)


def test_call_timeout_cancels_the_request(client):
    t0 = time.monotonic()
    with pytest.raises(client_mod.BackendTimeout):
        client.call("diagnostics.wait", {"seconds": 30, "steps": 30}, timeout=0.3)
    assert time.monotonic() - t0 < 10.0  # the 30 s job was not waited for
    _until(lambda: client.health(timeout=5)["jobs_running"] == 0, 5, "the timed-out job to be cancelled", 0.1)


def test_stray_stdout_writes_do_not_corrupt_the_protocol(client):
    """print(), sys.__stdout__, os.write(1), libc puts and a child process, all inside a handler."""
    res = client.call("diagnostics.wait", {"seconds": 0.05, "steps": 2, "noise": True}, timeout=30)
    assert res["steps"] == 2
    assert client.health(timeout=10)["ok"]
    tail = client.stderr_tail()
    for words in ("noise: print()", "noise: os.write(1", "noise: a child process"):
        assert any(words in ln for ln in tail), (words, tail)
    assert not any("not a protocol message" in ln for ln in tail), tail


# ---- process life --------------------------------------------------------------------------------

def test_killed_backend_fails_the_call_and_restarts(make_client):
    c = make_client()
    c.call("diagnostics.wait", {"seconds": 0}, timeout=30)
    pid = c.pid
    call = c.submit("diagnostics.wait", {"seconds": 30, "steps": 300})
    _until(lambda: call.progress[0] > 0, 5, "the job to run")
    os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
    with pytest.raises(client_mod.BackendCrashed) as ei:
        call.result(timeout=10)
    err = ei.value
    assert "stopped unexpectedly" in err.message and "diagnostics.wait" in err.message
    assert "Last backend output" in err.message and "diagnostics.wait (id" in err.message  # the stderr tail
    assert err.code == client_mod.BACKEND_CRASHED and not err.at_startup
    if hasattr(signal, "SIGKILL"):
        assert err.returncode == -signal.SIGKILL and "SIGKILL" in err.message
    h = c.health(timeout=60)  # transparently a new process
    assert h["pid"] != pid and h["pid"] == c.pid


def test_shutdown_is_clean_and_cancels_running_jobs(make_client):
    c = make_client()
    job = c.submit("diagnostics.wait", {"seconds": 30, "steps": 300})
    _until(lambda: job.progress[0] > 0, 10, "the job to run")
    pid = c.pid
    t0 = time.monotonic()
    assert c.shutdown(timeout=10) == 0
    assert time.monotonic() - t0 < 12.0  # the running 30 s job was cancelled, not awaited
    with pytest.raises(client_mod.BackendCancelled):
        job.result(timeout=1)
    assert c.pid is None and not _alive(pid)
    assert c.shutdown(timeout=1) is None  # nothing to stop


def test_log_file_gets_the_backend_stderr(make_client, tmp_path):
    log = tmp_path / "logs" / "backend.log"
    c = make_client(log_path=str(log))
    c.call("diagnostics.wait", {"seconds": 0}, timeout=30)
    c.shutdown(timeout=10)
    text = log.read_text(encoding="utf-8")
    assert "client: started backend pid" in text and "backend server" in text and "exits" in text


def test_blenders_python_settings_do_not_leak_into_the_backend(make_client, monkeypatch):
    monkeypatch.setenv("PYTHONHOME", "/nonexistent/blender/python")  # would stop any other interpreter
    monkeypatch.setenv("PYTHONPATH", "/nonexistent/blender/scripts")
    c = make_client()
    assert c.call("diagnostics.wait", {"seconds": 0, "steps": 1}, timeout=30)["steps"] == 1


def test_missing_interpreter_is_a_clear_error(make_client):
    c = make_client(python="/nonexistent/bin/python")
    call = c.submit("health", {})
    assert call.done()  # no process: it fails at once, never raises from submit
    with pytest.raises(client_mod.BackendUnavailable) as ei:
        call.result(timeout=1)
    assert str(ei.value) == ("Backend interpreter /nonexistent/bin/python not found. "
                             "Set it in Preferences > Add-ons > FaceDet3D > Backend interpreter.")
    with pytest.raises(client_mod.BackendUnavailable):
        c.health(timeout=1)


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as the interpreter")
def test_process_dying_at_startup_is_a_clear_error(make_client, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named backend' >&2\nexit 3\n")
    fake.chmod(0o755)
    c = make_client(python=fake)
    with pytest.raises(client_mod.BackendCrashed) as ei:
        c.health(timeout=10)
    assert ei.value.at_startup and ei.value.returncode == 3
    assert "exited during startup (exit code 3)" in ei.value.message
    assert "No module named backend" in ei.value.message
    assert "Backend interpreter" in ei.value.hint


# ---- the wire, raw ------------------------------------------------------------------------------

class RawServer:
    """The server spoken to directly, line by line (every stdout line must be JSON)."""

    def __init__(self, log: Path):
        self._err = open(log, "wb")  # noqa: SIM115
        self.p = subprocess.Popen([str(BACKEND_PY), "-m", rpc_mod.SERVER_MODULE], cwd=REPO, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self._err)
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in iter(self.p.stdout.readline, b""):
            self.q.put(line)
        self.q.put(None)

    def send(self, obj) -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n"
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def recv(self, timeout: float = 5.0) -> dict:
        line = self.q.get(timeout=timeout)
        assert line is not None, "the server closed its stdout"
        return json.loads(line)  # anything else on stdout fails here

    def answer(self, id_, timeout: float = 5.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg.get("id") == id_ and "method" not in msg:
                return msg

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=5)
        self._err.close()


@pytest.fixture()
def raw(tmp_path):
    s = RawServer(tmp_path / "raw.log")
    yield s
    s.close()


def test_raw_parse_error_and_invalid_requests(raw):
    raw.send(b"this is not json\n")
    assert raw.recv()["error"]["code"] == -32700
    raw.send([{"jsonrpc": "2.0", "id": 1, "method": "health"}])
    assert raw.recv()["error"]["code"] == -32600
    raw.send({"id": 2, "method": "health"})  # no "jsonrpc": "2.0"
    assert raw.recv() == {"jsonrpc": "2.0", "id": 2, "error": raw_error_like(-32600)}
    raw.send({"jsonrpc": "2.0", "method": "no.such.notification"})  # a notification: no answer
    raw.send({"jsonrpc": "2.0", "id": "s", "method": "diagnostics.wait", "params": {"seconds": 0, "steps": 1}})
    msgs = [raw.recv(), raw.recv(), raw.recv()]
    assert [m.get("method") for m in msgs[:2]] == ["progress", "progress"]
    assert msgs[2] == {"jsonrpc": "2.0", "id": "s", "result": msgs[2]["result"]}


def raw_error_like(code):
    class _Any(dict):
        def __eq__(self, other):
            return isinstance(other, dict) and other.get("code") == code and "message" in other
    return _Any()


def test_raw_lsp_cancel_request_notification(raw):
    raw.send({"jsonrpc": "2.0", "id": 7, "method": "diagnostics.wait", "params": {"seconds": 30, "steps": 300}})
    first = raw.recv()
    assert first["method"] == "progress" and first["params"]["id"] == 7
    raw.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 7}})
    assert raw.answer(7, timeout=3)["error"]["code"] == -32800
    raw.send({"jsonrpc": "2.0", "id": 8, "method": "cancel", "params": {"id": 7}})
    assert raw.answer(8)["result"] == {"cancelled": False}  # already finished


def test_raw_eof_exits_cleanly(raw):
    raw.send({"jsonrpc": "2.0", "id": 1, "method": "diagnostics.wait", "params": {"seconds": 30, "steps": 300}})
    assert raw.recv()["method"] == "progress"
    raw.p.stdin.close()
    assert raw.p.wait(timeout=5) == 0


# ---- fuzzing: whatever arrives, the answer is JSON-RPC and the server lives on ---------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
# every method except the ones that stop the server or sleep on request
_methods = st.sampled_from(["health", "reconstruct", "details", "wrinkles", "rig", "cancel", "$/cancelRequest",
                            "diagnostics.fail", "no.such.method", ""]) | st.text(max_size=12)
_params = _json | st.fixed_dictionaries({}, optional={
    k: _json for k in ("image", "out_dir", "model_dir", "options", "job_dir", "sizes", "size", "keys", "controls",
                       "aus", "expression", "age", "seed", "model", "base_size", "id", "kind")})
_ids = st.none() | st.integers() | st.floats() | st.text(max_size=10) | st.booleans() | st.lists(st.integers(), max_size=2)
_messages = st.fixed_dictionaries({}, optional={"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": _methods,
                                                "params": _params, "id": _ids, "result": _json})


def _line(msg) -> bytes:
    """The message as one line, written as a careless client might (NaN and Infinity included)."""
    return json.dumps(msg, allow_nan=True).encode() + b"\n"


def _strict_json(line: bytes):
    """JSON as RFC 8259 has it (the test's own parser, not the protocol's under test): NaN,
    Infinity and numbers beyond a double fail."""
    def bad(word):
        raise AssertionError(f"not JSON: {word} in {line[:200]!r}")

    def number(text):
        v = float(text)
        if not math.isfinite(v):
            bad(text)
        return v
    return json.loads(line, parse_constant=bad, parse_float=number)


def _valid_jsonrpc(m) -> None:
    assert isinstance(m, dict) and m.get("jsonrpc") == "2.0", m
    if "method" in m:  # a notification from the server: progress
        assert m["method"] == "progress" and "id" not in m, m
        return
    assert "id" in m and (("result" in m) ^ ("error" in m)), m
    if "error" in m:
        e = m["error"]
        assert isinstance(e.get("code"), int) and isinstance(e.get("message"), str), m


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    s = RawServer(tmp_path_factory.mktemp("fuzz") / "fuzz.log")
    yield s
    s.close()


def _probe(server, n: int) -> list[dict]:
    """Ask for health and return every message before its answer, each parsed as strict JSON."""
    pid = f"probe-{n}-{os.getpid()}"
    server.send({"jsonrpc": "2.0", "id": pid, "method": "health"})
    seen = []
    deadline = time.monotonic() + 30
    while True:
        line = server.q.get(timeout=max(0.01, deadline - time.monotonic()))
        assert line is not None, "the server closed its stdout"
        m = _strict_json(line)
        _valid_jsonrpc(m)
        if m.get("id") == pid and "method" not in m:
            assert m["result"]["ok"] is True
            return seen
        seen.append(m)


_count = iter(range(10 ** 9))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(msg=_messages | _json)
def test_fuzzed_requests_get_json_rpc_answers_and_the_server_survives(fuzz_server, msg):
    fuzz_server.send(_line(msg))
    _probe(fuzz_server, next(_count))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_fuzzed_bytes_get_json_rpc_answers_and_the_server_survives(fuzz_server, data):
    fuzz_server.send(data.replace(b"\n", b" ") + b"\n")
    _probe(fuzz_server, next(_count))


@pytest.mark.parametrize("id_text", ["1e999", "-1e999", "NaN", "Infinity", "1" * 5000])
def test_ids_that_are_not_json_numbers_are_refused_in_json(fuzz_server, id_text):
    """Python's parser takes 1e999 (inf) and NaN; echoing them back would write non-JSON."""
    fuzz_server.send(b'{"jsonrpc": "2.0", "id": ' + id_text.encode() + b', "method": "health"}\n')
    seen = _probe(fuzz_server, next(_count))
    assert [m["error"]["code"] for m in seen] == [-32700] and seen[0]["id"] is None, seen


def test_a_huge_line_is_answered_and_the_server_survives(fuzz_server):
    fuzz_server.send(b'{"jsonrpc": "2.0", "id": 5, "method": "health", "params": {"x": "' + b"a" * 20_000_000
                     + b'"}}\n')
    seen = _probe(fuzz_server, next(_count))
    assert len(seen) == 1 and seen[0]["id"] == 5 and seen[0]["error"]["code"] == -32602, seen
