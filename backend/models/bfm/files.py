"""Readers for the Basel Face Model files users bring: BFM 2009 (.mat), BFM 2017 (.h5), and the
FaceWarehouse expression basis (``Exp_Pca.bin``) often used with BFM 2009.

They return :class:`BfmData`: the file's own topology and vertex order, in the project unit
(millimetres), triangles 0-based and wound so that normals point out of the face. What the
files hold (checked against the releases' readers, see docs/bfm.md):

- BFM 2009 ``01_MorphableModel.mat`` (MATLAB v5, or v7.3 = HDF5 after a 512-byte header):
  ``shapeMU`` (3N,1) µm, ``shapePC`` (3N,K) orthonormal, ``shapeEV`` (K,1) standard deviations
  (µm), ``tl`` (T,3) 1-based, ``texMU``/``texPC``/``texEV`` the colour model in 0..255.
- BFM 2017 statismo ``.h5``: ``shape|color|expression/model/{mean,pcaBasis,pcaVariance}``
  with ``mean`` (3N,), ``pcaBasis`` (3N,K) with orthonormal columns, ``pcaVariance`` (K,)
  variances; ``shape/representer/points`` (3,N) and ``cells`` (3,T) 0-based; millimetres.
  ``pcaBasis`` is orthonormal in the released (statismo 0.9) files. The expression model holds
  offsets from each scan's neutral face; scalismo's mean face adds its ``mean`` (the average
  expression offset) to the shape mean. Our neutral is the shape mean alone, because the FACS
  shapes are offsets from a neutral face; the expression mean's size is reported in the notes.
- ``Exp_Pca.bin`` (Deep3DFaceRecon's BFM folder): see :func:`read_exp_pca`.

Anything else gets a :class:`ModelNotFoundError` that names what it found and what is missing.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
from scipy.io import loadmat, whosmat

from ...core.errors import ModelNotFoundError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAT_V73_OFFSET = 512  # a MATLAB v7.3 file is HDF5 behind a 512-byte text header
FACE_WIDTH_MM = (60.0, 400.0)  # a face model's x extent in mm must fall in here (unit check)
FETCH_HINT = ("Download the model again from the University of Basel (faces.dmi.unibas.ch) "
              "and point the add-on at the file as released.")


@dataclass
class BfmData:
    """One Basel Face Model in the file's topology and vertex order, millimetres."""

    version: str  # "bfm2009" | "bfm2017"
    path: str
    mean: np.ndarray  # (N, 3) float32
    identity: np.ndarray  # (K, N, 3) float32, mm per standard deviation
    triangles: np.ndarray  # (T, 3) int32, 0-based, normals out of the face
    color_mean: Optional[np.ndarray] = None  # (N, 3) float32 in 0..1
    expression: Optional[np.ndarray] = None  # (E, N, 3) float32, mm per standard deviation
    expression_mean: Optional[np.ndarray] = None  # (N, 3): the 2017 model's mean offset (not applied)
    notes: list[str] = field(default_factory=list)

    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])


def _bad(path: Path, what: str, hint: str = FETCH_HINT) -> ModelNotFoundError:
    return ModelNotFoundError(f"{path}: {what}", hint)


def sniff(path: Path) -> str:
    """What kind of file this is, from its first bytes: 'mat5', 'mat73', 'hdf5', 'pickle',
    'zip' or 'unknown'."""
    with open(path, "rb") as f:
        head = f.read(MAT_V73_OFFSET + len(HDF5_SIGNATURE))
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head.startswith(b"MATLAB"):
        if head[MAT_V73_OFFSET:].startswith(HDF5_SIGNATURE):
            return "mat73"
        return "mat5"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if head.startswith(b"PK"):
        return "zip"
    return "unknown"


FLAME_KEYS = {"v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"}


def _pickle_strings(path: Path, limit: int = 1 << 20) -> set[str]:
    """The short strings a pickle holds (its dict keys, class names), read from its opcodes
    without unpickling it: unpickling runs code a file can carry, and FLAME's needs chumpy."""
    out: set[str] = set()
    with open(path, "rb") as f:
        raw = f.read(limit)
    try:
        for op, arg, _ in pickletools.genops(raw):
            if isinstance(arg, str) and len(arg) < 64:
                out.add(arg)
    except Exception:  # noqa: BLE001 - a pickle cut at ``limit``, or not one: what was read will do
        pass
    return out


