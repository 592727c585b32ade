"""Where converted face models are kept (a Basel Face Model file, the ICT-FaceKit release's OBJs):
``$FACEDET3D_CACHE_DIR/models`` (the add-on sets it to its extension user folder), else
``$XDG_CACHE_HOME/facedet3d/models``, else ``~/.cache/facedet3d/models``."""

from __future__ import annotations

import os
import threading
import weakref
from pathlib import Path
from typing import Any, Callable

_per_model: dict[tuple[int, str], tuple[weakref.ref, Any]] = {}
_per_model_lock = threading.Lock()


def per_model(model: object, name: str, make: Callable[[], Any]) -> Any:
    """``make()``, made once per model object and dropped with it (keyed by the object's
    identity, checked through a weak reference: a model is not hashable, and a new model at a
    reused address must not get the old one's value). ``make`` runs outside the lock: two
    threads may both make a value the first time, and the first stored wins."""
    key = (id(model), name)
    hit = _per_model.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    value = make()
    with _per_model_lock:
        hit = _per_model.get(key)
        if hit is not None and hit[0]() is model:
            return hit[1]
        _per_model[key] = (weakref.ref(model), value)
    # the entry (a compressed mesh archive is megabytes) goes when the model does; dict.pop
    # needs no lock, and the finalizer may run while this thread holds it
    weakref.finalize(model, _per_model.pop, key, None)
    return value


def stat_key(p: Path) -> str:
    """A file as a cache key sees it: where it is, its size and modification time."""
    st = p.stat()
    return f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def cache_dir() -> Path:
    env = os.environ.get("FACEDET3D_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facedet3d" / "models"
