"""Errors a user can act on.

Every failure that reaches the user carries a stable code (also the JSON-RPC error code
the server answers with), a message naming the problem, and a hint saying what to do.
"""

from __future__ import annotations


class FaceDetError(Exception):
    """Base class: ``code`` is a JSON-RPC server error code (-32000 … -32099)."""

    code = -32000

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "data": {"hint": self.hint, "kind": type(self).__name__}}

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class BadImageError(FaceDetError):
    code = -32010


class NoFaceError(FaceDetError):
    code = -32011


class ModelNotFoundError(FaceDetError):
    code = -32012


class FitError(FaceDetError):
    code = -32013


class CancelledError(FaceDetError):
    code = -32800  # the LSP convention for a cancelled request

    def __init__(self, message: str = "The job was cancelled.", hint: str = ""):
        super().__init__(message, hint)


class BadRequestError(FaceDetError):
    """A request the backend understood but cannot do as asked (unknown AU control, missing
    maps a later step needs); the message says what to change."""

    code = -32014
