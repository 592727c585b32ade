"""The ``health`` answer: the backend's process, versions and device, and the detail models it
offers (its registry: the Blender side builds its model menus from this list)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ._typed import from_json
from .details import AUTO_MODEL


@dataclass
class DetailModelInfo:
    name: str  # what a request's ``model`` parameter says
    label: str
    description: str
    available: bool
    reason: str = ""  # why not, when not available, and what to do
    made_by: str = ""  # what its maps' side files will name (e.g. the learned nets' names)


@dataclass
class Health:
    ok: bool
    pid: int
    protocol: int
    python: str
    executable: str
    backend: str
    torch: Optional[str]
    cuda: bool
    cuda_device: Optional[str]
    uptime_s: float
    jobs_running: int
    jobs_queued: int
    detail_models: list[DetailModelInfo] = field(default_factory=list)  # AUTO_MODEL first
    auto_detail_model: str = ""  # what AUTO_MODEL resolves to now
    torch_error: Optional[str] = None

    @classmethod
    def from_answer(cls, answer: dict) -> "Health":
        return from_json(cls, answer)

    def model_names(self) -> list[str]:
        return [m.name for m in self.detail_models]

    def model(self, name: str) -> Optional[DetailModelInfo]:
        return next((m for m in self.detail_models if m.name == name), None)


def auto_entry(resolves_to: str, description: str) -> DetailModelInfo:
    """The AUTO_MODEL pseudo-entry at the head of the list."""
    return DetailModelInfo(AUTO_MODEL, "Auto", description, True, made_by=resolves_to)
