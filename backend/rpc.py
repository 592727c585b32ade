"""The wire format shared by ``backend.server`` and ``addon/client.py``: JSON-RPC 2.0, one
message per line (UTF-8 JSON without raw newlines, terminated by ``\\n``).

Pure standard library, no backend imports, so either side (Python 3.11 backend, Python 3.13
Blender) can use it. ``addon/client.py`` keeps its own copy of the few constants it needs (it
must load without this package); ``tests/test_rpc.py`` checks that the two agree.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1  # reported by `health`; bump when a method or a field changes meaning

# JSON-RPC 2.0 error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server errors (-32000 .. -32099): the FaceDetError family, -32000 and -32010 .. -32013
# (backend/errors.py).
# The LSP convention for a cancelled request (backend.errors.CancelledError.code).
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
    """One line of ASCII JSON (non-ASCII escaped, so no raw newline can appear inside)."""
    return (json.dumps(msg, ensure_ascii=True, separators=(",", ":"), default=_default) + "\n").encode("ascii")


def decode(line: bytes | str) -> Any:
    """Parse one line; raises ``ValueError`` (json.JSONDecodeError, UnicodeDecodeError)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8")
    return json.loads(line)


def request(id_: int | str, method: str, params: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}


def notification(method: str, params: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": params or {}}


def result(id_: Any, value: Any) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def error(id_: Any, err: dict) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "error": err}
