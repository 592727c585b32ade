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

With the learned nets (``detail_model`` "deth", or "auto" when installed) every map above comes
from DetH + RCAN instead of the physical model: W_c = R(D̃(e_c)) − R(D̃(0)) and C_k = R(D̃(y_k)) −
R(D̃(0)) − Σ v_c^k W_c, R the RCAN passes, so a key frame still shows exactly DetH's map for it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import emotions, exr_io
from .details import build_details, photo_detail, resample, resolve_detail_model
from .errors import BadRequestError
from .face_data import FaceReconstruction
from .face_model import load_model
from .job_files import atomic_json
from .progress import Job

RIG_SIZE = 1024
BASE_SIZE = 4096
# A control whose wrinkle map never reaches this depth (mm) is left out of the mix: its
# wrinkles are below what a render shows (measured on the astronaut: one side of AU5 and of
# AU16 peak below it, depending on the seed).
MIN_PEAK_MM = 0.1
VERSION = 1  # bump when the maps' meaning changes, so old caches are not reused


def _digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def _values_key(values: dict[str, float]) -> dict[str, float]:
    """Control values as a cache key: 3 decimals, zeros dropped."""
    return {k: round(float(v), 3) for k, v in sorted(values.items()) if round(float(v), 3) != 0.0}


def _load(job_dir: str):
    jd = Path(job_dir)
    rec = FaceReconstruction.load(jd)
    model = load_model(rec.model_dir)
    return jd, rec, model, emotions.au_rig(model)


class _Source:
    """Wrinkles W(values) (no micro relief, no person detail) of one face at one size, from the
    physical model or from DetH + RCAN."""

    def __init__(self, which: str, jd: Path, rec, model, rig, size: int, years: float, seed: int, job: Job):
        self.which, self.jd, self.rec, self.model, self.rig = which, jd, rec, model, rig
        self.size, self.years, self.seed, self.job = size, years, seed, job
        self._person = self._nets = self._inp = self._zero = None
        if which == "deth":
            from .learned import serve

            self._nets = serve.get()
        self.name = self._nets.name if self._nets else "physical"

    def __call__(self, values: dict[str, float]) -> np.ndarray:
        if self._nets is None:
            from .wrinkles import wrinkle_map

            weights = emotions.weights_from_controls(self.rig, self.model.expression_names, values)
            if self._person is None:
                self._person = resample(photo_detail(self.jd, self.rec, self.model, self.job), self.size)
            return wrinkle_map(self.model, np.asarray(self.rec.fit.identity), weights, size=self.size,
                               age=self.years, person_detail=self._person, seed=self.seed,
                               micro=False).displacement
        from .learned import serve

        if self._inp is None:
            self._inp = serve.face_inputs(self.jd, self.rec, self.model, self.job)
            self._zero = self._map(np.zeros(len(self.rig), np.float32))
        return self._map(serve.values_vector(self.rig, values)) - self._zero

    def _map(self, y: np.ndarray) -> np.ndarray:
        return self._nets.to_size(self._nets.map_for(self._inp, y[None], self.years)[0], self.size)


