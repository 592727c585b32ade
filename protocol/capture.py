"""Animation captured from a video: the file the backend writes into the face's job folder and the
add-on keys from (``capture_<name>.json``).

Times are the video's (seconds from its first frame); the add-on places them on scene frames at
the scene's frame rate. ``keys`` hold, per AU control, the reduced keys (time, value) whose
straight-line interpolation stays within ``tolerance`` of the smoothed per-frame curve; the
per-frame curves are kept too (``controls``), for tools that want every frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import jsonfile
from ._typed import from_json, to_json

SCHEMA = 1
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def capture_file(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"capture name {name!r}: use 1-64 letters, digits, - and _")
    return f"capture_{name}.json"


@dataclass
class Capture:
    video: str  # the clip, absolute path
    fps: float  # the video's frame rate
    width: int
    height: int
    times: list[float]  # seconds, one per decoded frame
    controls: dict[str, list[float]]  # AU control -> smoothed value per frame (0..1)
    head: dict[str, list[float]]  # "yaw", "pitch", "roll" (degrees, relative to the first tracked frame)
    keys: dict[str, list[list[float]]]  # AU control -> reduced [[time, value], ...]
    tolerance: float  # key reduction: largest deviation of the keys' lines from the curve
    lost: list[int] = field(default_factory=list)  # frame indices with no face (interpolated)
    lost_runs: list[list[int]] = field(default_factory=list)  # [first, last] of each run of lost frames
    # per frame, the head's turn since the first tracked frame as a quaternion (w, x, y, z) in
    # Blender's world frame, about the model's origin: the face object's delta rotation
    head_quaternion: list[list[float]] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # timings, smoothing, figures for humans
    schema: int = SCHEMA

    def save(self, folder: str | Path, name: str) -> Path:
        return jsonfile.write_atomic(Path(folder) / capture_file(name), to_json(self))

    @classmethod
    def load(cls, folder: str | Path, name: str) -> "Capture":
        return from_json(cls, jsonfile.read(Path(folder) / capture_file(name)))
