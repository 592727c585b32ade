"""Serving DetH + RCAN: a reconstructed face and target AUs -> a detail map at any project size.

    D̃(I_y) = DetH(D(I_x), x, y, identity, face embedding, age)      256²
    1024²  = RCAN(D̃(I_y))                                            tiled
    4096²  = bicubic(1024²) + the face's pores and fine lines finer than 1024²

D(I_x) is the person's detail extracted from the photo (``ReconstructedFace.photo_detail``, area-reduced to
256²): the map of the photo's own expression x, as in the paper. x is the fitted expression read as
rig controls, identity the fitted shape coefficients, age the estimated one. The face embedding
goes in with its presence flag only when the weights were trained with embeddings (the shipped
ones were not: MODEL_CARD.md).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from ..core.imaging import block_reduce, resample
from ..core.progress import Job
from ..detail.face import ReconstructedFace
from ..detail.strain import face_mesh, texel_grid
from ..models import emotions
from . import weights
from .sr import SCALE, upsample_with_fine, upscale

IN_SIZE = 256
SR_TOP = 1024  # RCAN's training size: it runs up to here, bicubic + fine relief beyond (to_size)
ABOVE_SR = "bicubic-fine"  # names that method in map tags (deth_model)
_lock = threading.Lock()
_loaded: dict = {}


class LearnedDetails:
    """DetH and RCAN loaded from a weights folder (shipped by default)."""

    def __init__(self, folder=None, device: str = "cpu"):
        self.deth, self.deth_meta = weights.load("deth", folder, device)
        self.rcan, self.rcan_meta = weights.load("rcan", folder, device)
        self.device = device
        self.uses_faceid = bool(self.deth_meta["info"].get("uses_faceid", False))

    @property
    def creases_only(self) -> bool:
        """RCAN's training maps had no pores and fine lines (its data's ``micro`` flag): serving
        adds the face's own from DetH's grid up (``to_size``)."""
        return not self.rcan_meta["info"].get("data", {}).get("micro", True)

    @property
    def fine_from(self) -> int:
        """Maps larger than this get the face's fine relief (``to_size``'s ``fine``)."""
        return IN_SIZE if self.creases_only else SR_TOP

    @property
    def name(self) -> str:
        return f"{self.deth_meta['info'].get('name', 'deth')}+{self.rcan_meta['info'].get('name', 'rcan')}"

    @torch.no_grad()
    def hallucinate(self, dx: np.ndarray, uv: np.ndarray, x: np.ndarray, ys: np.ndarray, identity: np.ndarray,
                    age: float, faceid: np.ndarray | None = None,
                    model_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """D̃ and M (each (len(ys), 256, 256)) for one source map and several targets ``ys``, in the
        UV layout of the face model in ``model_dir`` (None: the default model)."""
        n = len(ys)
        t = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=self.device)  # noqa: E731
        k = self.deth.cfg.n_identity
        ident = np.zeros(k, np.float32)
        ident[:min(k, len(identity))] = np.asarray(identity, np.float32)[:k]
        has = 1.0 if (faceid is not None and self.uses_faceid) else 0.0
        fid = np.asarray(faceid, np.float32) if has else np.zeros(self.deth.cfg.faceid_dim, np.float32)
        rows = lambda a: t(a)[None].expand(n, *([-1] * np.ndim(a)))  # noqa: E731 - one input, n targets
        out, _, mask = self.deth(dx=rows(dx)[:, None], uv_mask=rows(uv)[:, None], x=rows(x), y=t(ys),
                                 identity=rows(ident), faceid=rows(fid),
                                 has_faceid=torch.full((n, 1), has, device=self.device),
                                 age=torch.full((n, 1), float(age), device=self.device), model_dir=model_dir)
        return out[:, 0].cpu().numpy(), mask[:, 0].cpu().numpy()

    def map_for(self, inp: dict, ys: np.ndarray, age: float) -> np.ndarray:
        """D̃ for targets ``ys`` (n, n_controls) from ``face_inputs``; outside the face's UV coverage
        the map stays D(I_x) (the nets never learned anything there)."""
        out, _ = self.hallucinate(inp["dx"], inp["uv"], inp["x"], ys, inp["identity"], age,
                                  model_dir=inp.get("model_dir"))
        return np.where(inp["uv"][None] > 0.5, out, inp["dx"][None]).astype(np.float32)

    def to_size(self, m: np.ndarray, size: int, job=None, fine: np.ndarray | None = None) -> np.ndarray:
        """RCAN ×4 up to SR_TOP² (one pass from 256²), then to exactly ``size``: area-reduced
        below it, bicubic above it. ``fine`` (size², the face's pores and fine lines) is added
        as the weights need: RCAN trained on creases alone (``creases_only``, v3) gets all of it
        but what the input grid holds, at every size above that grid; RCAN trained with pores
        (v2) gets, above SR_TOP², only what the SR_TOP² grid cannot hold. Either way the map
        keeps RCAN's creases and gets texel-scale relief.

        A second RCAN pass (1024² → 4096²) was the rule before: 16× the first pass's work
        (10-12 s on 2 cores) for a net trained at 1024², whose crease widths are then 4× off
        its training scale. On held-out 4096² generator maps (`scripts/sr_4096.py`,
        docs/deth.md) this way errs less in crease width and carries the generator's amount
        of texel-scale relief, which the second pass did not."""
        n_in = m.shape[0]
        while m.shape[0] < size and m.shape[0] < SR_TOP:
            m = upscale(self.rcan, m, job=job)
        if not self.creases_only:
            return resample(m, size) if m.shape[0] >= size else upsample_with_fine(m, size, fine)
        # RCAN trained on creases alone: the face's pores and fine lines are added whole, less
        # the part DetH's own grid holds (the input's size), at every size above that grid
        m = resample(m, size) if m.shape[0] >= size else upsample_with_fine(m, size)
        if fine is None or size <= n_in:
            return m
        if size % n_in:
            raise ValueError(f"fine relief needs a size that is a multiple of {n_in}, got {size}")
        return m + fine - upsample_with_fine(block_reduce(np.asarray(fine, np.float32), size // n_in), size)


def get(folder=None) -> LearnedDetails:
    """The process's loaded nets (loaded once; reloaded when the files change)."""
    key = str(weights.weights_dir() if folder is None else folder)
    stamp = tuple(weights.path_for(k, folder).stat().st_mtime_ns for k in ("deth", "rcan"))
    with _lock:
        hit = _loaded.get(key)
        if hit is None or hit[0] != stamp:
            hit = (stamp, LearnedDetails(folder))
            _loaded[key] = hit
        return hit[1]


def available(folder=None) -> bool:
    return weights.available("deth", folder) and weights.available("rcan", folder)


def face_inputs(face: ReconstructedFace, job: Job) -> dict:
    """What DetH reads from a reconstructed face: D(I_x) at 256², its UV coverage, the source
    controls x, identity coefficients and age."""
    rec, model = face.rec, face.model
    return {"dx": resample(face.photo_detail(job), IN_SIZE),
            "uv": texel_grid(face_mesh(model, face.identity), IN_SIZE).mask.astype(np.float32),
            "x": controls_vector(face.rig, model.expression_names, rec.fit.expression),
            "identity": np.asarray(rec.fit.identity, np.float32),
            "age": rec.age_years, "rig": face.rig, "model_dir": rec.model_dir}


def values_vector(rig: list[dict], values: dict[str, float]) -> np.ndarray:
    """Control values (``{"AU12L": 0.8}``) as DetH's AU vector (rig order, clipped to 0..1)."""
    return np.array([np.clip(float(values.get(c["key"], 0.0)), 0.0, 1.0) for c in rig], np.float32)


def controls_vector(rig: list[dict], names: list[str], weights_: np.ndarray) -> np.ndarray:
    """Shape weights as DetH's AU vector: what the rig's controls read from them."""
    c = emotions.controls_from_weights(rig, names, weights_)
    return np.array([c[r["key"]] for r in rig], np.float32)


__all__ = ["LearnedDetails", "get", "available", "face_inputs", "controls_vector", "values_vector", "SCALE"]