def build_wrinkle_rig(job_dir: str, size: int = RIG_SIZE, age: float | None = None, seed: int = 0,
                      controls: list[str] | None = None, base_size: int = BASE_SIZE,
                      job: Job | None = None, detail_model: str = "auto") -> dict:
    """The base map and one wrinkle map per rig control (``controls``: a subset, default all),
    from ``detail_model`` ("auto", "physical", "deth").

    Returns the sidecar (also written as ``wrinkles_<tag>.json``): base map file, packs
    (``{"file", "controls"}``, channel i = controls[i]), per-control channel and peak depth,
    controls left out as too shallow. An identical request reuses the files."""
    job = job or Job()
    jd, rec, model, rig = _load(job_dir)
    which = resolve_detail_model(detail_model)
    known = [c["key"] for c in rig]
    if controls:
        unknown = sorted(set(controls) - set(known))
        if unknown:
            raise BadRequestError(f"unknown AU controls {', '.join(unknown)}; this face's rig has {', '.join(known)}")
        rig_sel = [c for c in rig if c["key"] in set(controls)]
    else:
        rig_sel = rig
    if size not in (256, 512, 1024, 2048, 4096):
        raise BadRequestError(f"size must be 256, 512, 1024, 2048 or 4096, got {size}")
    years = float(age) if age is not None else float((rec.age or {}).get("years", 35.0))
    source = _Source(which, jd, rec, model, rig, size, years, seed, job)
    parts = [VERSION, size, base_size, round(years, 1), int(seed), [c["key"] for c in rig_sel]]
    tag = _digest(*parts, *([source.name] if source.name != "physical" else []))
    side = jd / f"wrinkles_{tag}.json"
    if side.is_file():
        info = json.loads(side.read_text(encoding="utf-8"))
        files = [info["base"]["file"]] + [p["file"] for p in info["packs"]]
        if all((jd / f).is_file() for f in files):
            job.report(1.0, "Wrinkle maps already made for these settings")
            return {**info, "job_dir": str(jd.resolve())}

    base = build_details(str(jd), expression=[0.0] * model.n_expressions, age=years, sizes=(base_size,),
                         seed=seed, job=job.child(0.0, 0.3), detail_model=which)
    kept: list[tuple[str, np.ndarray, float]] = []
    skipped = []
    job.stage(0.3, 0.95)
    for i, c in enumerate(rig_sel):
        job.report(i / len(rig_sel), f"Wrinkles for {c['key']} ({c['name']}), {i + 1} of {len(rig_sel)}")
        m = source({c["key"]: 1.0})
        peak = float(np.abs(m).max())
        if peak < MIN_PEAK_MM:
            skipped.append(c["key"])
        else:
            kept.append((c["key"], m, peak))
    job.stage(0.95, 1.0).report(0.0, "Writing wrinkle maps")
    packs, per_control = [], {}
    for j in range(0, len(kept), 3):
        group = kept[j:j + 3]
        name = f"wrinkles_{tag}_pack{j // 3}.exr"
        exr_io.write_channels(jd / name, [m for _, m, _ in group])
        packs.append({"file": name, "controls": [k for k, _, _ in group]})
        for ch, (k, _, peak) in enumerate(group):
            per_control[k] = {"pack": j // 3, "channel": ch, "peak_mm": round(peak, 4)}
        job.check()
    info = {
        "tag": tag, "version": VERSION, "unit": "mm", "model": source.name, "detail_model": which, "size": size,
        "age_years": years, "seed": int(seed),
        "base": {"file": base["files"][str(base_size)], "tag": base["tag"], "size": base_size},
        "packs": packs, "controls": per_control, "skipped": skipped,
        "vertex_range": base["vertex_range"], "material": base["material"],
    }
    atomic_json(side, info)
    job.report(1.0, "Wrinkle maps done")
    return {**info, "job_dir": str(jd.resolve())}


def load_rig(job_dir: str | Path, tag: str) -> dict:
    side = Path(job_dir) / f"wrinkles_{tag}.json"
    if not side.is_file():
        raise BadRequestError(f"no wrinkle maps '{tag}' in {job_dir}",
                              "Prepare the wrinkle rig (per-AU maps) first, then make the key maps.")
    return json.loads(side.read_text(encoding="utf-8"))


def mix(job_dir: str | Path, info: dict, values: dict[str, float], packs: dict | None = None) -> np.ndarray:
    """Σ_c v_c W_c from the written (half-float) packs: exactly what Blender samples.
    ``packs``: a dict to keep the packs read, when mixing for several keys."""
    jd = Path(job_dir)
    packs = {} if packs is None else packs
    out = np.zeros((info["size"], info["size"]), np.float32)
    for p in info["packs"]:
        for ch, k in enumerate(p["controls"]):
            v = float(values.get(k, 0.0))
            if v:
                if p["file"] not in packs:
                    packs[p["file"]] = exr_io.read_channels(jd / p["file"])
                out += np.float32(v) * packs[p["file"]][ch]
    return out


def build_key_maps(job_dir: str, rig_tag: str, keys: list[dict], job: Job | None = None) -> dict:
    """Corrections C_k for keyed expressions ``keys`` (``{"frame": int, "values": {control: v}}``)
    against the wrinkle rig ``rig_tag``. Returns ``{"keys": [{"frame", "file", "values"}], ...}``;
    a key whose values were made before reuses its file."""
    job = job or Job()
    jd, rec, model, rig = _load(job_dir)
    info = load_rig(jd, rig_tag)
    source = _Source(info.get("detail_model", "physical"), jd, rec, model, rig, info["size"], info["age_years"],
                     info["seed"], job)
    if source.name != info["model"]:
        raise BadRequestError(f"the wrinkle rig '{rig_tag}' was made by {info['model']}, the backend now has "
                              f"{source.name}", "Prepare the wrinkle rig again (Update).")
    packs: dict = {}
    out = []
    for i, key in enumerate(keys):
        values = key.get("values")
        if not isinstance(values, dict):
            raise BadRequestError(f"key {i} has no 'values' object of AU control values")
        vk = _values_key(values)
        try:
            emotions.weights_from_controls(rig, model.expression_names, vk)  # names every unknown control
        except ValueError as exc:
            raise BadRequestError(f"key {i}: {exc}") from None
        name = f"wrinkles_{rig_tag}_key_{_digest(vk)}.exr"
        job.report(i / max(len(keys), 1), f"Exact wrinkles for key {i + 1} of {len(keys)}")
        if not (jd / name).is_file():
            exact = source(vk)
            exr_io.write_map(jd / name, exact - mix(jd, info, vk, packs))
        out.append({"frame": key.get("frame"), "file": name, "values": vk})
        job.check()
    job.report(1.0, "Key wrinkle maps done")
    return {"rig": rig_tag, "keys": out, "size": info["size"], "job_dir": str(jd.resolve())}


def build_animation(job_dir: str, size: int = RIG_SIZE, age: float | None = None, seed: int = 0,
                    controls: list[str] | None = None, keys: list[dict] = (), job: Job | None = None,
                    base_size: int = BASE_SIZE, detail_model: str = "auto") -> dict:
    """Everything an animated face needs in one job: the rig (base + per-control maps) and the
    corrections of its keyed expressions. ``{**rig sidecar, "keys": [...]}``."""
    job = job or Job()
    info = build_wrinkle_rig(job_dir, size, age, seed, controls, base_size,
                             job=job.child(0.0, 0.8 if keys else 1.0), detail_model=detail_model)
    made = build_key_maps(job_dir, info["tag"], list(keys), job.child(0.8, 1.0)) if keys else {"keys": []}
    return {**info, "keys": made["keys"]}
