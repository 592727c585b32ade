"""The wire format shared by the backend's server (``backend.service``) and the add-on's client
(``addon/link/client.py``): JSON-RPC 2.0, one message per line (UTF-8 JSON without raw newlines,
terminated by ``\\n``), and every error code either side uses.

Pure standard library, so both interpreters (Python 3.11 backend, Python 3.13 Blender) import it.
"""

from __future__ import annotations

import json
import math
from typing import Any

PROTOCOL_VERSION = 2  # reported by `health`; bump when a method or a field changes meaning
# 2: the health answer lists the detail-model registry (protocol.health); the server moved.

# How the client starts the server: ``python -m SERVER_MODULE`` with the extension root as cwd
# and PYTHONPATH (SERVER_FILE, relative to that root, must exist).
SERVER_MODULE = "backend.service.server"
SERVER_FILE = ("backend", "service", "server.py")

# JSON-RPC 2.0 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server errors (-32000 .. -32099): problems the user can act on (backend.core.errors), each
# answered with a message naming the problem and a hint saying what to do.
FACEDET_ERROR = -32000  # any other such problem
BAD_IMAGE = -32010  # not an image, unreadable, too large, no pixels
NO_FACE = -32011  # no face found in the photo
MODEL_NOT_FOUND = -32012  # the face model's folder or file is missing, foreign or damaged
FIT_FAILED = -32013  # the model could not be fitted to the landmarks
BAD_REQUEST = -32014  # understood but not doable as asked (unknown AU control, maps missing)
DAMAGED_FILE = -32015  # a file the backend reads is truncated, foreign or holds NaN (weights, maps)
# The LSP convention for a cancelled request.
REQUEST_CANCELLED = -32800

# Client-side codes (never sent by the server; addon/client.py raises them).
BACKEND_UNAVAILABLE = -32090  # the interpreter is missing or cannot be started
BACKEND_CRASHED = -32091  # the process died with the request in flight
BACKEND_TIMEOUT = -32092  # no answer within the caller's timeout (the request was cancelled)


class RpcError(Exception):
    """An error answer: ``code``, ``message`` and optional ``data`` (``hint``, ``kind``)."""

    code = INTERNAL_ERROR

    def __init__(self, message: str, hint: str = "", code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message,
                "data": {"hint": self.hint, "kind": type(self).__name__}}


class InvalidParams(RpcError):
    code = INVALID_PARAMS


class MethodNotFound(RpcError):
    code = METHOD_NOT_FOUND


class InvalidRequest(RpcError):
    code = INVALID_REQUEST


def _default(obj: Any):
    """numpy scalars and arrays, paths and sets become plain JSON."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def encode(msg: dict) -> bytes:
    """One line of ASCII JSON (non-ASCII escaped, so no raw newline can appear inside). NaN and
    infinities raise ValueError: Python would write them as NaN/Infinity, which is not JSON."""
    return (json.dumps(msg, ensure_ascii=True, separators=(",", ":"), default=_default, allow_nan=False)
            + "\n").encode("ascii")


def _not_json(word: str):
    raise ValueError(f"{word} is not a JSON value")


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"the number {text[:40]} is out of range")
    return v


def decode(line: bytes | str) -> Any:
    """Parse one line of strict JSON; raises ``ValueError`` (json.JSONDecodeError,
    UnicodeDecodeError, and for NaN, Infinity or a number too large for a double, which Python's
    parser would otherwise take and an answer would echo back as non-JSON)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8")
    return json.loads(line, parse_constant=_not_json, parse_float=_finite)


def request(id_: int | str, method: str, params: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}


def notification(method: str, params: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": params or {}}


def result(id_: Any, value: Any) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def error(id_: Any, err: dict) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "error": err}
