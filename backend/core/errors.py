"""Errors a user can act on.

Every failure that reaches the user carries a stable code (the JSON-RPC error code the server
answers with, defined once in :mod:`protocol.rpc`), a message naming the problem, and a hint
saying what to do.
"""

from __future__ import annotations

from protocol import rpc


class FaceDetError(Exception):
    """Base class: ``code`` is a JSON-RPC server error code (-32000 … -32099)."""

    code = rpc.FACEDET_ERROR

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "data": {"hint": self.hint, "kind": type(self).__name__}}

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class BadImageError(FaceDetError):
    code = rpc.BAD_IMAGE


class NoFaceError(FaceDetError):
    code = rpc.NO_FACE


class ModelNotFoundError(FaceDetError):
    code = rpc.MODEL_NOT_FOUND


class FitError(FaceDetError):
    code = rpc.FIT_FAILED


class CancelledError(FaceDetError):
    code = rpc.REQUEST_CANCELLED

    def __init__(self, message: str = "The job was cancelled.", hint: str = ""):
        super().__init__(message, hint)


class DamagedFileError(FaceDetError, ValueError):
    """A file the backend reads (learned weights, a map in the job folder, a training map) is
    truncated, not what its name says, or holds NaN: the message names the file. A ValueError
    too, so callers that guard a file's reading with ``except ValueError`` keep working."""

    code = rpc.DAMAGED_FILE


class BadRequestError(FaceDetError):
    """A request the backend understood but cannot do as asked (unknown AU control, missing
    maps a later step needs); the message says what to change."""

    code = rpc.BAD_REQUEST
