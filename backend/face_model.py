"""The project's morphable-model representation and the ICT-FaceKit Light loader.

Project unit: **millimetres** for every model (ICT-FaceKit stores centimetres, the BFM
micrometres or millimetres); loaders convert on the way in. Axes follow the model's own
frame: +x the face's left, +y up, +z out of the face (towards a frontal camera).

A model is a neutral mesh plus linear identity and expression bases:
``V(alpha, w) = neutral + sum_k alpha_k * identity[k] + sum_j w_j * expression[j]``
with identity coefficients ~ N(0, 1) and expression weights in [0, 1].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ModelNotFoundError

ICT_ARCHIVE = "ict_facekit_light.npz"

# Vertex and polygon ranges of the ICT-FaceKit release (its README, "Face Model Topology"),
# end-exclusive. These are facts of the release's layout, not mesh data.
ICT_REGIONS = {
    "face": ((0, 9409), (0, 9230)),
    "head_neck": ((9409, 11248), (9230, 11144)),
    "mouth_socket": ((11248, 13294), (11144, 13226)),
    "eye_socket_left": ((13294, 13678), (13226, 13630)),
    "eye_socket_right": ((13678, 14062), (13630, 14034)),
    "gums_tongue": ((14062, 17039), (14034, 17006)),
    "teeth": ((17039, 21451), (17006, 21496)),
    "eyeball_left": ((21451, 23021), (21496, 23094)),
    "eyeball_right": ((23021, 24591), (23094, 24692)),
    "lacrimal_left": ((24591, 24795), (24692, 24855)),
    "lacrimal_right": ((24795, 24999), (24855, 25018)),
    "eye_blend_left": ((24999, 25023), (25018, 25033)),
    "eye_blend_right": ((25023, 25047), (25033, 25048)),
    "eye_occlusion_left": ((25047, 25199), (25048, 25176)),
    "eye_occlusion_right": ((25199, 25351), (25176, 25304)),
    "eyelashes_left": ((25351, 26035), (25304, 25844)),
    "eyelashes_right": ((26035, 26719), (25844, 26384)),
}

# Jaw-line vertex rows of the release README ("extended jawline"), ordered from the ear
# towards the chin; the fitter slides the contour landmarks along the silhouette among them.
ICT_JAW_RIGHT = [1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800]
ICT_JAW_LEFT = [3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490, 3493, 3496, 3498]

# FACS Action Units -> expression shapes (the release README's table). AUs with a left and a
# right shape are sided: AU12 = mouthSmile_L + mouthSmile_R, AU12L / AU12R one side each.
ICT_FACS = {
    1: ("Inner brow raiser", ["browInnerUp_L", "browInnerUp_R"]),
    2: ("Outer brow raiser", ["browOuterUp_L", "browOuterUp_R"]),
    4: ("Brow lowerer", ["browDown_L", "browDown_R"]),
    5: ("Upper lid raiser", ["eyeWide_L", "eyeWide_R"]),
    6: ("Cheek raiser", ["cheekSquint_L", "cheekSquint_R"]),
    7: ("Lid tightener", ["eyeSquint_L", "eyeSquint_R"]),
    9: ("Nose wrinkler", ["noseSneer_L", "noseSneer_R"]),
    10: ("Upper lip raiser", ["mouthShrugUpper"]),
    11: ("Nasolabial deepener", ["mouthUpperUp_L", "mouthUpperUp_R"]),
    12: ("Lip corner puller", ["mouthSmile_L", "mouthSmile_R"]),
    14: ("Dimpler", ["mouthDimple_L", "mouthDimple_R"]),
    15: ("Lip corner depressor", ["mouthFrown_L", "mouthFrown_R"]),
    16: ("Lower lip depressor", ["mouthLowerDown_L", "mouthLowerDown_R"]),
    17: ("Chin raiser", ["mouthShrugLower"]),
    18: ("Lip pucker", ["mouthPucker"]),
    20: ("Lip stretcher", ["mouthStretch_L", "mouthStretch_R"]),
    22: ("Lip funneler", ["mouthFunnel"]),
    24: ("Lip pressor", ["mouthPress_L", "mouthPress_R"]),
    27: ("Mouth stretch", ["jawOpen"]),
    28: ("Lip suck", ["mouthRollLower", "mouthRollUpper"]),
    29: ("Jaw thrust", ["jawForward"]),
    30: ("Jaw sideways", ["jawLeft", "jawRight"]),
    33: ("Cheek blow", ["cheekPuff_L", "cheekPuff_R"]),
    45: ("Blink", ["eyeBlink_L", "eyeBlink_R"]),
    61: ("Eyes turn left", ["eyeLookOut_L", "eyeLookIn_R"]),
    62: ("Eyes turn right", ["eyeLookOut_R", "eyeLookIn_L"]),
    63: ("Eyes up", ["eyeLookUp_L", "eyeLookUp_R"]),
    64: ("Eyes down", ["eyeLookDown_L", "eyeLookDown_R"]),
}


@dataclass(frozen=True)
class FacsUnit:
    number: int
    name: str
    shapes: tuple[str, ...]


@dataclass
class MorphableModel:
    """A linear face model in the project's unit (mm) and axes."""

    name: str
    source: str  # folder or file it was read from
    neutral: np.ndarray  # (V, 3) float32, mm
    identity_basis: np.ndarray  # (K, V, 3) float32, mm per unit coefficient
    expression_basis: np.ndarray  # (E, V, 3) float32, mm at weight 1
    expression_names: list[str]
    uvs: np.ndarray  # (T, 2) float32, per-corner UV table
    polygon_sizes: np.ndarray  # (P,) int32 corners per polygon
    corner_vertices: np.ndarray  # (C,) int32
    corner_uvs: np.ndarray  # (C,) int32
    landmark_vertices: np.ndarray  # (68,) int32, Multi-PIE order
    jaw_rows: tuple[list[int], list[int]]  # (right, left) contour candidates, ear -> chin
    regions: dict[str, tuple[tuple[int, int], tuple[int, int]]]  # name -> (vertex range, polygon range)
    facs: dict[int, FacsUnit] = field(default_factory=dict)
    # For a model converted from a file (the BFM): the file's own index of each vertex (the
    # conversion orders vertices by region). None for the default model.
    source_vertex_ids: Optional[np.ndarray] = None

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def n_expressions(self) -> int:
        return int(self.expression_basis.shape[0])

    def polygon_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.polygon_sizes)[:-1]]).astype(np.int64)

    def triangles(self, polygon_range: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fan-triangulate polygons: (vertex triangles (T,3), UV-index triangles (T,3))."""
        sizes = self.polygon_sizes
        starts = self.polygon_starts()
        lo, hi = polygon_range if polygon_range is not None else (0, len(sizes))
        if hi <= lo:  # an empty region (a face-only BFM has no head and neck)
            return np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32)
        tv, tu = [], []
        for n in np.unique(sizes[lo:hi]):
            idx = np.nonzero(sizes[lo:hi] == n)[0] + lo
            for k in range(1, int(n) - 1):
                c = np.stack([starts[idx], starts[idx] + k, starts[idx] + k + 1], axis=1)
                tv.append(self.corner_vertices[c])
                tu.append(self.corner_uvs[c])
        return np.concatenate(tv).astype(np.int32), np.concatenate(tu).astype(np.int32)

    def skin_submesh(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The face and head-and-neck skin as its own mesh: (model vertex ids used, triangles
        indexing them, how many of the triangles are the face's: they come first)."""
        face = self.triangles(tuple(self.regions["face"][1]))[0]
        head = (self.triangles(tuple(self.regions["head_neck"][1]))[0] if "head_neck" in self.regions
                else np.zeros((0, 3), np.int32))
        tris = np.concatenate([face, head])
        used = np.unique(tris)
        remap = np.full(self.n_vertices, -1, np.int64)
        remap[used] = np.arange(len(used))
        return used, remap[tris], len(face)

    def polygon_region_ids(self) -> tuple[list[str], np.ndarray]:
        """Region names and, for every polygon, the index of its region."""
        names = list(self.regions)
        ids = np.zeros(len(self.polygon_sizes), np.int16)
        for i, name in enumerate(names):
            lo, hi = self.regions[name][1]
            ids[lo:hi] = i
        return names, ids

    def shape(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None,
              vertices: np.ndarray | slice | None = None) -> np.ndarray:
        """Vertex positions (mm) for the given coefficients, optionally only some vertices."""
        sel = slice(None) if vertices is None else vertices
        v = self.neutral[sel].astype(np.float64)
        if identity is not None and len(identity):
            k = len(identity)
            v = v + np.tensordot(np.asarray(identity, np.float64), self.identity_basis[:k, sel], axes=1)
        if expression is not None and len(expression):
            v = v + np.tensordot(np.asarray(expression, np.float64), self.expression_basis[:, sel], axes=1)
        return v

    def expression_index(self, name: str) -> int:
        return self.expression_names.index(name)


def facs_table(expression_names: list[str]) -> dict[int, FacsUnit]:
    """The FACS units whose shapes a model has (converted models carry the default model's rig)."""
    return {n: FacsUnit(n, name, tuple(s)) for n, (name, s) in ICT_FACS.items()
            if all(x in expression_names for x in s)}


def _check_archive(path: Path) -> None:
    if not path.parent.is_dir():
        raise ModelNotFoundError(
            f"Model folder not found: {path.parent}",
            "Set the model folder in the add-on preferences (or --model-dir) to the folder that "
            f"holds {ICT_ARCHIVE}, e.g. shared/models/ict-facekit.",
        )
    if not path.is_file():
        raise ModelNotFoundError(
            f"The model folder {path.parent} has no {ICT_ARCHIVE}.",
            "Point the model folder at an ICT-FaceKit Light folder holding ict_facekit_light.npz.",
        )


def load_ict_facekit(folder: str | os.PathLike) -> MorphableModel:
    """Read ICT-FaceKit Light from its repacked archive (see the folder's DATA_CARD.md)."""
    folder = Path(folder).expanduser()
    return _load_ict_cached(str(folder.resolve()))


@lru_cache(maxsize=2)
def _load_ict_cached(folder: str) -> MorphableModel:
    path = Path(folder) / ICT_ARCHIVE
    _check_archive(path)
    try:
        d = np.load(path)
        neutral_cm = d["neutral"].astype(np.float32)
        mm = np.float32(10.0)  # centimetres -> millimetres
        identity = (d["identity_shapes"] - neutral_cm[None]) * mm
        expression = (d["expression_shapes"] - neutral_cm[None]) * mm
        groups = json.loads(str(d["vertex_indices_json"]))
        model = MorphableModel(
            name="ict-facekit-light",
            source=folder,
            neutral=neutral_cm * mm,
            identity_basis=identity.astype(np.float32),
            expression_basis=expression.astype(np.float32),
            expression_names=[str(s) for s in d["expression_names"]],
            uvs=d["uv"].astype(np.float32),
            polygon_sizes=d["face_vertex_counts"].astype(np.int32),
            corner_vertices=d["face_corner_vertices"].astype(np.int32),
            corner_uvs=d["face_corner_uvs"].astype(np.int32),
            landmark_vertices=np.asarray(groups["idx_to_landmark_verts"], np.int32),
            jaw_rows=(list(ICT_JAW_RIGHT), list(ICT_JAW_LEFT)),
            regions=dict(ICT_REGIONS),
        )
    except (KeyError, ValueError, OSError) as exc:
        raise ModelNotFoundError(
            f"{path} is not a readable ICT-FaceKit Light archive ({exc}).",
            "Restore the file from the model release, or point the model folder elsewhere.",
        ) from exc
    model.facs = facs_table(model.expression_names)
    if len(model.landmark_vertices) != 68:
        raise ModelNotFoundError(f"{path}: expected 68 landmark vertices, found {len(model.landmark_vertices)}.",
                                 "The archive is damaged; restore it from the model release.")
    return model


def default_model_dir() -> Path | None:
    """The model folder when none is configured: $FACEDET3D_MODEL_DIR, else the checkout's
    ``../shared/models/ict-facekit`` (a development checkout)."""
    env = os.environ.get("FACEDET3D_MODEL_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    cand = here.parent / "shared" / "models" / "ict-facekit"
    return cand if cand.is_dir() else None


def load_model(folder: str | os.PathLike | None = None, reference: str | os.PathLike | None = None,
               job=None) -> MorphableModel:
    """The model at ``folder``: a default-model folder, or a Basel Face Model file (.mat / .h5),
    converted on first use with the default model in ``reference`` (None: the default folder)
    and cached (see :mod:`backend.bfm_model`)."""
    if not folder:
        folder = default_model_dir()
        if folder is None:
            raise ModelNotFoundError(
                "No model folder is configured.",
                "Set the model folder in the add-on preferences (or --model-dir / FACEDET3D_MODEL_DIR).",
            )
    if Path(folder).expanduser().is_file():
        from .bfm_model import load_bfm_model

        return load_bfm_model(folder, reference, job)
    return load_ict_facekit(folder)
