"""A Basel Face Model file -> the project's :class:`MorphableModel`, converted once and cached.

Conversion (``convert``), in the order the data flows:
1. read the file (``bfm_files``): mean, identity PCA, triangles, colour and expression models, mm;
2. register the default model's skin onto the BFM mean (``registration``: landmarks on renders
   of both, similarity, non-rigid ICP);
3. through that registration: the 68 landmark vertices and jaw-line rows (nearest BFM vertex),
   the face / head-and-neck split of the triangles, and the default model's FACS expression
   shapes (``deformation_transfer``); with BFM 2017's expression PCA (or, for 2009, the
   FaceWarehouse ``Exp_Pca.bin`` beside the file) each shape is also expressed in the BFM's own
   expression space and replaced by that where the space holds it (relative residual below
   ``PCA_FIT_MAX``);
4. UVs (``uv_param``): a user UV file beside the model, else a mean-value disk map placed like
   the default layout; face triangles on UV tile 0, head and neck on tile 1 (as the default model);
5. vertices re-ordered so that each region is one index range, the file's own index of every
   vertex kept in ``source_vertex_ids``.

The result and a JSON report (registration residuals, UV distortion, PCA fits, timings) go to
the cache folder: ``$FACEDET3D_CACHE_DIR`` (the add-on sets it to its extension user folder),
else ``$XDG_CACHE_HOME/facedet3d``, else ``~/.cache/facedet3d``. The cache key covers the
file's path, size and modification time, the sidecar files, the default model archive and the
converter version, so a changed input converts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from protocol.atomic import replacing
from protocol.jsonfile import write_atomic
from protocol.models import ict_layout

from ...core.errors import ModelNotFoundError
from ..cache import cache_dir
from ..cache import stat_key as _stat_key
from ..ict import ICT_FACS, archive_path, default_model_dir, load_ict_facekit
from ..morphable import MorphableModel, facs_table
from . import files as bfm_files
from . import registration, uv_param
from .deformation_transfer import Transfer, source_gradients

CONVERTER_VERSION = 1
PCA_FIT_MAX = 0.3  # relative residual under which an AU shape is taken in the BFM's expression PCA
PCA_RIDGE = 1e-3  # ridge on expression coefficients, relative to the basis' mean squared column norm
UV_SIDECARS = ("{stem}_uv.obj", "{stem}_uv.npy", "{stem}_uv.npz", "{stem}_uv.mat", "BFM_UV.mat")
EXP_PCA_SIDECAR = "Exp_Pca.bin"


def sidecars(path: Path) -> dict[str, Path]:
    """Optional files beside the model that change the conversion: 'uv' and 'expression'."""
    out = {}
    for pat in UV_SIDECARS:
        cand = path.with_name(pat.format(stem=path.stem))
        if cand.is_file():
            out["uv"] = cand
            break
    if (path.parent / EXP_PCA_SIDECAR).is_file():
        out["expression"] = path.parent / EXP_PCA_SIDECAR
    return out


def cache_key(path: Path, reference: Path) -> str:
    parts = [f"v{CONVERTER_VERSION}", _stat_key(path), _stat_key(archive_path(reference))]
    parts += [f"{k}={_stat_key(p)}" for k, p in sorted(sidecars(path).items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _reference_dir(reference: str | os.PathLike | None) -> Path:
    ref = Path(reference).expanduser() if reference else default_model_dir()
    if ref is None or ict_layout(ref) is None:
        raise ModelNotFoundError(
            "Converting a Basel Face Model needs the default model (ICT-FaceKit Light) for its landmarks, "
            f"regions and expression rig, and it was not found{f' in {ref}' if ref else ''}.",
            "Set the default model folder in the preferences (or FACEDET3D_MODEL_DIR) as well as the BFM file.")
    return ref


def load_bfm_model(path: str | os.PathLike, reference: str | os.PathLike | None = None, job=None) -> MorphableModel:
    """The converted model for a BFM file, from the cache or converted now (and cached)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ModelNotFoundError(f"BFM file not found: {path}",
                                 "Set the BFM file in the add-on preferences to the .mat or .h5 you downloaded.")
    ref = _reference_dir(reference)
    key = cache_key(path, ref)
    target = cache_dir() / f"{path.stem}-{key}.npz"
    hit = _loaded.get(str(target))
    if hit is not None:
        return hit
    model = None
    if target.is_file():
        try:
            model = load_cache(target, str(path))
        except (OSError, ValueError, KeyError):
            model = None  # a damaged cache entry converts again
    if model is None:
        model, report = convert(str(path), str(ref.resolve()), job)
        save_cache(model, report, target)
        _drop_stale(target, str(path))
    while len(_loaded) >= 2:  # two models in memory at most (each ~150 MB at BFM size)
        _loaded.pop(next(iter(_loaded)))
    _loaded[str(target)] = model
    return model


