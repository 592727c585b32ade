"""Training data for the AU readout: renders of the default model at random expressions, read
back by the photo pipeline's own detection and fit.

Each sample: identity coefficients from the model's N(0, 1) prior; an expression as the AU
rig's control values (an EMFACS prototype at a random intensity, one to three random AUs, one
side only now and then, or neutral; prototypes and neutral faces with the lips parted now and
then: :data:`PARTED_PROTOTYPE`); a head turn (yaw -40..40 deg, pitch -12..12); a random
key light and ambient; a painted generic look with random skin tone, brow colour, height on the
brow ridge and thickness, and lip colour (mesh_landmarks.generic_albedo). No photo texture is
used, so the astronaut-textured closed loop stays a test on an appearance the readout never saw.
Stored: the fit's expression weights and their posterior sd, the fitted yaw, the detector's
478 points (pixels), the brows read off the image (vision.brow_band: the two bands' heights and
contrasts), and the true control values (rig order), with the digest of the
model's dense-landmark correspondence the fits were made with (the readout trained on them is
tied to it: mesh_landmarks).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...geometry.sh_lighting import camera_light
from ...reconstruct.render import render
from ...models import emotions
from ...models.morphable import MorphableModel
from ...reconstruct import fitting, mesh_landmarks
from ...reconstruct.mesh_landmarks import generic_albedo, view_camera
from ...vision import landmarks


def random_controls(rng: np.random.Generator, rig: list[dict], presets: dict[str, dict[str, float]]) -> dict[str, float]:
    vals = {c["key"]: 0.0 for c in rig}
    u = rng.random()
    if u < 0.4:  # a prototype, all its AUs scaled together, with some jitter per control
        name = list(presets)[rng.integers(len(presets))]
        k = rng.uniform(0.3, 1.0)
        for key, v in presets[name].items():
            vals[key] = float(np.clip(v * k * rng.uniform(0.8, 1.2), 0, 1)) if v > 0 else 0.0
        _part_lips(rng, rig, vals, PARTED_PROTOTYPE)
    elif u < 0.92:  # one to three AUs, usually both sides
        aus = sorted({c["au"] for c in rig if c["au"] < 60 and c["au"] not in (33,)})
        for au in rng.choice(aus, size=rng.integers(1, 4), replace=False):
            v = rng.uniform(0.2, 1.0)
            one_side = rng.random() < 0.2
            side = "L" if rng.random() < 0.5 else "R"
            for c in rig:
                if c["au"] == au and (not one_side or c["side"] in ("", side)):
                    vals[c["key"]] = float(v)
    else:  # neutral
        _part_lips(rng, rig, vals, PARTED_NEUTRAL)
    return vals


# Lips parted: FACS codes a smile showing the teeth 6+12+25 (AU25, lips part; AU26, jaw drop,
# often with it), the rig has neither, and the presets stand AU27 in for AU26. Without these
# samples the readout never saw a smile with parted lips, and on one (the bundled photo's; on a
# frontal render of the mean face, happy at 0.9 with the jaw 0.3 open) it read AU6 0.28, against
# 0.87 with the lips closed (test_dense_fit: 0.58 at full intensity, < 0.05 at 40 deg yaw).
# How often faces part their lips is a choice, not a measurement: half of the prototypes, a
# third of the neutral faces.
PARTED_PROTOTYPE, PARTED_NEUTRAL, PARTED_JAW = 0.5, 0.3, (0.1, 0.4)


def _part_lips(rng: np.random.Generator, rig: list[dict], vals: dict[str, float], p: float) -> None:
    if rng.random() >= p:
        return
    jaw = [c["key"] for c in rig if c["au"] == 27]
    if jaw and all(vals[k] == 0 for k in jaw):  # surprise and fear open the jaw already
        v = float(rng.uniform(*PARTED_JAW))
        for k in jaw:
            vals[k] = v


def random_look(rng: np.random.Generator) -> dict:
    skin = np.array([0.62, 0.40, 0.31]) * rng.uniform(0.45, 1.25) * rng.uniform(0.9, 1.1, 3)
    brow = np.array([0.10, 0.065, 0.045]) * rng.uniform(0.4, 3.0)
    lip = np.array([0.48, 0.20, 0.18]) * rng.uniform(0.6, 1.2) * rng.uniform(0.9, 1.1, 3)
    return {"skin": np.clip(skin, 0.02, 0.9), "brow": np.clip(brow, 0.01, 0.5), "lip": np.clip(lip, 0.02, 0.9),
            "brow_half_mm": float(rng.uniform(2.5, 5.0)), "brow_shift_mm": float(rng.uniform(-2.5, 2.5))}


def random_light(rng: np.random.Generator, camera_R: np.ndarray) -> np.ndarray:
    d_cam = np.array([rng.uniform(-1, 1), rng.uniform(-0.3, 1), rng.uniform(0.3, 1.2)])
    return camera_light(d_cam, camera_R, rng.uniform(0.6, 1.1), rng.uniform(0.1, 0.4))


def sample(model: MorphableModel, rng: np.random.Generator, rig, presets, size: int = 512) -> dict | None:
    names = list(model.expression_names)
    ident = rng.standard_normal(50)
    controls = random_controls(rng, rig, presets)
    w = emotions.weights_from_controls(rig, names, controls)
    yaw, pitch = float(rng.uniform(-40, 40)), float(rng.uniform(-12, 12))
    V = model.shape(ident, w)
    cam = view_camera(model, yaw, pitch, size=size, fov_deg=float(rng.uniform(20, 45)), distance=600.0, vertices=V)
    img = render(model, V, cam, sh=random_light(rng, np.asarray(cam.rotation)),
                 vertex_rgb=generic_albedo(model, model.shape(ident), **random_look(rng))).image
    try:
        det = landmarks.detect_face(img)
        fit = fitting.fit_model(model, det, (size, size))
    except Exception:
        return None
    if det.dense is None or det.brows is None:
        return None
    return {"w": np.asarray(fit.expression, np.float32), "sd": np.asarray(fit.expression_sd, np.float32),
            "dense": np.asarray(det.dense_points, np.float32), "brows": np.asarray(det.brows, np.float32),
            "yaw": np.float32(fitting.rotation_angles(np.asarray(fit.camera.rotation))[0]),
            "truth": np.array([controls[c["key"]] for c in rig], np.float32)}


def generate(model: MorphableModel, n: int, out: str | Path, seed: int = 0, log=print) -> Path:
    rng = np.random.default_rng(seed)
    rig = emotions.au_rig(model)
    presets = emotions.preset_controls(model, rig)
    rows, missed, t0 = [], 0, time.perf_counter()
    while len(rows) < n:
        s = sample(model, rng, rig, presets)
        if s is None:
            missed += 1
            continue
        rows.append(s)
        if log is not None and len(rows) % 100 == 0:
            log(f"  {len(rows)}/{n} samples ({missed} renders not read), {time.perf_counter() - t0:.0f} s")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **{k: np.stack([r[k] for r in rows]) for k in rows[0]},
             controls=np.array([c["key"] for c in rig]), shapes=np.array(model.expression_names),
             missed=np.int64(missed), seed=np.int64(seed),
             correspondence=np.array(mesh_landmarks.mesh_landmarks(model).digest))
    return out
