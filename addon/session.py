"""One backend process per Blender session, started on demand from the preferences."""

from __future__ import annotations

import os
from pathlib import Path

from . import settings
from .client import BackendClient

_client: "BackendClient | None" = None
_key: tuple | None = None


def user_folder(name: str) -> Path:
    """A folder of ours under the extension's user folder (Blender's rule for what we write),
    or ~/.cache/facedet3d/<name> when bpy is not there (tests of the client alone)."""
    try:
        import bpy

        from .preferences import ADDON_ID
        return Path(bpy.utils.extension_path_user(ADDON_ID, path=name, create=True))
    except (ImportError, ValueError, RuntimeError):
        folder = Path.home() / ".cache" / "facedet3d" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def log_path() -> Path:
    return user_folder("logs") / "backend.log"


def backend_env(model_pref: str = "") -> dict:
    """The backend's environment: the default model's folder (what a Basel Face Model is
    registered to) and where converted models are cached."""
    # $FACEDET3D_CACHE_DIR, when set (a farm's shared cache, the tests), reaches the child as is.
    env = {} if os.environ.get("FACEDET3D_CACHE_DIR") else {"FACEDET3D_CACHE_DIR": str(user_folder("cache"))}
    reference = settings.model_dir(model_pref)
    if reference:
        env["FACEDET3D_MODEL_DIR"] = reference
    return env


def get_client(python_pref: str = "", model_pref: str = "") -> BackendClient:
    """The live client; a changed interpreter or model-folder preference starts a new process."""
    global _client, _key
    python = settings.backend_python(python_pref)
    env = backend_env(model_pref)
    key = (python, tuple(sorted(env.items())))
    if _client is None or _key != key:
        if _client is not None:
            _client.shutdown(timeout=5)
        _client = BackendClient(python, str(settings.EXTENSION_ROOT), env=env, log_path=str(log_path()))
        _key = key
    return _client


def shutdown():
    global _client, _key
    if _client is not None:
        _client.shutdown(timeout=5)
    _client, _key = None, None
