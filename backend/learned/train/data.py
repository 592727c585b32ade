"""Training data for DetH: synthetic pairs from the physical wrinkle model, and a folder format
for real detail maps.

Synthetic samples (``Synth.samples``), all at 256² in the face UV tile (mm, row 0 = v=1):
- a random identity (the model's first ``N_IDENTITY`` modes ~ N(0, 0.8²)), age U(18, 80), seed;
- static lines S: the person's permanent creases, the wrinkles of a random habitual
  expression scaled by age (none at 18, ~35 % of full depth at 80), plus pores and micro relief;
- four expressions (rig control vectors, see ``random_controls``) chained into four source →
  target pairs x → y;
- D(I_x) = S + W(x; S), D(I_y) = S + W(y; S): the same person, so every synthetic pair is a
  paired sample (the paper's weak supervision comes free).

The face-identity embedding (dlib, 128-D) and the photo's age are DetH inputs for real photos.
Synthetic identities have no photos: rendering the textureless ICT head through dlib gives
embeddings off the distribution of real faces, so synthetic samples carry the embedding as
absent (zeros, ``has_faceid`` 0) and the true age; DetH sees identity through the shape
coefficients. A real-data folder with photos supplies both (``RealFolder``).

Real data folder (``RealFolder``, docs/deth.md): ``samples.jsonl``, one JSON object per line:
``{"map": "maps/a.exr", "aus": {"AU12L": 0.8, ...}, "person": "p01", "age": 41,
"faceid": [128 floats] | null, "identity": [coefficients] | null}``; maps are one-channel EXRs in
the project's convention (any square size; resampled to 256²). Lines with the same ``person``
form pairs (L1 supervision); unpaired lines train the adversarial, AU and cycle losses only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protocol.atomic import replacing

from ...core import exr_io
from ...core.imaging import resample
from ...detail import microrelief
from ...detail.creases.generator import crease_map
from ...detail.strain import face_mesh
from ...models import emotions
from ...models.loader import load_model
from ...models.morphable import MorphableModel

SIZE = 256
N_IDENTITY = 50
FACEID_DIM = 128
SHARD = 64  # samples per shard file


def random_controls(rig: list[dict], presets: dict[str, dict[str, float]], rng: np.random.Generator) -> np.ndarray:
    """A control vector (rig order): an EMFACS prototype at a random intensity (40 %), a sparse
    random combination of 1-3 AUs, both sides together 70 % of the time (45 %), or neutral (15 %)."""
    keys = [c["key"] for c in rig]
    v = np.zeros(len(keys), np.float32)
    u = rng.random()
    if u < 0.40:
        name = sorted(presets)[rng.integers(len(presets))]
        s = rng.uniform(0.3, 1.0)
        for k, val in presets[name].items():
            v[keys.index(k)] = val * s
    elif u < 0.85:
        aus = sorted({c["au"] for c in rig})
        for au in rng.choice(aus, size=rng.integers(1, 4), replace=False):
            cs = [i for i, c in enumerate(rig) if c["au"] == au]
            if len(cs) == 2 and rng.random() > 0.7:
                cs = [cs[rng.integers(2)]]  # one side only
            val = rng.uniform(0.2, 1.0)
            for i in cs:
                v[i] = val
    return v


@dataclass
class Synth:
    """What one synthetic generator process holds (the model and its rig)."""

    model: MorphableModel
    rig: list[dict]
    presets: dict[str, dict[str, float]]
    line_direction: np.ndarray  # fine-line field of the mean face: identity barely moves it, and it
    # costs ~3 s per identity

    @classmethod
    def load(cls, model_dir: str | None = None) -> "Synth":
        model = load_model(model_dir)
        rig = emotions.au_rig(model)
        return cls(model, rig, emotions.preset_controls(model, rig), microrelief.face_line_direction(model))

    def weights(self, controls: np.ndarray) -> np.ndarray:
        return emotions.weights_from_controls(self.rig, self.model.expression_names,
                                              {c["key"]: float(v) for c, v in zip(self.rig, controls)})

    def sample(self, seed: int, size: int = SIZE) -> dict:
        """One pair: identity ``seed`` moved between two expressions."""
        return self.samples(seed, size, 2)[0]

    def samples(self, seed: int, size: int = SIZE, n_expr: int = 4, micro: bool = True) -> list[dict]:
        """Pairs of identity ``seed`` under ``n_expr`` random expressions, chained e0→e1→…→e0
        (each map in two pairs; one pair for 2 expressions). The person's static detail and
        micro relief are made once, so more pairs per identity cost less each. ``micro=False``:
        without pores and fine lines (the same identities, expressions and creases otherwise)."""
        rng = np.random.default_rng(seed)
        m = self.model
        ident = np.zeros(m.n_identity)
        k = min(N_IDENTITY, m.n_identity)
        ident[:k] = rng.standard_normal(k) * 0.8
        age = float(rng.uniform(18.0, 80.0))
        mseed = int(rng.integers(1 << 31))
        habit = random_controls(self.rig, self.presets, rng)
        exprs = [random_controls(self.rig, self.presets, rng) for _ in range(n_expr)]

        def w(ctrl, person=None):
            return crease_map(m, ident, self.weights(ctrl), size=size, age=age, person_detail=person,
                              seed=mseed, micro=False)

        ageing = 0.35 * np.clip((age - 18.0) / 62.0, 0.0, 1.0)
        first = w(habit)
        mesh = face_mesh(m, ident)
        static = ageing * first.displacement
        if micro:
            static = static + microrelief.micro_relief(mesh, size, mask=first.mask, seed=mseed, age=age,
                                                       density=microrelief.face_pore_density(m),
                                                       direction=self.line_direction)
        static = static.astype(np.float32)
        maps = [(static + w(e, static).displacement).astype(np.float16) for e in exprs]
        chain = [(i, (i + 1) % n_expr) for i in range(n_expr if n_expr > 2 else 1)]
        return [{"dx": maps[a], "dy": maps[b], "x": exprs[a], "y": exprs[b], "age": np.float32(age),
                 "identity": ident[:k].astype(np.float32), "seed": np.int64(seed), "mask": first.mask}
                for a, b in chain]


def write_shard(path: Path, samples: list[dict], micro: bool = True) -> None:
    arrays = {k: np.stack([s[k] for s in samples]) for k in ("dx", "dy", "x", "y", "age", "identity", "seed")}
    arrays["mask"] = samples[0]["mask"]  # one topology: the same UV coverage for every sample
    arrays["micro"] = np.bool_(micro)  # whether the maps hold pores and fine lines
    with replacing(path, ".tmp.npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def generate(out_dir: str | os.PathLike, n: int, start: int = 0, model_dir: str | None = None,
             size: int = SIZE, n_expr: int = 4, log=print, micro: bool = True) -> list[Path]:
    """Shards ``synth_<first seed>.npz`` for identities (seeds) start..start+n-1, SHARD pairs
    each (``Synth.samples``: ``n_expr`` expressions per identity); existing shards are kept (so
    generation resumes and several processes can split the seed range)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    syn = Synth.load(model_dir)
    made = []
    per = max(SHARD // max(n_expr if n_expr > 2 else 1, 1), 1)
    for s0 in range(start, start + n, per):
        path = out / f"synth_{s0:07d}.npz"
        if not path.is_file():
            samples = [p for s in range(s0, min(s0 + per, start + n)) for p in syn.samples(s, size, n_expr, micro)]
            write_shard(path, samples, micro)
            log(f"wrote {path.name} ({len(samples)} samples)")
        made.append(path)
    return made


def load_shards(paths) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {}
    mask = None
    micro = set()
    for p in sorted(paths):
        with np.load(p) as z:
            for k in ("dx", "dy", "x", "y", "age", "identity", "seed"):
                parts.setdefault(k, []).append(z[k])
            mask = z["mask"]
            micro.add(bool(z["micro"]) if "micro" in z.files else True)  # shards before the flag had them
    if len(micro) > 1:
        raise ValueError("these shards mix maps with and without micro relief; keep them in separate folders")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["mask"] = mask
    out["micro"] = micro.pop() if micro else True
    return out


class RealFolder:
    """Real detail maps with AU labels (format in the module docstring)."""

    def __init__(self, folder: str | os.PathLike, rig_keys: list[str]):
        self.root = Path(folder)
        index = self.root / "samples.jsonl"
        if not index.is_file():
            raise FileNotFoundError(f"{index} is missing: a real-data folder needs samples.jsonl (docs/deth.md)")
        self.items = []
        for i, line in enumerate(index.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            rec = json.loads(line)
            for field in ("map", "aus", "person"):
                if field not in rec:
                    raise ValueError(f"samples.jsonl line {i + 1}: no '{field}'")
            unknown = sorted(set(rec["aus"]) - set(rig_keys))
            if unknown:
                raise ValueError(f"samples.jsonl line {i + 1}: unknown AU controls {', '.join(unknown)}")
            m = resample(exr_io.read_map(self.root / rec["map"]), SIZE)
            au = np.array([float(rec["aus"].get(k, 0.0)) for k in rig_keys], np.float32)
            fid = rec.get("faceid")
            self.items.append({"map": m, "aus": au, "person": str(rec["person"]),
                               "age": float(rec.get("age") or 35.0),
                               "faceid": np.asarray(fid, np.float32) if fid else None,
                               "identity": np.asarray(rec.get("identity") or [], np.float32)})

    def pairs(self) -> list[tuple[int, int]]:
        by: dict[str, list[int]] = {}
        for i, it in enumerate(self.items):
            by.setdefault(it["person"], []).append(i)
        return [(a, b) for idx in by.values() for a in idx for b in idx if a != b]
