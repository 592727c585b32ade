"""The photo's camera model: a pinhole with a fixed field of view, and the frontal reference pose."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

# Focal length policy. One photo barely constrains the focal length: focal length and
# distance trade off against each other and only the (weak) perspective foreshortening of a
# ~15 cm deep face tells them apart, which landmark noise swamps. So we fix the field of view
# instead of fitting it: 40 degrees across the long side, i.e. a "normal" 50 mm lens on full
# frame / a phone's main camera with a mild crop -- between a phone selfie (~65-75 deg) and
# a portrait tele (~20-25 deg). The fitted distance then follows from the face's size in
# pixels (about 0.5-0.8 m for a head-and-shoulders photo), and a wrong guess mostly moves the
# camera along its axis; the reprojection stays the same. The principal point is the image
# centre (no EXIF crop info is trusted).
DEFAULT_FOV_DEG = 40.0

# R_ref for a frontal view: model +x (subject's left) -> camera +x (image right), model +y
# (up) -> camera -y (image up), model +z (towards the viewer) -> camera -z.
FRONTAL = np.diag([1.0, -1.0, -1.0])


def focal_for(image_size: tuple[int, int], fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length in pixels for a field of view of ``fov_deg`` across the long side."""
    w, h = image_size
    return 0.5 * max(w, h) / math.tan(math.radians(fov_deg) / 2.0)


def rotation_angles(R_cam: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of the head relative to a frontal view.

    Yaw > 0: the head turned towards the subject's left (its +x side moves away from the
    camera). Convention of :data:`FRONTAL` @ Rotation.from_euler("yxz", ...).
    """
    H = FRONTAL.T @ np.asarray(R_cam)
    yaw, pitch, roll = Rotation.from_matrix(H).as_euler("yxz", degrees=True)
    return float(yaw), float(pitch), float(roll)
