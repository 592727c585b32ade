"""The one data model for a reconstructed face that every stage reads and extends.

A reconstruction lives in a job folder:
  face.json    -- this dataclass (small arrays inline, paths relative to the folder)
  mesh.npz     -- the identity-shaped mesh, UVs, polygons, expression deltas (see pipeline)
  texture.png  -- the photo projected onto UV tile 0 (RGB), visibility in texture_mask.png
Each later stage (details, animation, neural rendering) adds fields and files; the
``schema`` number changes when a field changes meaning.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np

SCHEMA = 1
FACE_JSON = "face.json"


@dataclass
class Camera:
    """Pinhole camera in OpenCV convention (x right, y down, z forward), image pixels.

    ``rotation`` and ``translation`` map model coordinates (mm) to camera coordinates:
    ``x_cam = R @ x_model + t``; the principal point is the image centre.
    """

    width: int
    height: int
    focal: float
    rotation: list[list[float]]
    translation: list[float]

    def project(self, points: np.ndarray) -> np.ndarray:
        """Model points (N,3) -> pixel coordinates (N,2) (pixel centres at .5)."""
        pc = points @ np.asarray(self.rotation).T + np.asarray(self.translation)
        uv = self.focal * pc[:, :2] / pc[:, 2:3]
        return uv + np.array([self.width / 2.0, self.height / 2.0])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return points @ np.asarray(self.rotation).T + np.asarray(self.translation)

    @property
    def center(self) -> np.ndarray:
        """Camera position in model coordinates (mm)."""
        r = np.asarray(self.rotation)
        return -r.T @ np.asarray(self.translation)


@dataclass
class Detection:
    """The face found in the photo: 68 Multi-PIE landmarks in pixels of the original image."""

    box: list[float]  # left, top, right, bottom (pixels)
    score: float
    landmarks: list[list[float]]  # (68, 2) x, y
    detector: str
    faces_found: int = 1

    @property
    def points(self) -> np.ndarray:
        return np.asarray(self.landmarks, np.float64)


@dataclass
class Fit:
    """Result of fitting the morphable model to the landmarks."""

    camera: Camera
    identity: list[float]  # coefficients, N(0,1) units
    expression: list[float]  # weights in [0,1], one per model expression shape
    expression_names: list[str]
    landmark_vertices: list[int]  # the 68 vertices used at convergence (jaw ones slide)
    error_iod: float  # mean landmark reprojection error / inter-ocular distance
    error_px: float
    iterations: int


@dataclass
class FaceReconstruction:
    image: str  # the source photo (absolute path as given)
    image_size: list[int]  # width, height
    model: str  # model name, e.g. "ict-facekit-light"
    model_dir: str
    detection: Optional[Detection] = None
    fit: Optional[Fit] = None
    aus: dict[str, float] = field(default_factory=dict)  # "AU12": 0.4, source expression
    age: Optional[dict] = None  # {"years", "confidence", "source"}: apparent age (detail depth)
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to the job folder
    stats: dict[str, Any] = field(default_factory=dict)  # timings and figures, for humans
    schema: int = SCHEMA

    # ---- persistence ---------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FACE_JSON
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        os.replace(tmp, path)  # never leave a half-written face.json behind
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "FaceReconstruction":
        d = json.loads((Path(folder) / FACE_JSON).read_text(encoding="utf-8"))
        if d.get("schema") != SCHEMA:
            raise ValueError(f"{folder}: face.json schema {d.get('schema')} is not {SCHEMA}")
        det = d.pop("detection", None)
        fit = d.pop("fit", None)
        rec = cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})
        rec.detection = Detection(**det) if det else None
        if fit:
            fit["camera"] = Camera(**fit["camera"])
            rec.fit = Fit(**fit)
        return rec

    def path(self, folder: str | os.PathLike, role: str) -> Path:
        return Path(folder) / self.files[role]
