"""ICT-FaceKit Light from its public release: the folder of OBJ files the release repository
holds (``FaceXModel/``: ``generic_neutral_mesh.obj``, ``identity000.obj`` … ``identity099.obj``,
one OBJ per expression shape named for it, ``vertex_indices.json``), read once and converted
into the arrays of the repacked archive (``ict_facekit_light.npz``, DATA_CARD.md of the model
folder), which is cached. Later loads read the cache; a changed release (any file's size or
modification time, a file added or removed) converts again.

The cache folder is the one converted Basel Face Models use (:func:`.cache.cache_dir`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

from protocol.models import ICT_RELEASE_NEUTRAL, VERTEX_INDICES

from ..core.errors import ModelNotFoundError
from .cache import cache_dir, stat_key

CONVERTER_VERSION = 1
_lock = threading.Lock()
IDENTITY_FILE = re.compile(r"^identity(\d{3})\.obj$")
# What the release's OBJs share: the neutral mesh's vertex count (every shape is a full mesh)
RELEASE_HINT = ("Download the ICT-FaceKit release again (github.com/ICT-VGL/ICT-FaceKit, its FaceXModel "
                "folder) and point the model folder at it.")


def _obj_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ModelNotFoundError(f"{path} could not be read ({exc}).", RELEASE_HINT) from exc


def _numbers(lines: list[str], path: Path, what: str, width: int) -> np.ndarray:
    try:
        a = np.array(" ".join(lines).split(), dtype=np.float64)
    except ValueError as exc:
        raise ModelNotFoundError(f"{path}: a '{what}' line is not numbers ({exc}).", RELEASE_HINT) from exc
    if a.size != width * len(lines):
        raise ModelNotFoundError(f"{path}: every '{what}' line must hold {width} numbers.", RELEASE_HINT)
    return a.reshape(-1, width)


def read_positions(path: Path) -> np.ndarray:
    """The vertex positions (``v`` lines) of an OBJ, (N, 3) float32, as written."""
    text = _obj_text(path)
    lines = [ln[2:] for ln in text.splitlines() if ln.startswith("v ")]
    if not lines:
        raise ModelNotFoundError(f"{path} holds no vertices: not an OBJ of the release, or cut off.", RELEASE_HINT)
    return _numbers(lines, path, "v", 3).astype(np.float32)


def read_mesh(path: Path) -> dict[str, np.ndarray]:
    """Positions, UVs and polygons (per corner: vertex and UV index, 0-based) of an OBJ."""
    text = _obj_text(path)
    v, vt, f = [], [], []
    for ln in text.splitlines():
        if ln.startswith("v "):
            v.append(ln[2:])
        elif ln.startswith("vt "):
            vt.append(ln[3:])
        elif ln.startswith("f "):
            f.append(ln[2:].split())
    if not v or not f:
        raise ModelNotFoundError(f"{path} holds no mesh (vertices and faces): not the release's neutral mesh.",
                                 RELEASE_HINT)
    counts = np.array([len(p) for p in f], np.int32)
    corners = [c.split("/") for p in f for c in p]
    try:
        cv = np.array([int(c[0]) for c in corners], np.int64) - 1
        cuv = np.array([int(c[1]) if len(c) > 1 and c[1] else 0 for c in corners], np.int64) - 1
    except ValueError as exc:
        raise ModelNotFoundError(f"{path}: a face line is not v/vt indices ({exc}).", RELEASE_HINT) from exc
    pos = _numbers(v, path, "v", 3)
    uv = _numbers(vt, path, "vt", 2) if vt else np.zeros((0, 2))
    if cv.min() < 0 or cv.max() >= len(pos) or cuv.min() < 0 or cuv.max() >= len(uv):
        raise ModelNotFoundError(f"{path}: a face refers to a vertex or UV the file does not have.", RELEASE_HINT)
    return {"neutral": pos.astype(np.float32), "uv": uv.astype(np.float32), "face_vertex_counts": counts,
            "face_corner_vertices": cv.astype(np.int32), "face_corner_uvs": cuv.astype(np.int32)}


def release_files(folder: Path) -> dict:
    """The release's files: neutral mesh, identities in order, expressions by name, vertex groups;
    a missing or unexpected one raises, naming it."""
    neutral = folder / ICT_RELEASE_NEUTRAL
    groups = folder / VERTEX_INDICES
    for p in (neutral, groups):
        if not p.is_file():
            raise ModelNotFoundError(f"The ICT-FaceKit release folder {folder} has no {p.name}.", RELEASE_HINT)
    ident: dict[int, Path] = {}
    expr: dict[str, Path] = {}
    for p in sorted(folder.glob("*.obj")):
        if p.name == neutral.name:
            continue
        m = IDENTITY_FILE.match(p.name)
        if m:
            ident[int(m.group(1))] = p
        else:
            expr[p.stem] = p
    if not ident:
        raise ModelNotFoundError(f"The ICT-FaceKit release folder {folder} has no identity000.obj … (the identity "
                                 "shapes).", RELEASE_HINT)
    gaps = sorted(set(range(max(ident) + 1)) - set(ident))
    if gaps:
        raise ModelNotFoundError(f"The ICT-FaceKit release folder {folder} lacks "
                                 f"{', '.join(f'identity{i:03d}.obj' for i in gaps[:5])}"
                                 f"{' …' if len(gaps) > 5 else ''}.", RELEASE_HINT)
    try:
        listed = json.loads(groups.read_text(encoding="utf-8")).get("expressions", [])
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelNotFoundError(f"{groups} is not the release's vertex_indices.json ({exc}).", RELEASE_HINT) from exc
    missing = [n for n in listed if n not in expr]
    if missing:
        raise ModelNotFoundError(f"The ICT-FaceKit release folder {folder} lacks the expression shape"
                                 f"{'s' if len(missing) > 1 else ''} {', '.join(f'{n}.obj' for n in missing[:5])}"
                                 f"{' …' if len(missing) > 5 else ''} (listed in {groups.name}).", RELEASE_HINT)
    return {"neutral": neutral, "groups": groups, "identities": [ident[i] for i in sorted(ident)],
            "expressions": {n: expr[n] for n in sorted(expr)}}


def cache_key(folder: Path) -> str:
    """Every file that goes into the model, by name, size and modification time."""
    parts = [f"v{CONVERTER_VERSION}", str(folder.resolve())]
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() == ".obj" or p.name == VERTEX_INDICES:
            parts.append(stat_key(p))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def convert(folder: Path, job=None) -> dict[str, np.ndarray]:
    """The release folder's OBJs as the repacked archive's arrays (DATA_CARD.md)."""
    files = release_files(folder)
    shapes = files["identities"] + list(files["expressions"].values())

    def report(i: int, msg: str) -> None:
        if job is not None:
            job.check()
            job.report(i / (len(shapes) + 1), msg)

    report(0, f"Reading the ICT-FaceKit release: {ICT_RELEASE_NEUTRAL}")
    arrays = read_mesh(files["neutral"])
    n = len(arrays["neutral"])
    stacks = []
    for i, p in enumerate(shapes):
        report(i + 1, f"Reading the ICT-FaceKit release: {p.name} ({i + 1} of {len(shapes)})")
        pos = read_positions(p)
        if pos.shape != (n, 3):
            raise ModelNotFoundError(f"{p} has {len(pos)} vertices, the neutral mesh {n}: not a shape of this "
                                     "release, or cut off.", RELEASE_HINT)
        stacks.append(pos)
    k = len(files["identities"])
    arrays.update(identity_names=np.array([p.stem for p in files["identities"]]),
                  identity_shapes=np.stack(stacks[:k]),
                  expression_names=np.array(list(files["expressions"])),
                  expression_shapes=np.stack(stacks[k:]) if len(stacks) > k else np.zeros((0, n, 3), np.float32),
                  vertex_indices_json=np.array(files["groups"].read_text(encoding="utf-8")))
    return arrays


def archive_for(folder: Path, job=None) -> Path:
    """The cached archive of a release folder, converted now if there is none for its files."""
    key = cache_key(folder)
    target = cache_dir() / f"ict-facekit-release-{key}.npz"
    with _lock:  # two jobs of one backend convert once
        if target.is_file():
            return target
        arrays = convert(folder, job)
        target.parent.mkdir(parents=True, exist_ok=True)
        # a name of its own: two processes sharing a cache folder never write one file together
        fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp.npz", dir=target.parent)
        os.close(fd)
        try:
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    for old in target.parent.glob("ict-facekit-release-*.npz"):  # earlier conversions of changed releases
        if old != target and _same_source(old, folder):
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
    (target.with_suffix(".json")).write_text(json.dumps({"source": str(folder.resolve()), "key": key}))
    return target


def _same_source(archive: Path, folder: Path) -> bool:
    side = archive.with_suffix(".json")
    try:
        return json.loads(side.read_text())["source"] == str(folder.resolve())
    except (OSError, ValueError, KeyError):
        return False
