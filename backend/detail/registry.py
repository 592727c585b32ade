"""The detail models: what makes detail and wrinkle maps for a target expression.

A detail model is a :class:`DetailModel` registered under a name; ``details``, ``wrinkles``, the
health answer (and through it the add-on's menus and the headless CLI), and ``python -m backend``
all read this registry. ``auto`` (``protocol.details.AUTO_MODEL``) takes the available model of
highest ``priority``.

Adding a model: one module with a :class:`DetailModel` subclass, and one line naming it in
:data:`BUILTIN` (or, from another package, an entry point in the ``facedet3d.detail_models``
group). Entries are imported on first use, so a server answers ``health`` and ``cancel`` before
any model's heavy dependencies (torch for the learned nets) load.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Optional

import numpy as np

from protocol.details import AUTO_MODEL
from protocol.health import DetailModelInfo, auto_entry

from ..core.errors import BadRequestError
from ..core.progress import Job
from .face import ReconstructedFace

ENTRY_POINT_GROUP = "facedet3d.detail_models"
# "module:Class" of each built-in model, in menu order.
BUILTIN = (
    "backend.detail.physical:PhysicalModel",
    "backend.learned.deth_model:DetHModel",
)
AUTO_DESCRIPTION = "The best detail model this backend has (the learned nets when installed, else the physical model)"


@dataclass
class Availability:
    available: bool
    reason: str = ""  # why not
    hint: str = ""  # and what to do
    made_by: str = ""  # what its maps' side files name (e.g. the nets' versions)


class DetailMaker(ABC):
    """A detail model opened on one face, age and seed: makes maps for target expressions."""

    made_by: str = ""  # the side files' "model": "physical", or e.g. the nets' names
    tag_variant: str = ""  # part of the maps' tags: "" keeps the physical model's tags
    progress_message: str = "Making details"

    @abstractmethod
    def detail_map(self, weights: np.ndarray, size: int, job: Job) -> np.ndarray:
        """D(y): the person's detail and the expression's wrinkles for target shape ``weights``
        (model order), size² mm."""

    @abstractmethod
    def wrinkles(self, values: dict[str, float], size: int) -> np.ndarray:
        """W(values): what the AU control ``values`` add to the neutral face's map, size² mm
        (no person detail, no micro relief): the animated-wrinkle rig's maps."""


class DetailModel(ABC):
    name: str = ""  # the wire name
    label: str = ""
    description: str = ""
    priority: int = 0  # AUTO_MODEL picks the available model with the highest priority

    @abstractmethod
    def availability(self) -> Availability:
        """Whether it can run now (cheap: no nets loaded)."""

    @abstractmethod
    def open(self, face: ReconstructedFace, years: float, seed: int, job: Job) -> DetailMaker:
        """A maker for ``face`` at ``years`` and ``seed``."""


_lock = threading.RLock()
_models: dict[str, DetailModel] = {}
_failed: dict[str, str] = {}  # entry that could not be imported -> why (reported by health)
_loaded = False


def register(model: DetailModel) -> DetailModel:
    """Add (or replace) a model under its name."""
    if not model.name or model.name == AUTO_MODEL:
        raise ValueError(f"a detail model needs a name other than {AUTO_MODEL!r}")
    with _lock:
        _models[model.name] = model
    return model


def unregister(name: str) -> None:
    with _lock:
        _models.pop(name, None)


def _instantiate(target: str) -> DetailModel:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        targets = list(BUILTIN) + [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
        for target in targets:
            try:
                register(_instantiate(target))
            except ImportError as exc:  # e.g. torch missing: the other models still serve
                _failed[target] = f"{type(exc).__name__}: {exc}"


def models() -> list[DetailModel]:
    _load()
    with _lock:
        return list(_models.values())


def names() -> list[str]:
    """Every choice a request may name: AUTO_MODEL first, then the registered models."""
    return [AUTO_MODEL] + [m.name for m in models()]


def get(name: str) -> DetailModel:
    _load()
    with _lock:
        model = _models.get(name)
    if model is None:
        raise BadRequestError(f"unknown detail model {name!r}; one of {', '.join(names())}",
                              "Ask the backend's health for its detail models.")
    return model


def auto() -> Optional[DetailModel]:
    """What AUTO_MODEL resolves to now (None when no model is available)."""
    ready = [m for m in models() if m.availability().available]
    return max(ready, key=lambda m: m.priority) if ready else None


def resolve(choice: str) -> DetailModel:
    """The model a request asked for; AUTO_MODEL picks; an unavailable one says why."""
    if choice == AUTO_MODEL:
        model = auto()
        if model is None:
            raise BadRequestError("no detail model is available", "See the backend's health answer.")
        return model
    model = get(choice)
    state = model.availability()
    if not state.available:
        raise BadRequestError(state.reason, state.hint)
    return model


def describe() -> tuple[list[DetailModelInfo], str]:
    """The health answer's list (AUTO_MODEL first) and what AUTO_MODEL resolves to."""
    out = []
    for m in models():
        try:
            a = m.availability()
        except Exception as exc:  # noqa: BLE001 - health reports, never fails
            a = Availability(False, f"{type(exc).__name__}: {exc}")
        out.append(DetailModelInfo(m.name, m.label, m.description, a.available,
                                   " ".join(x for x in (a.reason, a.hint) if x), a.made_by))
    ready = [(m, i) for m, i in zip(models(), out) if i.available]
    best = max(ready, key=lambda mi: mi[0].priority)[0].name if ready else ""
    with _lock:
        failed = dict(_failed)
    for target, why in failed.items():
        out.append(DetailModelInfo(target, target, "could not be loaded", False, why))
    return [auto_entry(best, AUTO_DESCRIPTION)] + out, best
