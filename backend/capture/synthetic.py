"""Synthetic clips for testing and timing the capture: the default model rendered at known AU
curves (a smile in the first second, the jaw opening in the second, the head turning +-10 deg),
written with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from protocol.job import Camera

from ..reconstruct.render import render
from ..models import facs
from ..models.morphable import MorphableModel
from ..reconstruct import mesh_landmarks as ml

FPS, N = 24, 48


def truth(n: int = N, fps: float = FPS) -> dict[str, np.ndarray]:
    t = np.arange(n) / fps
    return {"t": t, "AU12": np.clip(np.sin(np.pi * t), 0, None) * (t < 1.0),
            "AU27": np.clip(np.sin(np.pi * (t - 1.0)), 0, None) * (t >= 1.0) * 0.6,
            "yaw": 10 * np.sin(np.pi * t)}


def camera(model: MorphableModel, V: np.ndarray, yaw: float = 0.0, w: int = 640, h: int = 480) -> Camera:
    c = ml.view_camera(model, yaw, 0.0, size=h, fov_deg=30.0, distance=650.0, vertices=V)
    return Camera(width=w, height=h, focal=c.focal, rotation=c.rotation, translation=c.translation)


def neutral_frame(model: MorphableModel) -> np.ndarray:
    V0 = model.shape()
    return render(model, V0, camera(model, V0), vertex_rgb=ml.generic_albedo(model, V0)).image


def frames(model: MorphableModel, n: int = N, fps: float = FPS) -> list[np.ndarray]:
    """640x480 renders of the mean face following :func:`truth`."""
    tr = truth(n, fps)
    V0 = model.shape()
    albedo = ml.generic_albedo(model, V0)
    out = []
    for i in range(n):
        V = model.shape(None, facs.weights_from_aus(model, {"AU12": tr["AU12"][i], "AU27": tr["AU27"][i]}))
        out.append(render(model, V, camera(model, V0, tr["yaw"][i]), vertex_rgb=albedo).image)
    return out


def write_clip(path: str | Path, images: list[np.ndarray], fps: float = FPS) -> Path:
    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=int(round(fps)))
    s.width, s.height, s.pix_fmt, s.bit_rate = images[0].shape[1], images[0].shape[0], "yuv420p", 6_000_000
    for f in images:
        for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return Path(path)
