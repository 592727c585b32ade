"""Shipped weights: safetensors files with the net's config and provenance in the metadata.

``backend/learned/weights/`` holds the project's own trained nets (MODEL_CARD.md there says how
they were made). A user's own training can be pointed at with ``FACEDET3D_WEIGHTS_DIR``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from protocol.atomic import replacing

from ..core.errors import DamagedFileError
from ..core.files import SHIPPED_WEIGHTS, weights_dir
from .nets import RCAN, DetH, DetHConfig, RCANConfig

SHIPPED = SHIPPED_WEIGHTS
# The nets serving needs; training passes its own table (with the evaluation-only AU regressor).
NETS = {"deth": (DetH, DetHConfig), "rcan": (RCAN, RCANConfig)}


def path_for(kind: str, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or weights_dir()) / f"{kind}.safetensors"


def available(kind: str, folder=None) -> bool:
    return path_for(kind, folder).is_file()


def export(net: torch.nn.Module, kind: str, path: str | os.PathLike, info: dict, nets: dict = NETS) -> Path:
    """Write ``net``'s weights (float32) with its config and ``info`` (name, data, steps);
    ``nets``: the kinds that may be written (kind -> (class, config class))."""
    if kind not in nets:
        raise ValueError(f"unknown net kind {kind!r}; one of {', '.join(nets)}")
    cfg = json.dumps(asdict(net.cfg))
    state = {k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        save_file(state, str(tmp), metadata={"kind": kind, "config": cfg, "info": json.dumps(info)})
        os.chmod(tmp, 0o644)  # a shipped file: readable by everyone, like the rest of the package
    return path


def metadata(kind: str, folder=None) -> dict:
    """``{"kind", "config", "info"}`` of a weights file, without loading its tensors; clear
    errors for a missing or foreign file."""
    path = path_for(kind, folder)
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} weights at {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error type for a truncated or foreign file
        raise DamagedFileError(f"{path} is not a readable safetensors file ({e})",
                               f"Copy it again or re-export it (`python -m backend export {kind} ...`).") from e
    if meta.get("kind") != kind:
        raise DamagedFileError(f"{path} holds {meta.get('kind') or 'no FaceDet3D'} weights, not {kind}",
                               f"Put the {kind} weights there, or use the physical model.")
    return {"kind": kind, "config": json.loads(meta["config"]), "info": json.loads(meta.get("info", "{}"))}


def load(kind: str, folder=None, device: str = "cpu", nets: dict = NETS) -> tuple[torch.nn.Module, dict]:
    """The net and its metadata ``{"kind", "config", "info"}``; clear errors for a missing,
    foreign or mismatched file. ``nets``: kind -> (class, config class)."""
    meta = metadata(kind, folder)
    cls, cfg_cls = nets[kind]
    net = cls(cfg_cls(**meta["config"]))
    net.load_state_dict(load_file(str(path_for(kind, folder))))
    net.eval().to(device)
    return net, meta
