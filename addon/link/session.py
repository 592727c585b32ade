"""One backend process per Blender session, started on demand from the preferences."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ...protocol.health import DetailModelInfo, Health
from . import settings
from .client import BackendClient

_client: "BackendClient | None" = None
_key: tuple | None = None
_health: "Health | None" = None  # the last health answer: which detail models the backend offers
_health_lock = threading.Lock()


def user_folder(name: str) -> Path:
    """A folder of ours under the extension's user folder (Blender's rule for what we write),
    or ~/.cache/facedet3d/<name> when bpy is not there (tests of the client alone)."""
    try:
        import bpy  # not there when the client runs on its own (its tests)

        return Path(bpy.utils.extension_path_user(settings.ADDON_ID, path=name, create=True))
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
            shutdown()
        _client = BackendClient(python, str(settings.EXTENSION_ROOT), env=env, log_path=str(log_path()))
        _key = key
    return _client


def shutdown():
    global _client, _key, _health
    if _client is not None:
        _client.shutdown(timeout=5)
    _client, _key = None, None
    with _health_lock:  # another backend may offer other models
        _health = None


def remember_health(answer: dict) -> Health:
    """Keep a health answer (the menus of detail models read it)."""
    global _health
    h = Health.from_answer(answer)
    with _health_lock:
        _health = h
    return h


def detail_models(python_pref: str = "", model_pref: str = "", wait_s: float = 60.0) -> list[DetailModelInfo]:
    """The detail models the backend offers (the first entry is "auto"), from its last health
    answer; the first call asks it (starting it, a few seconds, once a session). [] when the
    backend cannot answer: the caller offers "auto" alone and the job's error says why."""
    with _health_lock:
        if _health is not None:
            return list(_health.detail_models)
    try:
        return list(remember_health(get_client(python_pref, model_pref).health(timeout=wait_s)).detail_models)
    except Exception:  # noqa: BLE001 - not set up, not answering: the job itself will say what is wrong
        return []
