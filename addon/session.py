"""One backend process per Blender session, started on demand from the preferences."""

from __future__ import annotations

from pathlib import Path

from . import settings
from .client import BackendClient

_client: "BackendClient | None" = None
_key: tuple | None = None


def log_path() -> Path:
    try:
        import bpy

        from .preferences import ADDON_ID
        folder = Path(bpy.utils.extension_path_user(ADDON_ID, path="logs", create=True))
    except (ImportError, ValueError, RuntimeError):
        folder = Path.home() / ".cache" / "facedet3d" / "logs"
        folder.mkdir(parents=True, exist_ok=True)
    return folder / "backend.log"


def get_client(python_pref: str = "") -> BackendClient:
    """The live client; a changed interpreter preference starts a new process."""
    global _client, _key
    python = settings.backend_python(python_pref)
    key = (python,)
    if _client is None or _key != key:
        if _client is not None:
            _client.shutdown(timeout=5)
        _client = BackendClient(python, str(settings.EXTENSION_ROOT), log_path=str(log_path()))
        _key = key
    return _client


def shutdown():
    global _client, _key
    if _client is not None:
        _client.shutdown(timeout=5)
    _client, _key = None, None