def _foreign_message(path: Path, kind: str) -> ModelNotFoundError:
    """A clear message for files that are face models, just not a BFM."""
    if kind == "pickle":
        names = _pickle_strings(path)
        flame = "v_template" in names or "chumpy" in " ".join(names)
        keys = ", ".join(sorted(n for n in names if n in FLAME_KEYS))
        return _bad(path, ("is a Python pickle" + (f" with a FLAME layout ({keys})" if flame else "")
                           + "; FLAME and other pickled models are not supported."),
                    "Use a Basel Face Model file: 01_MorphableModel.mat (BFM 2009) or "
                    "model2017-1_bfm_nomouth.h5 / model2017-1_face12_nomouth.h5 (BFM 2017), or the "
                    "default model.")
    if kind == "zip":
        names = []
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()[:6]
        except zipfile.BadZipFile:
            pass
        return _bad(path, f"is a zip/npz archive ({', '.join(names)}), not a Basel Face Model file.",
                    "For the default model choose its folder (it holds ict_facekit_light.npz); for the "
                    "BFM choose 01_MorphableModel.mat or a model2017-1_*.h5 file.")
    return _bad(path, "is neither a MATLAB .mat nor an HDF5 .h5 file, so it is not a Basel Face Model file.",
                "Choose 01_MorphableModel.mat (BFM 2009) or model2017-1_bfm_nomouth.h5 (BFM 2017).")


def read_bfm(path: str | os.PathLike) -> BfmData:
    """Read a BFM 2009 .mat or BFM 2017 .h5 file (sniffed from its bytes, not its name)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"BFM file not found: {path}",
                                 "Set the BFM file in the add-on preferences to the .mat or .h5 you downloaded.")
    if path.stat().st_size < 1024:
        raise _bad(path, f"is only {path.stat().st_size} bytes: truncated or not a model file.")
    kind = sniff(path)
    if kind == "mat5":
        data = read_bfm2009(path, _load_mat5(path))
    elif kind == "mat73":
        data = read_bfm2009(path, _load_mat73(path))
    elif kind == "hdf5":
        data = read_bfm2017(path)
    else:
        raise _foreign_message(path, kind)
    _check_geometry(path, data)
    return data


# ---- BFM 2009 ------------------------------------------------------------------------------
BFM2009_KEYS = ("shapeMU", "shapePC", "shapeEV", "tl")


def _load_mat5(path: Path) -> dict:
    try:
        m = loadmat(str(path), variable_names=BFM2009_KEYS + ("texMU",))
        if any(k not in m for k in BFM2009_KEYS):  # name what the file does hold
            m["__names__"] = [w[0] for w in whosmat(str(path))]
        return m
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError on damaged files
        raise _bad(path, f"could not be read as a MATLAB file ({type(exc).__name__}: {exc}); "
                         "it is truncated or damaged.") from exc


def _mat73_arrays(f) -> dict:
    """The BFM 2009 variables of an open MATLAB v7.3 (HDF5) file, and the names it has."""
    # v7.3 stores column-major arrays: h5py sees them transposed.
    m = {k: np.asarray(f[k]).T for k in BFM2009_KEYS + ("texMU",) if k in f}
    m["__names__"] = sorted(f.keys())
    return m


def _load_mat73(path: Path) -> dict:
    try:
        with h5py.File(path, "r") as f:
            return _mat73_arrays(f)
    except OSError as exc:
        raise _bad(path, f"could not be read as a MATLAB v7.3 file ({exc}); it is truncated or damaged.") from exc


def read_bfm2009(path: Path, m: dict) -> BfmData:
    missing = [k for k in BFM2009_KEYS if k not in m]
    if missing:
        have = sorted(m.get("__names__") or (k for k in m if not k.startswith("__")))
        raise _bad(path, f"is a MATLAB file but lacks {', '.join(missing)} (it has {', '.join(have) or 'nothing'}), "
                         "so it is not the BFM 2009 01_MorphableModel.mat.",
                   "Choose 01_MorphableModel.mat from the BFM 2009 release (PublicMM1/).")
    mu = np.asarray(m["shapeMU"], np.float64).reshape(-1)
    pc = np.asarray(m["shapePC"], np.float32)
    ev = np.asarray(m["shapeEV"], np.float64).reshape(-1)
    tl = np.asarray(m["tl"], np.int64)
    n3 = mu.size
    if n3 % 3 or pc.shape[0] != n3 or pc.shape[1] != ev.size or tl.ndim != 2 or tl.shape[1] != 3:
        raise _bad(path, f"has inconsistent BFM 2009 arrays: shapeMU {mu.shape}, shapePC {pc.shape}, "
                         f"shapeEV {ev.shape}, tl {tl.shape}.")
    n = n3 // 3
    if tl.min() < 1 or tl.max() > n:
        raise _bad(path, f"tl indexes vertices {tl.min()}..{tl.max()}, expected 1..{n} (1-based).")
    um = 1e-3  # micrometres -> millimetres
    identity = (pc * (ev.astype(np.float32) * np.float32(um))[None, :]).T.reshape(-1, n, 3)
    color = None
    if "texMU" in m and np.asarray(m["texMU"]).size == n3:
        color = (np.asarray(m["texMU"], np.float32).reshape(n, 3) / 255.0).clip(0, 1)
    return BfmData("bfm2009", str(path), (mu * um).reshape(n, 3).astype(np.float32),
                   np.ascontiguousarray(identity, np.float32), (tl - 1).astype(np.int32), color)


# ---- BFM 2017 ------------------------------------------------------------------------------
def _h5(f, key: str, path: Path) -> np.ndarray:
    if key not in f:
        groups = sorted(f.keys())
        kind = ("a scalismo/BFM 2019-style file" if "catalog" in f else "an HDF5 file")
        raise _bad(path, f"is {kind} without '{key}' (top-level groups: {', '.join(groups)}), so it is not "
                         "a BFM 2017 statismo model in the layout this version reads.",
                   "Choose model2017-1_bfm_nomouth.h5 or model2017-1_face12_nomouth.h5 from the BFM 2017 "
                   "release (BFM 2019 files as released share that layout and load; files re-saved in "
                   "another layout do not).")
    try:
        return np.asarray(f[key])
    except OSError as exc:
        raise _bad(path, f"'{key}' could not be read ({exc}); the file is truncated or damaged.") from exc


def _pca(f, group: str, path: Path, n3: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (n3,), basis (n3,K) scaled to one standard deviation per column)."""
    mean = _h5(f, f"{group}/model/mean", path).astype(np.float64).reshape(-1)
    basis = _h5(f, f"{group}/model/pcaBasis", path).astype(np.float32)
    var = _h5(f, f"{group}/model/pcaVariance", path).astype(np.float64).reshape(-1)
    if mean.size != n3 or basis.shape != (n3, var.size):
        raise _bad(path, f"{group}/model arrays disagree: mean {mean.shape}, pcaBasis {basis.shape}, "
                         f"pcaVariance {var.shape} for {n3 // 3} points.")
    return mean, basis * np.sqrt(np.maximum(var, 0)).astype(np.float32)[None, :]


