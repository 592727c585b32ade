"""Face detection, dense landmarks and the 68 Multi-PIE landmarks.

Default: MediaPipe's full-range face detector and its 478-point face mesh (:mod:`.dense`; the
68 points are read off the mesh). When MediaPipe finds no face, or its mesh fails on the face
chosen: dlib's HOG frontal detector, dlib's CNN (MMOD) detector as a fallback, and dlib's
68-point shape predictor -- all weights ship with the ``face_recognition_models`` package,
so nothing is downloaded. Optional: the ``face_alignment`` package (FAN), used for the
landmarks only when it is importable *and* its weights are already in torch hub's cache.

Detection runs on a copy whose longer side is at most :data:`DETECT_LONG_SIDE` pixels
(upsampled once when small, so faces down to ~40 px are found); landmarks are predicted on
the full-resolution photo from the box mapped back to it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from typing import Optional
from urllib.parse import urlparse

import dlib
import numpy as np
from PIL import Image

with warnings.catch_warnings():  # face_recognition_models imports pkg_resources, which warns on setuptools >= 67
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import face_recognition_models

from protocol.job import Detection

from ..core.errors import BadRequestError, NoFaceError
from ..core.progress import Job
from . import brow_band
from . import dense as dense_mesh

# HOG on a 1600 px copy takes ~0.3 s on one core; beyond that the face is large anyway.
DETECT_LONG_SIDE = 1600
# Detection copies whose longer side is at most this are upsampled once (HOG's window is
# 80 px; one upsampling halves that to ~40 px, for ~4x the time, ~0.1 s at 512 px).
UPSAMPLE_BELOW = 800
# The CNN (MMOD) detector costs ~1.5-2 s for a 512 px image on this class of CPU, so it runs
# on a copy no larger than this, and only when HOG found nothing confident.
CNN_LONG_SIDE = 800

# HOG score (SVM margin) a detection must reach to count as a face. dlib's own default is
# 0.0. On skimage's astronaut photo the true face scores 1.16 (1.53 without upsampling) and a
# false positive on her space suit 0.12 (-0.05); in a collage of the photo at two scales the
# suit reached 0.25 while both faces scored 1.2-1.3. Since the *largest* face above the
# threshold wins, a false positive that clears it would beat a real face, so the margin over
# clutter matters more than catching weak faces here: 0.5 (twice the worst clutter seen). A
# real face that scores lower (strong yaw, blur, low light) is handed to the CNN detector.
HOG_THRESHOLD = 0.5
# HOG is asked for detections down to this margin (useful when debugging); only those above
# HOG_THRESHOLD count, in ``Detection.faces_found`` too.
HOG_ADJUST = -0.5
# MMOD confidence threshold (dlib's default is 0.0; true faces score ~1, e.g. 1.06 on the
# astronaut and 1.12 on skimage's cameraman whom HOG scores below 0).
CNN_THRESHOLD = 0.3

_lock = threading.Lock()
_models: dict[str, object] = {}


def _get(name: str):
    """The dlib models, loaded once per process (lazy; the shape predictor takes ~0.7 s)."""
    with _lock:
        m = _models.get(name)
        if m is not None:
            return m
        if name == "hog":
            m = dlib.get_frontal_face_detector()
        elif name == "shape68":
            m = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        elif name == "cnn":
            m = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
        elif name == "embedding":
            m = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
        else:  # pragma: no cover
            raise KeyError(name)
        _models[name] = m
        return m


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.max(initial=0) <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _scaled(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most ``long_side`` and its scale factor (copy / original)."""
    h, w = image.shape[:2]
    s = min(1.0, long_side / float(max(h, w)))
    if s >= 1.0:
        return image, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=2.0))
    return np.ascontiguousarray(small), size[0] / float(w)


def _hog_faces(image: np.ndarray) -> tuple[list[tuple[list[float], float]], float]:
    small, s = _scaled(image, DETECT_LONG_SIDE)
    up = 1 if max(small.shape[:2]) <= UPSAMPLE_BELOW else 0
    rects, scores, _ = _get("hog").run(small, up, HOG_ADJUST)
    faces = [([r.left() / s, r.top() / s, (r.right() + 1) / s, (r.bottom() + 1) / s], float(sc))
             for r, sc in zip(rects, scores)]
    return faces, s


def _cnn_faces(image: np.ndarray) -> list[tuple[list[float], float]]:
    small, s = _scaled(image, CNN_LONG_SIDE)
    dets = _get("cnn")(small, 0)
    return [([d.rect.left() / s, d.rect.top() / s, (d.rect.right() + 1) / s, (d.rect.bottom() + 1) / s],
             float(d.confidence)) for d in dets]


