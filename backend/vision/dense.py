"""Dense face landmarks: MediaPipe's face detector and its 478-point face mesh (468 surface
points and 10 iris points), from the models inside the ``mediapipe`` wheel (nothing is
downloaded).

Faces are found by the full-range detector (BlazeFace, for faces up to ~5 m away) on the whole
photo; the mesh is then placed on a square crop around the chosen face, so a small face in a
large photo gets the landmark network's full 192 px input, and every caller (a still, a video
frame with the previous frame's box) goes the same way. Points are in pixels of the input
image, pixel centres at .5 (the convention of ``Camera.project``).

MediaPipe's graphs are not thread-safe and the backend runs two jobs at once: one lock.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np
from PIL import Image

# MediaPipe's C++ logging goes to stderr before absl is set up; the backend's stderr is the
# add-on's log, so only errors are let through.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_POINTS = 478
N_SURFACE = 468  # the rest are the irises: 468-472 the subject's right, 473-477 the left

# The 68 Multi-PIE points as mesh indices (the correspondence used across MediaPipe
# projects; checked here against dlib's 68 on the astronaut photo and a render of the default
# model: inner points within 2-5 % of the eye distance, jaw points within ~9 %, the jaw being
# defined only up to a slide along the outline in both schemes).
TO_68 = np.array([
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,  # mouth
], np.int64)

# The face outline as the mesh's own FACEMESH_FACE_OVAL traces it, clockwise from the top.
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
                      377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109],
                     np.int64)

# Detector confidence a face must reach (MediaPipe's own default is 0.5).
DETECT_THRESHOLD = 0.5
# The mesh crop: a square this many times the detector box's larger side, around its centre
# (the landmark model wants the face to fill about two thirds of its input, with forehead and
# chin inside), resampled to CROP_SIZE px.
CROP_SCALE = 1.7
CROP_SIZE = 384

_lock = threading.Lock()
_graphs: dict[str, object] = {}


def available() -> bool:
    try:
        _graph("mesh")
        return True
    except Exception:
        return False


def _graph(name: str):
    with _lock:
        g = _graphs.get(name)
        if g is not None:
            return g
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mediapipe.python.solutions import face_detection, face_mesh
        if name == "mesh":
            g = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                   min_detection_confidence=0.5)
        elif name == "detect":
            g = face_detection.FaceDetection(model_selection=1, min_detection_confidence=DETECT_THRESHOLD)
        else:  # pragma: no cover
            raise KeyError(name)
        _graphs[name] = g
        return g


def detect(image: np.ndarray) -> list[tuple[list[float], float]]:
    """Faces in an (H, W, 3) uint8 RGB image: ([left, top, right, bottom] px, score), any order."""
    h, w = image.shape[:2]
    g = _graph("detect")
    with _lock:
        res = g.process(np.ascontiguousarray(image))
    out = []
    for d in res.detections or []:
        b = d.location_data.relative_bounding_box
        box = [b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h]
        out.append(([float(v) for v in box], float(d.score[0])))
    return out


def crop_around(image: np.ndarray, box, scale: float = CROP_SCALE, size: int = CROP_SIZE):
    """A square crop of ``scale`` x the box's larger side, resampled to ``size`` px (parts
    outside the photo black), and the map back: ``(crop, origin (x, y), pixels per crop px)``."""
    l, t, r, b = (float(v) for v in box)
    side = scale * max(r - l, b - t)
    x0, y0 = int(np.floor((l + r) / 2 - side / 2)), int(np.floor((t + b) / 2 - side / 2))
    n = max(1, int(np.ceil(side)))
    # PIL's crop pads beyond the photo's edges with black; the resize filters when it shrinks
    crop = Image.fromarray(image).crop((x0, y0, x0 + n, y0 + n)).resize((size, size), Image.BILINEAR,
                                                                         reducing_gap=2.0)
    k = n / size
    return np.asarray(crop), np.array([x0, y0]), k


def landmarks_in_box(image: np.ndarray, box) -> np.ndarray | None:
    """The 478 mesh points (pixels of ``image``) of the face in ``box``, or None when the mesh
    model does not find a face in the crop."""
    crop, origin, k = crop_around(image, box)
    g = _graph("mesh")
    with _lock:
        res = g.process(np.ascontiguousarray(crop))
    if not res.multi_face_landmarks:
        return None
    p = np.array([(q.x, q.y) for q in res.multi_face_landmarks[0].landmark], np.float64)
    if p.shape != (N_POINTS, 2) or not np.isfinite(p).all():
        return None
    # normalised crop coordinates (0..1 across the crop's edges) -> image pixels
    return origin + p * (CROP_SIZE * k)


def box_of(points: np.ndarray) -> list[float]:
    """The detector-style box of a set of mesh points (for tracking the face to the next frame)."""
    lo, hi = points[:N_SURFACE].min(0), points[:N_SURFACE].max(0)
    return [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]