# Vertex counts of the released statismo files (2019 shares 2017's layout; told apart by size).
STATISMO_VERSIONS = {53149: "bfm2017", 28588: "bfm2017", 47439: "bfm2019", 27657: "bfm2019", 58203: "bfm2019"}


def read_bfm2017(path: Path) -> BfmData:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise _bad(path, f"could not be opened as HDF5 ({exc}); it is truncated or damaged.") from exc
    with f:
        if "shape" not in f and ("shapeMU" in f or "shapePC" in f):
            return read_bfm2009(path, _mat73_arrays(f))
        pts = _h5(f, "shape/representer/points", path).astype(np.float64)
        cells = _h5(f, "shape/representer/cells", path).astype(np.int64)
        if pts.ndim != 2 or 3 not in pts.shape or cells.ndim != 2 or 3 not in cells.shape:
            raise _bad(path, f"shape/representer has points {pts.shape} and cells {cells.shape}; expected (3, N) "
                             "and (3, T).")
        pts = pts.T if pts.shape[0] == 3 else pts
        cells = cells.T if cells.shape[0] == 3 else cells
        n = pts.shape[0]
        mean, basis = _pca(f, "shape", path, 3 * n)
        if cells.min() < 0 or cells.max() >= n:
            raise _bad(path, f"shape/representer/cells index {cells.min()}..{cells.max()}, expected 0..{n - 1}.")
        data = BfmData(STATISMO_VERSIONS.get(n, "bfm2017"), str(path), mean.reshape(n, 3).astype(np.float32),
                       np.ascontiguousarray(basis.T.reshape(-1, n, 3)), cells.astype(np.int32))
        if "color" in f:
            cmean = _h5(f, "color/model/mean", path).astype(np.float32).reshape(-1)
            if cmean.size == 3 * n:
                data.color_mean = cmean.reshape(n, 3).clip(0, 1)
        if "expression" in f:
            emean, ebasis = _pca(f, "expression", path, 3 * n)
            data.expression = np.ascontiguousarray(ebasis.T.reshape(-1, n, 3))
            data.expression_mean = emean.reshape(n, 3).astype(np.float32)
            data.notes.append(f"expression mean offset RMS {float(np.sqrt((emean ** 2).mean() * 3)):.3f} mm "
                              "(not added to the neutral face)")
        return data


