"""The default model, ICT-FaceKit Light: the facts of its release layout and its loader.

Read from the repacked archive ``ict_facekit_light.npz`` (see the model folder's DATA_CARD.md);
centimetres in the file, millimetres here.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from protocol.models import ICT_ARCHIVE, ICT_RELEASE_FOLDER, ICT_RELEASE_NEUTRAL, default_model_folder, ict_layout

from ..core.errors import ModelNotFoundError
from . import ict_release
from .morphable import MorphableModel, facs_table


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


def archive_path(folder: str | os.PathLike, job=None) -> Path:
    """The repacked archive of the model in ``folder``: the archive itself, or — for the public
    release's folder of OBJs (or a checkout of its repository) — its conversion, made once and
    cached (:mod:`.ict_release`)."""
    f = Path(folder).expanduser()
    if not f.is_dir():
        raise ModelNotFoundError(
            f"Model folder not found: {f}",
            "Set the model folder in the add-on preferences (or --model-dir) to ICT-FaceKit Light: the folder "
            f"holding {ICT_ARCHIVE}, or the release's {ICT_RELEASE_FOLDER} folder.",
        )
    layout = ict_layout(f)
    if layout is None:
        raise ModelNotFoundError(
            f"The model folder {f} has neither {ICT_ARCHIVE} nor the ICT-FaceKit release's {ICT_RELEASE_NEUTRAL} "
            f"(in it or in {ICT_RELEASE_FOLDER}/).",
            "Point the model folder at ICT-FaceKit Light: a download or checkout of the release, or the folder "
            f"holding {ICT_ARCHIVE}.",
        )
    kind, where = layout
    if kind == "archive":
        return where / ICT_ARCHIVE
    return ict_release.archive_for(where, job)


def load_ict_facekit(folder: str | os.PathLike, job=None) -> MorphableModel:
    """ICT-FaceKit Light from ``folder``: the repacked archive (DATA_CARD.md of the model folder)
    or the public release's OBJs (converted on first use, with progress on ``job``)."""
    folder = Path(folder).expanduser()
    archive = archive_path(folder, job)
    try:
        return _load_ict_cached(str(archive.resolve()), str(folder.resolve()))
    except ModelNotFoundError:
        if ict_layout(folder)[0] != "release":
            raise
        archive.unlink(missing_ok=True)  # a damaged conversion of ours: made again from the release
        return _load_ict_cached(str(archive_path(folder, job).resolve()), str(folder.resolve()))


@lru_cache(maxsize=2)
def _load_ict_cached(archive: str, folder: str) -> MorphableModel:
    path = Path(archive)
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
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelNotFoundError(
            f"{path} is not a readable ICT-FaceKit Light archive ({type(exc).__name__}: {exc}; truncated or "
            "damaged?).",
            "Restore the file from the model release, or point the model folder elsewhere.",
        ) from exc
    model.facs = facs_table(model.expression_names, ICT_FACS)
    if len(model.landmark_vertices) != 68:
        raise ModelNotFoundError(f"{path}: expected 68 landmark vertices, found {len(model.landmark_vertices)}.",
                                 "The archive is damaged; restore it from the model release.")
    return model


def default_model_dir() -> Path | None:
    """The model folder when none is configured: $FACEDET3D_MODEL_DIR, else a development
    checkout's ``../shared/models/ict-facekit``, else the release fetched into ``.models/``."""
    env = os.environ.get("FACEDET3D_MODEL_DIR")
    if env:
        return Path(env)
    return default_model_folder(Path(__file__).resolve().parents[2])  # the extension root (holds backend/)