def _largest(faces: list[tuple[list[float], float]]) -> int:
    """The index of the largest face; equal sizes (HOG boxes come in steps): the more confident."""
    return max(range(len(faces)), key=lambda i: ((faces[i][0][2] - faces[i][0][0]) * (faces[i][0][3] - faces[i][0][1]),
                                                 faces[i][1]))


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_face(faces: list[tuple[list[float], float]], face=None) -> tuple[list[float], float, int]:
    """(box, score, index) of the face to use among ``faces`` (boxes left to right): ``face`` None
    takes the largest, an int that index, a box [left, top, right, bottom] the detected face that
    overlaps it most — or the box itself when none does (a face the detectors missed)."""
    if face is None:
        i = _largest(faces)
    elif isinstance(face, int):
        if not 0 <= face < len(faces):
            raise BadRequestError(f"face {face} was asked for, but the photo has {len(faces)} "
                                  f"face{'s' if len(faces) != 1 else ''} (numbered 0 to {len(faces) - 1} from the left)",
                                  "Choose one of those numbers, or give the face's box.")
        i = face
    else:
        box = [float(v) for v in face]
        overlaps = [_iou(box, f[0]) for f in faces]
        i = int(np.argmax(overlaps)) if faces else -1
        if i < 0 or overlaps[i] < 0.1:
            return box, 0.0, -1
    return faces[i][0], faces[i][1], i


def _clip_box(box: list[float], w: int, h: int) -> list[float]:
    l, t, r, b = box
    return [float(max(0.0, l)), float(max(0.0, t)), float(min(float(w), r)), float(min(float(h), b))]


def _dlib_landmarks(image: np.ndarray, box: list[float]) -> np.ndarray:
    l, t, r, b = (int(round(v)) for v in box)
    shape = _get("shape68")(image, dlib.rectangle(l, t, r - 1, b - 1))
    # dlib reports integer pixel indices; +0.5 puts them at pixel centres, the convention of
    # Camera.project.
    return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], np.float64)


# ---- optional: face_alignment (FAN) ---------------------------------------------------------
def _fan_checkpoint() -> Optional[str]:
    """Path of face_alignment's 2D-FAN weights if they are already cached, else None.

    face_alignment downloads its weights into ``torch.hub.get_dir()/checkpoints`` on first
    use; we never trigger that download, so we look for the file it would fetch first.
    """
    if os.environ.get("FACEDET3D_NO_FAN"):
        return None
    try:
        if importlib.util.find_spec("face_alignment") is None:
            return None
        import torch  # optional: only when face_alignment (FAN) is installed
        from face_alignment import api as fa_api

        tv = torch.__version__.split("+")[0]
        key = tv.rsplit(".", 2)[0] if "dev" in tv else tv.rsplit(".", 1)[0]
        table = getattr(fa_api, "models_urls", {}).get(key) or getattr(fa_api, "default_model_urls", None)
        if not table or "2DFAN-4" not in table:
            return None
        name = os.path.basename(urlparse(table["2DFAN-4"]).path)
        path = os.path.join(torch.hub.get_dir(), "checkpoints", name)
        return path if os.path.isfile(path) else None
    except Exception:  # any import/API mismatch -> not available
        return None


def _fan_landmarks(image: np.ndarray, box: list[float]) -> Optional[np.ndarray]:
    """68 landmarks from face_alignment given our box, or None (then dlib is used)."""
    with _lock:
        fa = _models.get("fan")
        if fa is None:
            if _fan_checkpoint() is None:
                return None
            try:
                import face_alignment
                import torch

                lt = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
                device = "cuda" if torch.cuda.is_available() else "cpu"
                # The 'folder' detector loads no weights (the default 'sfd' would download
                # its own); we hand FAN our dlib box instead.
                fa = face_alignment.FaceAlignment(lt, device=device, face_detector="folder", flip_input=False)
            except Exception:
                _models["fan"] = False
                return None
            _models["fan"] = fa
        if fa is False:
            return None
    try:
        pts = fa.get_landmarks_from_image(image, detected_faces=[np.asarray(box, np.float32)])
    except Exception:
        return None
    if not pts:
        return None
    p = np.asarray(pts[0], np.float64)[:, :2]
    return p if p.shape == (68, 2) and np.isfinite(p).all() else None


def mesh_available() -> bool:
    """MediaPipe can be switched off (FACEDET3D_LANDMARKER=dlib) or be missing from an older
    backend environment: then dlib does everything, as before."""
    return os.environ.get("FACEDET3D_LANDMARKER", "auto") != "dlib" and dense_mesh.available()


