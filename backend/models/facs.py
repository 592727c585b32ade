"""FACS Action Units <-> the model's expression weights.

The model's FACS table (``model.facs``: AU number -> :class:`FacsUnit`) lists the
expression shapes that make up each Action Unit (ICT-FaceKit's README table). An AU's
intensity is the mean of its shapes' weights (0..1). AUs made of one left and one right
shape (``browDown_L`` + ``browDown_R``) are *sided*: ``"AU4L"`` / ``"AU4R"`` give each side.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from .morphable import FacsUnit, MorphableModel

_KEY = re.compile(r"^AU(\d+)([LR]?)$")


def sides(unit: FacsUnit) -> dict[str, str] | None:
    """``{"L": left shape, "R": right shape}`` for a sided AU, else None."""
    if len(unit.shapes) != 2:
        return None
    a, b = unit.shapes
    if a[:-2] != b[:-2] or {a[-2:], b[-2:]} != {"_L", "_R"}:
        return None  # e.g. AU61 = eyeLookOut_L + eyeLookIn_R: two shapes, not two sides
    return {s[-1]: s for s in unit.shapes}


def aus_from_weights(model: MorphableModel, weights: np.ndarray) -> dict[str, float]:
    """Action Unit intensities (0..1, 3 decimals) from expression weights (one per shape).

    Keys are ``"AU<n>"`` for every AU of the model's table and, for sided AUs,
    ``"AU<n>L"`` and ``"AU<n>R"`` as well.
    """
    w = np.asarray(weights, np.float64).ravel()
    if w.shape[0] != model.n_expressions:
        raise ValueError(f"expected {model.n_expressions} expression weights, got {w.shape[0]}")
    w = np.clip(w, 0.0, 1.0)
    out: dict[str, float] = {}
    for n in sorted(model.facs):
        unit = model.facs[n]
        vals = [w[model.expression_index(s)] for s in unit.shapes]
        out[f"AU{n}"] = round(float(np.mean(vals)), 3)
        sd = sides(unit)
        if sd:
            for side, shape in sd.items():
                out[f"AU{n}{side}"] = round(float(w[model.expression_index(shape)]), 3)
    return out


def weights_from_aus(model: MorphableModel, aus: Mapping[str, float]) -> np.ndarray:
    """Expression weights (one per model shape, 0..1) that show the given Action Units.

    ``"AU<n>"`` sets all of the AU's shapes; a sided key ``"AU<n>L"`` / ``"AU<n>R"`` then
    sets its side (sided keys win over the AU's overall value). Shapes no AU names stay 0.
    Unknown AUs raise ``KeyError``; values are clipped to 0..1.
    """
    w = np.zeros(model.n_expressions, np.float64)
    parsed = []
    for key, value in aus.items():
        m = _KEY.match(str(key).strip())
        if not m:
            raise KeyError(f"{key!r} is not an Action Unit key like 'AU12' or 'AU12L'")
        n, side = int(m.group(1)), m.group(2)
        if n not in model.facs:
            raise KeyError(f"AU{n} is not in the model's FACS table")
        parsed.append((1 if side else 0, n, side, float(np.clip(value, 0.0, 1.0))))
    # whole AUs first, then sides, so "AU12": 0.2, "AU12L": 0.8 gives L 0.8, R 0.2
    for _, n, side, v in sorted(parsed, key=lambda p: p[0]):
        unit = model.facs[n]
        if not side:
            for s in unit.shapes:
                w[model.expression_index(s)] = v
            continue
        sd = sides(unit)
        if sd is None:
            raise KeyError(f"AU{n} has no left/right shapes, so 'AU{n}{side}' is undefined")
        w[model.expression_index(sd[side])] = v
    return w
