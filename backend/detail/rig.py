"""Wrinkles that follow an animation: per-AU wrinkle maps mixed by the AU values, and exact
maps at the keyframed expressions.

What Blender shows at any moment (docs/detail_maps.md, "Animated wrinkles"):

    D(t) = B + Σ_c v_c(t) W_c + Σ_k β_k(t) C_k

B       the base map: the person's detail D(I_x) and micro relief at the neutral expression
        (``build_details`` with a zero expression), 4096².
W_c     the wrinkles (no micro relief) of rig control c alone at intensity 1 (``AU12L``…),
        packed three to an RGB EXR.
v_c(t)  the control values: the AU sliders and their animation.
C_k     a key's correction, W(y_k) − Σ_c v_c^k W_c: the exact wrinkle map of the keyed
        expression y_k minus what the linear mix gives for it.
β_k(t)  key weights, 1 at key k's frame and cross-fading to the neighbouring keys (they sum to
        1 wherever keys exist, 0 without keys).

So at a key frame the map is B + W(y_k) (to half-float precision): the buckling model's
non-linearity (onset, AUs that compress the same skin) is exact where the animator set the
expression. Between keys it is the cross-fade of the two exact maps (the mix part is linear in
v and follows it). A slider moved live changes the mix at once, with no backend running.
W_c and C_k share one size, so Blender's linear sampling of their sum is the sum of samples.

Every map comes from the chosen detail model (``registry``): with the learned nets W_c =
R(D̃(e_c)) − R(D̃(0)) and C_k = R(D̃(y_k)) − R(D̃(0)) − Σ v_c^k W_c, R the RCAN passes, so a key
frame still shows exactly DetH's map for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protocol.details import (
    AUTO_MODEL,
    RIG_SIZES,
    ControlMap,
    RigBase,
    WrinkleKey,
    WrinklePack,
    WrinkleRig,
    digest,
    values_key,
    wrinkle_key,
    wrinkle_pack,
    wrinkle_sidecar,
)

from ..core import exr_io
from ..core.errors import BadRequestError
from ..core.progress import Job
from ..models import emotions
from . import registry
from .face import ReconstructedFace
from .maps import build_details, complete

RIG_SIZE = 1024
BASE_SIZE = 4096
# A control whose wrinkle map never reaches this depth (mm) is left out of the mix: it holds no
# crease (the wrinkle statistics count creases from 0.05 mm). Creases are thresholded (onset), so
# one side of a central line can stay shallow where both sides together make it: at 33, AU4L
# alone gives a 0.07 mm glabellar line, both sides 0.14 mm; 0.1 mm (chosen for the earlier grating
# generator) left AU4L/R out of the mix and a frown without its lines between keys.
MIN_PEAK_MM = 0.04
VERSION = 2  # bump when the maps' meaning changes, so old caches are not reused (2: crease maps)


def build_wrinkle_rig(job_dir: str, size: int = RIG_SIZE, age: float | None = None, seed: int = 0,
                      controls: list[str] | None = None, base_size: int = BASE_SIZE,
                      job: Job | None = None, detail_model: str = AUTO_MODEL) -> WrinkleRig:
    """The base map and one wrinkle map per rig control (``controls``: a subset, default all),
    from ``detail_model`` (a registry name or AUTO_MODEL).

    Returns the side file (also written as ``wrinkles_<tag>.json``): base map file, packs
    (channel i = controls[i]), per-control channel and peak depth, controls left out as too
    shallow. An identical request reuses the files."""
    job = job or Job()
    face = ReconstructedFace.open(job_dir)
    which = registry.resolve(detail_model)
    rig = face.rig
    known = [c["key"] for c in rig]
    if controls:
        unknown = sorted(set(controls) - set(known))
        if unknown:
            raise BadRequestError(f"unknown AU controls {', '.join(unknown)}; this face's rig has {', '.join(known)}")
        rig_sel = [c for c in rig if c["key"] in set(controls)]
    else:
        rig_sel = rig
    if size not in RIG_SIZES:
        raise BadRequestError(f"size must be 256, 512, 1024, 2048 or 4096, got {size}")
    years = face.years(age)
    maker = which.open(face, years, seed, job)
    parts = [VERSION, size, base_size, round(years, 1), int(seed), [c["key"] for c in rig_sel], face.rec.source_key()]
    tag = digest(*parts, *([maker.tag_variant] if maker.tag_variant else []))
    jd = face.folder
    if (jd / wrinkle_sidecar(tag)).is_file():
        info = WrinkleRig.load(jd, tag)
        if complete(jd, info.files()):
            job.report(1.0, "Wrinkle maps already made for these settings")
            info.job_dir = str(jd.resolve())
            return info

    base = build_details(str(jd), expression=[0.0] * face.model.n_expressions, age=years, sizes=(base_size,),
                         seed=seed, job=job.child(0.0, 0.3), detail_model=which.name)
    kept: list[tuple[str, np.ndarray, float]] = []
    skipped = []
    job.stage(0.3, 0.95)
    for i, c in enumerate(rig_sel):
        job.report(i / len(rig_sel), f"Wrinkles for {c['key']} ({c['name']}), {i + 1} of {len(rig_sel)}")
        m = maker.wrinkles({c["key"]: 1.0}, size)
        peak = float(np.abs(m).max())
        if peak < MIN_PEAK_MM:
            skipped.append(c["key"])
        else:
            kept.append((c["key"], m, peak))
    job.stage(0.95, 1.0).report(0.0, "Writing wrinkle maps")
    packs, per_control = [], {}
    for j in range(0, len(kept), 3):
        group = kept[j:j + 3]
        name = wrinkle_pack(tag, j // 3)
        exr_io.write_channels(jd / name, [m for _, m, _ in group])
        packs.append(WrinklePack(name, [k for k, _, _ in group]))
        for ch, (k, _, peak) in enumerate(group):
            per_control[k] = ControlMap(j // 3, ch, round(peak, 4))
        job.check()
    info = WrinkleRig(
        tag=tag, version=VERSION, model=maker.made_by, detail_model=which.name, size=size, age_years=years,
        seed=int(seed), base=RigBase(base.files[str(base_size)], base.tag, base_size), packs=packs,
        controls=per_control, skipped=skipped, vertex_range=base.vertex_range, material=base.material)
    info.save(jd)
    job.report(1.0, "Wrinkle maps done")
    info.job_dir = str(jd.resolve())
    return info


def load_rig(job_dir: str | Path, tag: str) -> WrinkleRig:
    if not (Path(job_dir) / wrinkle_sidecar(tag)).is_file():
        raise BadRequestError(f"no wrinkle maps '{tag}' in {job_dir}",
                              "Prepare the wrinkle rig (per-AU maps) first, then make the key maps.")
    return WrinkleRig.load(job_dir, tag)


def mix(job_dir: str | Path, info: WrinkleRig, values: dict[str, float], packs: dict | None = None) -> np.ndarray:
    """Σ_c v_c W_c from the written (half-float) packs: exactly what Blender samples.
    ``packs``: a dict to keep the packs read, when mixing for several keys."""
    jd = Path(job_dir)
    packs = {} if packs is None else packs
    out = np.zeros((info.size, info.size), np.float32)
    for p in info.packs:
        for ch, k in enumerate(p.controls):
            v = float(values.get(k, 0.0))
            if v:
                if p.file not in packs:
                    packs[p.file] = exr_io.read_channels(jd / p.file)
                out += np.float32(v) * packs[p.file][ch]
    return out


def build_key_maps(job_dir: str, rig_tag: str, keys: list[dict], job: Job | None = None) -> list[WrinkleKey]:
    """Corrections C_k for keyed expressions ``keys`` (``{"frame": int, "values": {control: v}}``)
    against the wrinkle rig ``rig_tag``; a key whose values were made before reuses its file."""
    job = job or Job()
    face = ReconstructedFace.open(job_dir)
    jd = face.folder
    info = load_rig(jd, rig_tag)
    maker = registry.get(info.detail_model).open(face, info.age_years, info.seed, job)
    if maker.made_by != info.model:
        raise BadRequestError(f"the wrinkle rig '{rig_tag}' was made by {info.model}, the backend now has "
                              f"{maker.made_by}", "Prepare the wrinkle rig again (Update).")
    packs: dict = {}
    out = []
    for i, key in enumerate(keys):
        values = key.get("values")
        if not isinstance(values, dict):
            raise BadRequestError(f"key {i} has no 'values' object of AU control values")
        vk = values_key(values)
        try:
            emotions.weights_from_controls(face.rig, face.model.expression_names, vk)  # names every unknown control
        except ValueError as exc:
            raise BadRequestError(f"key {i}: {exc}") from None
        name = wrinkle_key(rig_tag, vk)
        job.report(i / max(len(keys), 1), f"Exact wrinkles for key {i + 1} of {len(keys)}")
        if not (jd / name).is_file():
            exact = maker.wrinkles(vk, info.size)
            exr_io.write_map(jd / name, exact - mix(jd, info, vk, packs))
        out.append(WrinkleKey(key.get("frame"), name, vk))
        job.check()
    job.report(1.0, "Key wrinkle maps done")
    return out


def build_animation(job_dir: str, size: int = RIG_SIZE, age: float | None = None, seed: int = 0,
                    controls: list[str] | None = None, keys: list[dict] = (), job: Job | None = None,
                    base_size: int = BASE_SIZE, detail_model: str = AUTO_MODEL) -> WrinkleRig:
    """Everything an animated face needs in one job: the rig (base + per-control maps) and the
    corrections of its keyed expressions (``keys`` of the answer)."""
    job = job or Job()
    info = build_wrinkle_rig(job_dir, size, age, seed, controls, base_size,
                             job=job.child(0.0, 0.8 if keys else 1.0), detail_model=detail_model)
    info.keys = build_key_maps(job_dir, info.tag, list(keys), job.child(0.8, 1.0)) if keys else []
    return info