def _dlib_box(image: np.ndarray, box: list[float]) -> list[float]:
    """dlib's shape predictor wants dlib's own box (it was trained on HOG boxes, which sit lower
    and tighter than MediaPipe's): HOG's best box overlapping ``box``, else ``box`` itself."""
    faces, _ = _hog_faces(image)
    best = max(faces, key=lambda f: _iou(f[0], box), default=None)
    return best[0] if best is not None and _iou(best[0], box) > 0.3 else box


# ---- public ---------------------------------------------------------------------------------
def detect_face(image: np.ndarray, job: Job | None = None, face=None, landmarker: str = "auto") -> Detection:
    """Find the confident faces in an (H, W, 3) uint8 RGB photo and place landmarks on one:
    the largest, or the one ``face`` names (:func:`choose_face`: an index from the left, or a box).

    ``landmarker``: "auto" (MediaPipe's detector and mesh, dlib when they find nothing) or
    "dlib" (dlib's detectors and 68 points only: the BFM registration, whose landmark habits
    are calibrated on them). Raises :class:`NoFaceError` when no detector finds a face (and no
    box is given).
    """
    img = _as_rgb8(image)
    h, w = img.shape[:2]

    def step(frac: float, msg: str) -> None:
        if job is not None:
            job.check()
            job.report(frac, msg)

    use_mesh = landmarker == "auto" and mesh_available()
    confident = []
    if use_mesh:
        step(0.0, "Looking for a face")
        confident = [f for f in dense_mesh.detect(img) if f[1] >= dense_mesh.DETECT_THRESHOLD]
        detector = "mediapipe"
    if not confident:
        step(0.1, "Looking for a face (HOG)")
        faces, _ = _hog_faces(img)
        confident = [f for f in faces if f[1] >= HOG_THRESHOLD]
        detector = "dlib-hog"
    if not confident:
        step(0.35, "No clear frontal face; trying the CNN face detector")
        confident = [f for f in _cnn_faces(img) if f[1] >= CNN_THRESHOLD]
        detector = "dlib-cnn"
    confident.sort(key=lambda f: f[0][0])  # numbered from the left, as a user counts them
    if not confident and face is not None and not isinstance(face, int):
        confident, detector = [], "user-box"
    elif not confident:
        raise NoFaceError(
            f"No face found in the {w}x{h} photo.",
            "Use a photo with a frontal or three-quarter view of one face at least ~100 px wide, "
            "evenly lit and not cut off by the frame.",
        )
    box, score, chosen = choose_face(confident, face)
    if chosen < 0:
        detector = "user-box"
    box = _clip_box(box, w, h)
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        given = face if isinstance(face, (list, tuple)) else box
        raise BadRequestError(f"the face box {', '.join(f'{v:.0f}' for v in given)} is outside the {w}x{h} photo "
                              "(or under 8 px)", "Give the box in the photo's pixels: left, top, right, bottom.")

    step(0.7, "Placing landmarks")
    dense = dense_mesh.landmarks_in_box(img, box) if use_mesh else None
    if dense is not None:
        pts = dense[dense_mesh.TO_68]
        detector += "+mediapipe-478"
    else:
        pts = _fan_landmarks(img, box) if _fan_checkpoint() is not None else None
        if pts is not None:
            detector += "+fan-2d"
        else:
            pts = _dlib_landmarks(img, _dlib_box(img, box) if detector == "mediapipe" else box)
            detector += "+dlib-68"
    step(1.0, f"Face found ({detector})")
    return Detection(box=[float(v) for v in box], score=float(score), landmarks=pts.tolist(),
                     dense=None if dense is None else np.round(dense, 2).tolist(),
                     brows=None if dense is None else brow_band.measure(img, dense),
                     detector=detector, faces_found=len(confident),
                     faces=[[round(float(v), 1) for v in _clip_box(f[0], w, h)] for f in confident], chosen=chosen,
                     chosen_by="largest" if face is None else ("number" if isinstance(face, int) else "box"))


def face_embedding(image: np.ndarray) -> np.ndarray | None:
    """dlib's 128-D face descriptor (ResNet, face_recognition_models' weights) of the largest face
    in ``image`` (HOG, then the CNN detector), or None when no face is found. Two photos of one
    person lie within 0.6 of each other (dlib's own threshold, 99.38 % on LFW)."""
    rgb = _as_rgb8(image)
    faces, _ = _hog_faces(rgb)
    if not faces:
        faces = _cnn_faces(rgb)
    if not faces:
        return None
    box = _clip_box(faces[_largest(faces)][0], rgb.shape[1], rgb.shape[0])
    l, t, r, b = (int(round(v)) for v in box)
    shape = _get("shape68")(rgb, dlib.rectangle(l, t, r - 1, b - 1))
    return np.asarray(_get("embedding").compute_face_descriptor(rgb, shape), np.float64)
