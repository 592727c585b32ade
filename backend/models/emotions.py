"""Emotion presets as FACS Action Units, and the AU rig a face object is animated with.

Presets follow the EMFACS prototypes as commonly cited (Friesen & Ekman, EMFACS-7, 1983; the
table reproduced e.g. in Matsumoto & Ekman's FACS summaries): Happiness 6+12, Sadness 1+4+15,
Surprise 1+2+5B+26, Fear 1+2+4+5+7+20+26, Anger 4+5+7+23, Disgust 9+15+16, Contempt R12A+R14A.
Letter intensities map to 0..1 as A 0.2, B 0.4, C 0.6, D 0.8, E 1.0 (unlettered: 1.0).
The default model has no AU23 (lip tightener) or AU26 (jaw drop): AU24 (lip pressor) and AU27
(mouth stretch, the model's jawOpen) at a lower intensity stand in, as documented per preset.
"""

from __future__ import annotations

import numpy as np

from .facs import sides
from .morphable import MorphableModel

INTENSITY = {"A": 0.2, "B": 0.4, "C": 0.6, "D": 0.8, "E": 1.0}

# preset -> ((AU, letter or None, side or None), ...), and a note on substitutions.
EMFACS = {
    "happy": (((6, None, None), (12, None, None)), ""),
    "sad": (((1, None, None), (4, None, None), (15, None, None)), ""),
    "surprise": (((1, None, None), (2, None, None), (5, "B", None), (27, "B", None)), "AU26 -> AU27 at B"),
    "fear": (((1, None, None), (2, None, None), (4, None, None), (5, None, None), (7, None, None),
              (20, None, None), (27, "B", None)), "AU26 -> AU27 at B"),
    "anger": (((4, None, None), (5, None, None), (7, None, None), (24, None, None)), "AU23 -> AU24"),
    "disgust": (((9, None, None), (15, None, None), (16, None, None)), ""),
    "contempt": (((12, "A", "R"), (14, "A", "R")), ""),
}


def au_rig(model: MorphableModel) -> list[dict]:
    """One control per AU and side: ``{"key", "au", "side", "name", "shapes"}``.

    Sided AUs (a _L and a _R shape) get an L and an R control, one shape each, so left/right
    asymmetry (contempt, a lopsided smile) is animatable; AU30 (jaw sideways) splits into its
    left and right shapes. Every shape is driven by at most one control.
    """
    rig = []
    for n, unit in sorted(model.facs.items()):
        sd = sides(unit)
        if n == 30 and set(unit.shapes) == {"jawLeft", "jawRight"}:
            sd = {"L": "jawLeft", "R": "jawRight"}
        if sd:
            for side in ("L", "R"):
                rig.append({"key": f"AU{n}{side}", "au": n, "side": side, "name": unit.name, "shapes": [sd[side]]})
        else:
            rig.append({"key": f"AU{n}", "au": n, "side": "", "name": unit.name, "shapes": list(unit.shapes)})
    seen: dict[str, str] = {}
    for c in rig:
        for s in c["shapes"]:
            if s in seen:
                raise ValueError(f"shape {s} would be driven by {seen[s]} and {c['key']}")
            seen[s] = c["key"]
    return rig


def preset_controls(model: MorphableModel, rig: list[dict] | None = None) -> dict[str, dict[str, float]]:
    """Each preset as values of the rig's controls (both sides unless the prototype says one)."""
    rig = rig or au_rig(model)
    by_au: dict[int, list[dict]] = {}
    for c in rig:
        by_au.setdefault(c["au"], []).append(c)
    out = {}
    for name, (aus, _note) in EMFACS.items():
        vals = {c["key"]: 0.0 for c in rig}
        for au, letter, side in aus:
            for c in by_au.get(au, []):
                if side is None or c["side"] in ("", side):
                    vals[c["key"]] = INTENSITY.get(letter, 1.0) if letter else 1.0
        out[name] = vals
    return out


def controls_from_weights(rig: list[dict], names: list[str], weights) -> dict[str, float]:
    """Control values that reproduce the given shape weights as closely as the rig can
    (the mean of a control's shapes)."""
    w = dict(zip(names, (float(x) for x in weights)))
    return {c["key"]: round(sum(w.get(s, 0.0) for s in c["shapes"]) / len(c["shapes"]), 4) for c in rig}


def controls_from_weight_rows(rig: list[dict], names: list[str], W: np.ndarray) -> np.ndarray:
    """:func:`controls_from_weights` for many expressions at once: (N, shapes) -> (N, controls)
    in rig order (video frames, training samples)."""
    index = {n: i for i, n in enumerate(names)}
    W = np.asarray(W, np.float64)
    return np.stack([W[:, [index[s] for s in c["shapes"]]].mean(1) for c in rig], 1)


def weights_from_controls(rig: list[dict], names: list[str], values: dict[str, float],
                          undriven: np.ndarray | None = None) -> np.ndarray:
    """Shape weights (in ``names`` order) that the rig's drivers give for control ``values``:
    each shape takes its control's value (what Blender's drivers do); unknown controls are an
    error, absent ones are 0. Shapes no control drives keep ``undriven``'s weight (the values
    the scene gave them: the photo's fit), else 0."""
    known = {c["key"] for c in rig}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown AU controls {', '.join(unknown)}; this face's rig has {', '.join(sorted(known))}")
    w = np.zeros(len(names), np.float64) if undriven is None else np.array(undriven, np.float64)
    index = {n: i for i, n in enumerate(names)}
    for c in rig:
        v = float(np.clip(values.get(c["key"], 0.0), 0.0, 1.0))
        for s in c["shapes"]:
            w[index[s]] = v
    return w