# ---- FaceWarehouse expression basis --------------------------------------------------------
def read_exp_pca(path: str | os.PathLike, n_vertices: int) -> np.ndarray:
    """The FaceWarehouse expression basis as Deep3DFaceRecon ships it for BFM 2009 -> (E, N, 3) mm
    per standard deviation, on the model's ``n_vertices``.

    ``Exp_Pca.bin``: int32 E (79), float32 mean (3M), float32 basis (E × 3M, one component after
    the other, x y z per vertex), µm, on M = 53215 vertices (BFM 2009 without the inner mouth);
    beside it ``std_exp.txt`` (E standard deviations) and ``BFM_exp_idx.mat`` (``trimIndex``:
    the M vertices' 1-based indices into the full model), needed when M differs from N.
    """
    path = Path(path).expanduser()
    raw = path.read_bytes()
    if len(raw) < 8:
        raise _bad(path, "is empty or truncated.", "Copy Exp_Pca.bin again (about 50 MB).")
    e = int(np.frombuffer(raw[:4], np.int32)[0])
    floats = np.frombuffer(raw[4:4 + (len(raw) - 4) // 4 * 4], np.float32)
    if not 0 < e < 1000 or floats.size % (e + 1) or (floats.size // (e + 1)) % 3:
        raise _bad(path, f"does not have the Exp_Pca.bin layout (count {e}, {floats.size} floats): "
                         "truncated, or another file.", "Copy Exp_Pca.bin again from Deep3DFaceRecon's BFM folder.")
    m3 = floats.size // (e + 1)
    basis = floats[m3:].reshape(e, m3 // 3, 3).astype(np.float32) * np.float32(1e-3)
    std_file = path.with_name("std_exp.txt")
    if not std_file.is_file():
        raise _bad(path, f"needs its standard deviations in {std_file.name} beside it.",
                   "Copy std_exp.txt from the same BFM folder as Exp_Pca.bin.")
    std = np.loadtxt(std_file, dtype=np.float64).reshape(-1)
    if std.size != e:
        raise _bad(std_file, f"has {std.size} values, Exp_Pca.bin has {e} components.",
                   "Use the std_exp.txt that came with this Exp_Pca.bin.")
    basis *= std.astype(np.float32)[:, None, None]
    m = m3 // 3
    if m == n_vertices:
        return basis
    idx_file = path.with_name("BFM_exp_idx.mat")
    if not idx_file.is_file():
        raise _bad(path, f"is defined on {m} vertices, the model has {n_vertices}; the vertex list "
                         f"{idx_file.name} is not beside it.",
                   "Copy BFM_exp_idx.mat (trimIndex) from the same BFM folder as Exp_Pca.bin.")
    idx = np.asarray(loadmat(str(idx_file)).get("trimIndex", np.zeros(0)), np.int64).reshape(-1) - 1
    if idx.size != m or idx.min() < 0 or idx.max() >= n_vertices:
        raise _bad(idx_file, f"trimIndex lists {idx.size} vertices in 1..{idx.max() + 1 if idx.size else 0}; "
                             f"{m} in 1..{n_vertices} expected.", "Use the BFM_exp_idx.mat that came with Exp_Pca.bin.")
    full = np.zeros((e, n_vertices, 3), np.float32)  # inner-mouth vertices do not move
    full[:, idx] = basis
    return full


# ---- shared checks ---------------------------------------------------------------------------
def _check_geometry(path: Path, data: BfmData) -> None:
    """Unit and winding: the mean face must be face-sized in mm; triangles are turned so that
    their normals point away from the mesh's centre (BFM 2009's ``tl`` is wound inwards)."""
    v = data.mean.astype(np.float64)
    width = float(np.ptp(v[:, 0]))
    if not FACE_WIDTH_MM[0] <= width <= FACE_WIDTH_MM[1]:
        raise _bad(path, f"gives a mean face {width:.4g} mm wide after unit conversion "
                         f"({data.version}: {'micrometres' if data.version == 'bfm2009' else 'millimetres'} "
                         "expected); the file's unit or content is not the BFM's.")
    tri = data.triangles
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    n = np.cross(b - a, c - a)
    outward = float(np.sum(n * ((a + b + c) / 3.0 - v.mean(0))))
    if outward < 0:
        data.triangles = np.ascontiguousarray(tri[:, [0, 2, 1]])
        data.notes.append("triangles re-wound so that normals point out of the face")
