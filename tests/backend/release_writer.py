"""Builds the ICT-FaceKit release's own folder layout from the repacked archive, for tests: every
OBJ as the release has them (the release's header, material groups and faces, taken from its
``generic_neutral_mesh.obj``, which the model folder keeps exactly as released; each shape's
vertex lines written from the archive with the release's number format), and
``vertex_indices.json``. Never written into the repository: the arrays are the model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.models.ict import default_model_dir


def _round_trips(pos: np.ndarray, fmt: str) -> bool:
    """Whether every value reads back as the same float32 from ``fmt`` (the later-added
    PupilDilate shapes carry more than 6 digits: written with 15 decimals here)."""
    flat = pos.astype(np.float32).ravel()
    return bool(np.array_equal(np.array([fmt % x for x in flat.astype(np.float64)], np.float32), flat))


def _v_lines(pos: np.ndarray, fmt: str) -> list[str]:
    # the release writes its neutral mesh and expression shapes with 6 significant digits ("%g":
    # browDown_L.obj of github.com/ICT-VGL/ICT-FaceKit begins "v 4.54747e-13 -2.48251 11.8387";
    # the neutral mesh is reproduced byte for byte here) and its identity shapes with 15 decimals
    # (identity000.obj: "v -0.966604409664474 -2.603905819219730 10.569665691341031")
    return [f"v {fmt % x} {fmt % y} {fmt % z}" for x, y, z in pos.astype(np.float64)]


def write_release(out: Path, model_dir: Path | None = None, only: int | None = None) -> Path:
    """``out``/FaceXModel with every OBJ of the archive (``only``: the first N identities and
    expressions, for quick tests); returns the FaceXModel folder."""
    src = Path(model_dir or default_model_dir())
    folder = out / "FaceXModel"
    folder.mkdir(parents=True, exist_ok=True)
    template = (src / "generic_neutral_mesh.obj").read_text(encoding="utf-8").split("\n")
    first_v = next(i for i, ln in enumerate(template) if ln.startswith("v "))
    n_v = sum(1 for ln in template if ln.startswith("v "))
    head, tail = template[:first_v], template[first_v + n_v:]
    with np.load(src / "ict_facekit_light.npz") as d:
        shapes = [("generic_neutral_mesh", d["neutral"])]
        names = list(d["identity_names"])[:only] + list(d["expression_names"])[:only]
        arrays = list(d["identity_shapes"][:only]) + list(d["expression_shapes"][:only])
        shapes += list(zip(map(str, names), arrays))
        (folder / "vertex_indices.json").write_text(str(d["vertex_indices_json"]), encoding="utf-8")
    for name, pos in shapes:
        fmt = "%.15f" if name.startswith("identity") or not _round_trips(pos, "%g") else "%g"
        (folder / f"{name}.obj").write_text("\n".join(head + _v_lines(pos, fmt) + tail), encoding="utf-8")
    return folder