_loaded: dict[str, MorphableModel] = {}


def _drop_stale(current: Path, source: str) -> None:
    """Remove older conversions of the same file (it changed, or the converter did): each is
    ~150 MB at the BFM's size and would never be read again."""
    for rep in current.parent.glob(f"{Path(source).stem}-*.json"):
        if rep.with_suffix(".npz") == current:
            continue
        try:
            if json.loads(rep.read_text(encoding="utf-8")).get("file") == source:
                rep.with_suffix(".npz").unlink(missing_ok=True)
                rep.unlink(missing_ok=True)
        except (OSError, ValueError):
            continue


def report_path(model: MorphableModel, reference: str | os.PathLike | None = None) -> Path | None:
    """The conversion report (JSON) of a converted model in the cache, if there."""
    ref = _reference_dir(reference)
    p = cache_dir() / f"{Path(model.source).stem}-{cache_key(Path(model.source), ref)}.json"
    return p if p.is_file() else None


# ---- conversion ------------------------------------------------------------------------------
def _vertex_uvs(model: MorphableModel, vertices: np.ndarray) -> np.ndarray:
    """The default model's tile-0 UV of each given vertex (first corner that uses it)."""
    first = {}
    for c in range(len(model.corner_vertices) - 1, -1, -1):
        first[int(model.corner_vertices[c])] = int(model.corner_uvs[c])
    return model.uvs[[first[int(v)] for v in vertices]].astype(np.float64)


