"""The AU readout: a photo's Action Units from the fit, through a small learned net.

The landmark fit explains the points with the model's expression shapes under a prior, and its
weights come back shrunk and confused where points cannot tell AUs apart (AU1 against AU4 on the
brows, AU6 and AU7 on the lids): measured on renders of known expressions, present AUs read at
about half their value (docs/au_accuracy.md). The readout maps the fitted weights (the shapes the
fit estimates) and the head's yaw to the AU rig's control values. It is a learned prior from the
rig: a two-layer MLP trained on renders of the default model at random expressions -- EMFACS
prototypes at random intensity, random AU combinations, neutral -- with random identities,
poses, lighting and painted looks (backend.learned.train.au_data); synthetic only, see the model
card. It runs in numpy (a few microseconds), so the photo step needs no torch.

The geometry stays the fit's (the mesh matches the photo's landmarks, and the scene's sliders and
the detail maps' source expression are its weights); the readout gives the AU values the job
reports (``face.json`` ``aus``), beside the fit's own and their posterior sd.
"""

from __future__ import annotations

import json
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
from .pinhole import rotation_angles

KIND = "au_readout"
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
        self.controls: list[str] = cfg["controls"]  # outputs
        self.layers = [(tensors[f"{i}.weight"].astype(np.float64), tensors[f"{i}.bias"].astype(np.float64))
                       for i in cfg["linear_layers"]]

    def features(self, model: MorphableModel, weights: np.ndarray, yaw_deg: float) -> np.ndarray:
        idx = [model.expression_index(s) for s in self.shapes]
        return np.concatenate([np.asarray(weights, np.float64)[idx], [yaw_deg / 40.0, abs(yaw_deg) / 40.0]])

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
                  readout: "Readout | None" = None) -> dict[str, float] | None:
    """The rig's control values for a fit (its expression weights and yaw), or None without weights
    or for a model whose rig or shapes differ from the readout's."""
    ro = readout if readout is not None else load()
    if ro is None:
        return None
    keys = [c["key"] for c in au_rig(model)]
    if keys != ro.controls or any(s not in model.expression_names for s in ro.shapes):
        return None
    out = ro(ro.features(model, weights, yaw_deg))
    return {k: round(float(v), 3) for k, v in zip(ro.controls, out)}


def read_aus(model: MorphableModel, fit) -> tuple[dict[str, float], str]:
    """A fit's AU values and where they come from: the readout ("readout") when its weights are
    installed and fit the model's rig and the fit is a dense one (what it was trained on), else the
    fit's weights ("fit")."""
    w = np.asarray(fit.expression, np.float64)
    yaw = rotation_angles(np.asarray(fit.camera.rotation))[0]
    controls = read_controls(model, w, yaw) if fit.points == "dense" else None
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
