"""Detail and wrinkle maps in the job folder: their file names, tags, side files and the rounding
rule that names a keyed expression's map (docs/detail_maps.md).

    detail_photo_1024.exr          D(I_x), the person's own detail from the photo (cached)
    detail_photo_1024.json         what it was made from (:func:`FaceReconstruction.source_key`)
                                   and by which method: a cache that does not match is remade
    detail_<tag>.json              a detail request's side file (:class:`DetailInfo`)
    detail_<tag>_<size>.exr        its maps, one per size
    wrinkles_<tag>.json            a wrinkle rig's side file (:class:`WrinkleRig`)
    wrinkles_<tag>_pack<i>.exr     per-AU wrinkle maps, three to an RGB image
    wrinkles_<tag>_key_<d>.exr     a keyed expression's correction, ``d`` = :func:`digest` of its
                                   values rounded by :func:`values_key`

Maps are half-float EXR in millimetres along the smooth surface's normal (``UNIT``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import jsonfile
from ._typed import from_json, to_json

UNIT = "mm"
PHOTO_DETAIL_SIZE = 1024
PHOTO_DETAIL_FILE = f"detail_photo_{PHOTO_DETAIL_SIZE}.exr"
PHOTO_DETAIL_STAMP = f"detail_photo_{PHOTO_DETAIL_SIZE}.json"
SIZES = (256, 1024, 4096)  # what a detail request writes by default
RIG_SIZES = (256, 512, 1024, 2048, 4096)  # sizes a wrinkle rig's maps may have
AUTO_MODEL = "auto"  # the detail-model choice that lets the backend pick (its registry decides)


def detail_sizes(largest: int) -> list[int]:
    """The sizes a detail request writes for a largest size: 256² and 1024² reductions beside it
    (previews, the viewport), or that size alone when it is smaller than 1024."""
    return sorted({256, 1024, int(largest)} if largest >= 1024 else {int(largest)})


def digest(*parts) -> str:
    """A short stable name for JSON-able parts (cache keys of maps)."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def values_key(values: Mapping[str, float]) -> dict[str, float]:
    """AU control values as a key: 3 decimals, zeros dropped. The Blender side rounds keyed
    values with it and the backend names key maps by exactly these values."""
    # clamped: a free Bézier handle can carry a curve a little past 0..1 between its keys
    return {k: round(min(max(float(v), 0.0), 1.0), 3) for k, v in sorted(values.items())
            if round(min(max(float(v), 0.0), 1.0), 3) != 0.0}


def target_tag(expression, age: float, seed: int, variant: str = "", source: str = "") -> str:
    """The tag of a detail request: everything its maps depend on, so an identical request reuses
    them and a different age, seed, model or reconstruction never overwrites maps a scene already
    uses. ``variant``: what made the maps when it is not the physical model ("" for it);
    ``source``: the reconstruction's :func:`FaceReconstruction.source_key` (the photo's content
    and fit: a new photo of the same name in the same folder must not find the old maps)."""
    q = np.round(np.asarray(expression, np.float64), 3)
    key = q.tobytes() + f"|{round(float(age), 1)}|{int(seed)}".encode() + (f"|{variant}".encode() if variant else b"")
    key += f"|{source}".encode() if source else b""
    return hashlib.sha1(key).hexdigest()[:10]


def detail_sidecar(tag: str) -> str:
    return f"detail_{tag}.json"


def detail_map(tag: str, size: int) -> str:
    return f"detail_{tag}_{size}.exr"


def wrinkle_sidecar(tag: str) -> str:
    return f"wrinkles_{tag}.json"


def wrinkle_pack(tag: str, index: int) -> str:
    return f"wrinkles_{tag}_pack{index}.exr"


def wrinkle_key(rig_tag: str, values: Mapping[str, float]) -> str:
    """The correction map of a keyed expression (``values`` already rounded by :func:`values_key`)."""
    return f"wrinkles_{rig_tag}_key_{digest(dict(values))}.exr"


class _SideFile:
    """Saving and loading a side file: ``_name(tag)`` is its file name; fields only answers carry
    (the job folder, a rig's keys) are not written."""

    _answer_only: tuple[str, ...] = ("job_dir",)

    @staticmethod
    def _name(tag: str) -> str:
        raise NotImplementedError

    def save(self, folder: str | os.PathLike) -> None:
        d = to_json(self)
        for k in self._answer_only:
            d.pop(k)
        jsonfile.write_atomic(Path(folder) / self._name(self.tag), d)

    @classmethod
    def load(cls, folder: str | os.PathLike, tag: str):
        return from_json(cls, jsonfile.read(Path(folder) / cls._name(tag)))

    @classmethod
    def from_dict(cls, d: dict):
        """From the method's answer."""
        return from_json(cls, d)


@dataclass
class DetailInfo(_SideFile):
    """``detail_<tag>.json``, and the ``details`` method's answer (with ``job_dir``)."""

    tag: str
    files: dict[str, str]  # str(size) -> map file
    model: str  # what made the maps: "physical", or the learned nets' names
    expression: list[float]  # target expression weights, the model's shape order
    aus: dict[str, float]  # the target's non-zero Action Units
    age_years: float
    seed: int
    vertex_range: list[int]  # the skin vertices the maps displace (the face region)
    material: str  # the material whose displacement they drive
    stats: dict[str, Any] = field(default_factory=dict)  # figures for humans
    unit: str = UNIT
    job_dir: str = ""  # answers only: the job folder, absolute

    _name = staticmethod(detail_sidecar)

    def largest(self) -> str:
        """The file of the largest map."""
        return self.files[max(self.files, key=int)]


@dataclass
class WrinklePack:
    file: str
    controls: list[str]  # channel i holds controls[i]'s map


@dataclass
class WrinkleKey:
    frame: int
    file: str
    values: dict[str, float]  # rounded by values_key


@dataclass
class RigBase:
    file: str  # the base detail map B (neutral expression)
    tag: str  # its detail request's tag
    size: int


@dataclass
class ControlMap:
    pack: int
    channel: int
    peak_mm: float


@dataclass
class WrinkleRig(_SideFile):
    """``wrinkles_<tag>.json``, and the ``wrinkles`` method's answer (with ``keys`` and ``job_dir``)."""

    tag: str
    version: int
    model: str  # what made the maps ("physical" or the nets' names)
    detail_model: str  # the registry entry that made them
    size: int
    age_years: float
    seed: int
    base: RigBase
    packs: list[WrinklePack]
    controls: dict[str, ControlMap]
    skipped: list[str]  # controls whose wrinkles are too shallow to show
    vertex_range: list[int]
    material: str
    unit: str = UNIT
    keys: list[WrinkleKey] = field(default_factory=list)  # answers only
    job_dir: str = ""  # answers only

    _name = staticmethod(wrinkle_sidecar)
    _answer_only = ("job_dir", "keys")

    def files(self) -> list[str]:
        return [self.base.file] + [p.file for p in self.packs]