def _express_in_pca(shapes: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares (lightly ridged) coefficients of each shape (E, N, 3) in ``basis`` (K, N, 3):
    (projected shapes, coefficients (E, K), relative residuals (E,))."""
    b = basis.reshape(len(basis), -1).astype(np.float64)  # (K, 3N)
    gram = b @ b.T
    lam = PCA_RIDGE * float(np.trace(gram)) / len(gram)
    rhs = b @ shapes.reshape(len(shapes), -1).T  # (K, E)
    coef = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs).T  # (E, K)
    proj = (coef @ b).reshape(shapes.shape)
    res = np.linalg.norm((proj - shapes).reshape(len(shapes), -1), axis=1)
    return proj, coef, res / np.maximum(np.linalg.norm(shapes.reshape(len(shapes), -1), axis=1), 1e-12)


def _connected_regions(tris: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Each region one connected piece: every face island but the largest joins the head and
    neck, every head-and-neck island but the largest joins the face (a lone triangle whose
    centre fell on the other side of the border would otherwise cut a chart)."""
    e = np.concatenate([np.sort(tris[:, [a, b]], 1) for a, b in ((0, 1), (1, 2), (2, 0))])
    owner = np.tile(np.arange(len(tris)), 3)
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, owner = e[order], owner[order]
    same = (e[1:] == e[:-1]).all(1)
    a, b = owner[:-1][same], owner[1:][same]  # triangles sharing an edge
    face = face.copy()
    for want in (True, False):
        keep = (face[a] == want) & (face[b] == want)
        g = coo_matrix((np.ones(keep.sum()), (a[keep], b[keep])), shape=(len(tris), len(tris)))
        _, comp = connected_components(g, directed=False)
        members = np.nonzero(face == want)[0]
        if len(members):
            largest = np.bincount(comp[members]).argmax()
            face[members[comp[members] != largest]] = not want
    return face


def convert(path: str, reference: str, job=None) -> tuple[MorphableModel, dict]:
    def step(frac: float, msg: str) -> None:
        if job is not None:
            job.check()
            job.report(frac, msg)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    step(0.0, "Reading the Basel Face Model")
    data = bfm_files.read_bfm(path)
    ict = load_ict_facekit(reference)
    timings["read_s"] = round(time.perf_counter() - t0, 2)

    step(0.15, "Registering the default model onto the BFM mean")
    t1 = time.perf_counter()
    used, tmpl_tris, n_face_tris = ict.skin_submesh()
    tmpl = ict.neutral[used].astype(np.float64)
    reg = registration.register(tmpl, tmpl_tris, data.mean, data.triangles, data.color_mean,
                                check=None if job is None else job.check)
    timings["registration_s"] = round(time.perf_counter() - t1, 2)

    step(0.55, "Transferring landmarks, regions and expression shapes")
    t1 = time.perf_counter()
    mean = data.mean.astype(np.float64)
    tris = data.triangles.astype(np.int64)
    tr = Transfer(reg.vertices, tmpl_tris, mean, tris)
    face_tri = _connected_regions(tris, tr.tri_hits < n_face_tris)
    is_face_vertex = np.zeros(len(mean), bool)
    is_face_vertex[tris[face_tri].ravel()] = True
    order = np.concatenate([np.nonzero(is_face_vertex)[0], np.nonzero(~is_face_vertex)[0]])
    new_of_old = np.empty(len(order), np.int64)
    new_of_old[order] = np.arange(len(order))
    n_face_v = int(is_face_vertex.sum())
    tri_order = np.concatenate([np.nonzero(face_tri)[0], np.nonzero(~face_tri)[0]])
    tris_new = new_of_old[tris[tri_order]]
    n_face_t = int(face_tri.sum())

    sub_of_ict = np.full(ict.n_vertices, -1, np.int64)
    sub_of_ict[used] = np.arange(len(used))
    face_tree = cKDTree(mean[order[:n_face_v]])

    def nearest_face_vertices(ict_vertices) -> np.ndarray:
        _, idx = face_tree.query(reg.vertices[sub_of_ict[np.asarray(ict_vertices)]])
        return idx.astype(np.int32)  # new indices: face vertices come first

    landmarks = nearest_face_vertices(ict.landmark_vertices)
    jaw_rows = tuple(list(dict.fromkeys(int(i) for i in nearest_face_vertices(row))) for row in ict.jaw_rows)

    deltas = ict.expression_basis[:, used].astype(np.float64)
    grads = source_gradients(tmpl, deltas, tmpl_tris)
    expr = tr.apply(grads, deltas)  # (E, N, 3), file order
    pca_basis = data.expression
    pca_source = "bfm2017 expression model" if pca_basis is not None else None
    sc = sidecars(Path(path))
    if pca_basis is None and "expression" in sc:
        pca_basis = bfm_files.read_exp_pca(sc["expression"], data.n_vertices)
        pca_source = str(sc["expression"])
    pca_report = None
    if pca_basis is not None:
        proj, coef, resid = _express_in_pca(expr, pca_basis)
        take = resid < PCA_FIT_MAX
        expr[take] = proj[take]
        pca_report = {"source": pca_source, "components": int(len(pca_basis)), "fit_max": PCA_FIT_MAX,
                      "relative_residual": {n: round(float(r), 4) for n, r in zip(ict.expression_names, resid)},
                      "taken_from_pca": [n for n, t in zip(ict.expression_names, take) if t]}
    timings["transfer_s"] = round(time.perf_counter() - t1, 2)

    step(0.8, "Computing UVs")
    t1 = time.perf_counter()
    face_old = order[:n_face_v]
    if "uv" in sc:
        uv_all = uv_param.load_uv_file(sc["uv"], data.n_vertices)
        face_uv, head_uv, uv_source = uv_all[face_old], uv_all, str(sc["uv"])
    else:
        ids, disk = uv_param.chart(mean, tris[face_tri])
        at = np.full(len(mean), -1, np.int64)
        at[ids] = np.arange(len(ids))
        inner = np.arange(17, 68)
        placed = uv_param.place_in_tile(disk, at[order[landmarks[inner]]], _vertex_uvs(ict, ict.landmark_vertices[inner]))
        face_uv = placed[at[face_old]]
        head_uv = uv_param.fit_in_tile(uv_param.disk_map(mean, tris))
        uv_source = "uv_param: stretch-balanced mean-value disk maps, the face on tile 0, the whole mesh on tile 1"
    uv_face_q = uv_param.quality(mean[face_old], tris_new[:n_face_t], face_uv)
    uv_head_q = (uv_param.quality(mean, tris[~face_tri], head_uv) if (~face_tri).any() else None)
    timings["uv_s"] = round(time.perf_counter() - t1, 2)

    n = len(mean)
    uv_table = np.concatenate([face_uv, head_uv[order] + np.array([1.0, 0.0])]).astype(np.float32)
    corner_uvs = tris_new.copy()
    corner_uvs[n_face_t:] += n_face_v  # head and neck on tile 1
    model = MorphableModel(
        name=data.version, source=path,
        neutral=mean[order].astype(np.float32),
        identity_basis=np.ascontiguousarray(data.identity[:, order]),
        expression_basis=np.ascontiguousarray(expr[:, order], np.float32),
        expression_names=list(ict.expression_names),
        uvs=uv_table, polygon_sizes=np.full(len(tris_new), 3, np.int32),
        corner_vertices=tris_new.reshape(-1).astype(np.int32), corner_uvs=corner_uvs.reshape(-1).astype(np.int32),
        landmark_vertices=landmarks, jaw_rows=jaw_rows,
        regions={"face": ((0, n_face_v), (0, n_face_t)), "head_neck": ((n_face_v, n), (n_face_t, len(tris_new)))},
        facs=facs_table(ict.expression_names, ICT_FACS), source_vertex_ids=order.astype(np.int32))
    timings["total_s"] = round(time.perf_counter() - t0, 2)
    far = tr.distance[order[:n_face_v]]
    report = {
        "converter_version": CONVERTER_VERSION, "file": path, "version": data.version, "notes": data.notes,
        "vertices": n, "triangles": len(tris_new), "identity_components": int(data.identity.shape[0]),
        "face_vertices": n_face_v, "face_triangles": n_face_t, "reference": reference,
        "registration": reg.stats,
        "face_vertex_distance_to_template_mm": {"median": round(float(np.median(far)), 3),
                                                "p95": round(float(np.percentile(far, 95)), 3)},
        "uv": {"source": uv_source, "face": uv_face_q.as_dict(),
               "head_neck": uv_head_q.as_dict() if uv_head_q else None}, "expression_pca": pca_report, "timings": timings}
    step(1.0, "Model converted")
    return model, report


# ---- the cache file ------------------------------------------------------------------------------
ARRAYS = ("neutral", "identity_basis", "expression_basis", "uvs", "polygon_sizes", "corner_vertices",
          "corner_uvs", "landmark_vertices", "source_vertex_ids")


def save_cache(model: MorphableModel, report: dict, target: Path) -> None:
    """Write ``target`` (.npz) and its report (.json) atomically: a crash leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {"name": model.name, "expression_names": model.expression_names,
            "jaw_rows": [list(map(int, r)) for r in model.jaw_rows],
            "regions": {k: [list(v[0]), list(v[1])] for k, v in model.regions.items()}}
    with replacing(target, ".tmp.npz") as tmp:
        np.savez(tmp, meta=json.dumps(meta), **{k: getattr(model, k) for k in ARRAYS})
    write_atomic(target.with_suffix(".json"), report)


def load_cache(target: Path, source: str) -> MorphableModel:
    with np.load(target) as d:
        meta = json.loads(str(d["meta"]))
        arrays = {k: d[k] for k in ARRAYS}
    return MorphableModel(
        name=meta["name"], source=source, expression_names=list(meta["expression_names"]),
        jaw_rows=tuple(meta["jaw_rows"]),
        regions={k: (tuple(v[0]), tuple(v[1])) for k, v in meta["regions"].items()},
        facs=facs_table(meta["expression_names"], ICT_FACS), **arrays)
