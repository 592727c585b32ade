"""Decoding a clip with PyAV (FFmpeg's libraries, inside the ``av`` wheel)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..core.errors import BadImageError


@dataclass
class VideoInfo:
    path: str
    fps: float
    width: int
    height: int
    frames: int  # as the container says (0: unknown)
    rotation: int  # degrees the player turns the picture (phone clips); frames come out turned


def _open(path: str):
    p = Path(path)
    if not p.is_file():
        raise BadImageError(f"The video {p} does not exist.", "Choose a video file (MP4, MOV, MKV, AVI...).")
    try:
        container = av.open(str(p))
    except Exception as exc:  # PyAV raises its own error types per FFmpeg error
        raise BadImageError(f"{p.name} is not a video FFmpeg can read ({exc}).",
                            "Use an MP4, MOV, MKV or AVI clip; re-encode it with FFmpeg if another tool made it.") \
            from exc
    if not container.streams.video:
        container.close()
        raise BadImageError(f"{p.name} has no video stream.", "Choose a clip with a picture, not an audio file.")
    return container


def probe(path: str) -> VideoInfo:
    container = _open(path)
    try:
        s = container.streams.video[0]
        rate = s.average_rate or s.base_rate or s.guessed_rate
        fps = float(rate) if rate else 0.0
        if not fps > 0:
            raise BadImageError(f"{Path(path).name} does not say its frame rate.", "Re-encode it with a fixed rate.")
        rot = 0
        try:
            rot = int(round(float(s.codec_context.rotation or 0)))  # PyAV >= 14 reads the display matrix
        except Exception:
            rot = 0
        return VideoInfo(str(Path(path).resolve()), fps, int(s.codec_context.width), int(s.codec_context.height),
                         int(s.frames or 0), rot)
    finally:
        container.close()


def frames(path: str, max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, seconds from the first frame, (H, W, 3) uint8 RGB) for each frame in order."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's frame threads: decoding keeps ahead of the tracker
        t0 = None
        for i, frame in enumerate(container.decode(stream)):
            if max_frames is not None and i >= max_frames:
                break
            t = float(frame.time) if frame.time is not None else i / float(stream.average_rate or 30)
            t0 = t if t0 is None else t0
            yield i, t - t0, frame.to_ndarray(format="rgb24")
    except BadImageError:
        raise
    except Exception as exc:
        if "i" not in locals():
            raise BadImageError(f"{Path(path).name} could not be decoded ({exc}).", "Re-encode the clip.") from exc
        raise BadImageError(f"{Path(path).name} is damaged after frame {i} ({exc}).",
                            "Re-encode the clip, or cut it before the damage.") from exc
    finally:
        container.close()
