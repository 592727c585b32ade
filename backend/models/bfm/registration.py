"""Registering the default model's template onto another face mesh (the BFM mean), guided by
landmarks: the correspondence that lets landmarks, region masks and FACS shapes move across.

1. Landmarks on both meshes: each is rendered frontally (embree ray casting, the target's
   colour model when it has one) and the project's own detector (dlib) places the 68
   Multi-PIE points; rays through the inner 51 give their 3D positions.
2. A similarity transform (Umeyama) takes the template's points onto the target's.
3. Non-rigid ICP (after Amberg et al. 2007, with a displacement Laplacian as the stiffness
   term): the template moves towards its closest points on the target, kept smooth by a
   stiffness that decreases stage by stage, pulled to the landmarks by a weight that decreases
   too. Closest points on the target's boundary, with normals more than 60° apart, or far
   away are not used (the template's back of head has nothing to match).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import trimesh
from scipy.sparse.linalg import splu

from ...core.errors import ModelNotFoundError, NoFaceError
from ...geometry.rays import ray_caster
from ...geometry.surface import Surface, boundary_edges, graph_laplacian, similarity, triangle_normals, vertex_normals
from ...vision import landmarks

INNER_LANDMARKS = np.arange(17, 68)  # brows, nose, eyes, mouth: not the silhouette-bound jaw line
RENDER_SIZE = 640
SKIN = np.array([0.85, 0.65, 0.55])
# (stiffness, landmark weight, rejection distance mm, iterations) per stage, stiff -> soft.
SCHEDULE = ((100.0, 20.0, 25.0, 3), (30.0, 10.0, 15.0, 3), (10.0, 5.0, 10.0, 3), (3.0, 2.0, 8.0, 3),
            (1.0, 1.0, 6.0, 3), (0.3, 0.5, 5.0, 4))
MAX_NORMAL_ANGLE_DEG = 60.0


@dataclass
class Registration:
    vertices: np.ndarray  # (V_template, 3) the template registered onto the target
    scale: float  # of the similarity step
    landmarks_target: np.ndarray  # (51, 3) detected inner landmarks on the target
    stats: dict = field(default_factory=dict)


def render_front(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None,
                 size: int = RENDER_SIZE):
    """An orthographic frontal (looking down -z) shaded rendering; returns (uint8 image, a
    function pixel (x, y) -> 3D surface point or NaN)."""
    v = np.asarray(vertices, np.float64)
    caster = ray_caster(v, np.asarray(triangles))
    mesh = caster.mesh
    used = np.unique(triangles)
    lo, hi = v[used].min(0), v[used].max(0)
    centre = (lo + hi) / 2
    half = 0.55 * max(hi[0] - lo[0], hi[1] - lo[1])
    z0 = hi[2] + 100.0

    def origins(px: np.ndarray) -> np.ndarray:
        x = centre[0] - half + px[:, 0] / size * 2 * half
        y = centre[1] + half - px[:, 1] / size * 2 * half
        return np.stack([x, y, np.full(len(px), z0)], 1)

    def cast(px: np.ndarray):
        o = origins(px)
        d = np.tile([0.0, 0.0, -1.0], (len(o), 1))
        return caster.intersects_id(o, d, multiple_hits=False, return_locations=True)

    gy, gx = np.mgrid[0:size, 0:size]
    px = np.stack([gx.ravel() + 0.5, gy.ravel() + 0.5], 1)
    tri, ray, loc = cast(px)
    n = mesh.face_normals[tri]
    light = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
    shade = np.clip(n @ light, 0, 1) * 0.8 + 0.15
    if colors is not None:
        bary = trimesh.triangles.points_to_barycentric(v[mesh.faces[tri]], loc)
        albedo = np.einsum("qc,qcd->qd", bary, np.asarray(colors, np.float64)[mesh.faces[tri]]).clip(0, 1)
    else:
        albedo = np.broadcast_to(SKIN, (len(tri), 3))
    img = np.full((size * size, 3), 0.05)
    img[ray] = shade[:, None] * albedo
    img = (img.reshape(size, size, 3) * 255).astype(np.uint8)

    def surface_point(p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, np.float64).reshape(-1, 2)
        out = np.full((len(p), 3), np.nan)
        t, r, hit = cast(p)
        # A ray through a hole (an open eye or mouth) may hit the inside of the back of the head:
        # only hits on triangles facing the viewer are surface points of the face.
        front = mesh.face_normals[t][:, 2] > 0
        out[r[front]] = hit[front]
        return out

    return img, surface_point


def detect_landmarks_3d(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None,
                        what: str = "the model's mean face") -> np.ndarray:
    """The inner 51 of the 68 landmarks on a mesh's surface (51, 3), NaN where a ray missed."""
    img, surface_point = render_front(vertices, triangles, colors)
    try:
        det = landmarks.detect_face(img, landmarker="dlib")
    except NoFaceError as exc:
        raise ModelNotFoundError(
            f"No face was found on a frontal rendering of {what}, so it cannot be registered to the default "
            "model (is it a face mesh, seen from +z, y up?).",
            "Check that the file is a Basel Face Model; a mesh in another orientation needs converting first.") from exc
    return surface_point(det.points[INNER_LANDMARKS])


def nicp(template: np.ndarray, template_tris: np.ndarray, target: Surface, target_boundary: np.ndarray,
         lm_rows: sp.csr_matrix, lm_target: np.ndarray, schedule=SCHEDULE, check=None) -> tuple[np.ndarray, dict]:
    """Non-rigid ICP of ``template`` (already aligned) onto ``target``; ``lm_rows @ x`` are the
    template's landmark points, to be pulled onto ``lm_target``. Returns (vertices, stats)."""
    x0 = np.asarray(template, np.float64)
    n = len(x0)
    lap = graph_laplacian(n, template_tris)
    lap2 = (lap.T @ lap).tocsc()  # bending of the displacement field
    tnormals_target, _ = triangle_normals(target.v, target.f)
    bad_tri = np.isin(target.f, np.nonzero(target_boundary)[0]).any(1)
    cos_max = np.cos(np.radians(MAX_NORMAL_ANGLE_DEG))
    lm_sel = (lm_rows.T @ lm_rows).tocsc()
    lm_rhs = lm_rows.T @ lm_target
    x = x0.copy()
    history = []
    for alpha, beta, reject_mm, iters in schedule:
        for _ in range(iters):
            if check is not None:
                check()
            hits = target.closest(x)
            vn = vertex_normals(x, template_tris)
            ok = (~bad_tri[hits.triangle]) & (hits.distance < reject_mm)
            ok &= (tnormals_target[hits.triangle] * vn).sum(1) > cos_max
            w = ok.astype(np.float64)
            a = sp.diags(w) + alpha * lap2 + beta * lm_sel
            rhs = w[:, None] * hits.point + alpha * (lap2 @ x0) + beta * lm_rhs
            x = splu(a.tocsc()).solve(rhs)
            history.append({"stiffness": alpha, "matched": float(w.mean()),
                            "median_mm": float(np.median(hits.distance[ok])) if ok.any() else None})
    hits = target.closest(x)
    vn = vertex_normals(x, template_tris)
    ok = (~bad_tri[hits.triangle]) & (hits.distance < schedule[-1][2])
    ok &= (tnormals_target[hits.triangle] * vn).sum(1) > cos_max
    stats = {"matched_fraction": float(ok.mean()),
             "median_distance_mm": float(np.median(hits.distance[ok])),
             "p95_distance_mm": float(np.percentile(hits.distance[ok], 95)),
             "landmark_rms_mm": float(np.sqrt(((lm_rows @ x - lm_target) ** 2).sum(1).mean())),
             "stages": history[-1:]}
    x[ok] = hits.point[ok]  # the matched part lies on the target exactly
    return x, stats


def _barycentric_rows(mesh_v: np.ndarray, mesh_f: np.ndarray, points: np.ndarray) -> sp.csr_matrix:
    """A sparse (L, V) matrix whose rows give each point as a barycentric mix of mesh vertices."""
    hits = Surface(mesh_v, mesh_f).closest(points)
    rows = np.repeat(np.arange(len(points)), 3)
    return sp.csr_matrix((hits.bary.ravel(), (rows, np.asarray(mesh_f)[hits.triangle].ravel())),
                         shape=(len(points), len(mesh_v)))


def register(template: np.ndarray, template_tris: np.ndarray, target: np.ndarray, target_tris: np.ndarray,
             target_colors: np.ndarray | None = None, check=None) -> Registration:
    """Register the ``template`` mesh onto the ``target`` mesh.

    Landmarks are detected the same way on both (rendered, dlib): a detector's habits (where it
    puts eyebrow points on an untextured face, say) then shift both sets alike and cancel, where
    pairing detections with a model's hand-picked landmark vertices would pull the
    registration by their difference (8 mm at the brows in our measurements).
    """
    t0 = time.perf_counter()
    template = np.asarray(template, np.float64)
    lm_s = detect_landmarks_3d(template, template_tris, None, "the default model's template")
    lm_t = detect_landmarks_3d(target, target_tris, target_colors)
    found = np.isfinite(lm_t).all(1) & np.isfinite(lm_s).all(1)
    if found.sum() < 20:
        raise ModelNotFoundError("Too few landmarks of the rendered mean face lie on its surface to register it.",
                                 "Check that the file is a Basel Face Model seen from +z, y up.")
    s, r, t = similarity(lm_s[found], lm_t[found])
    # One refit without the landmarks the similarity explains worst (a detector slip).
    res = np.full(len(lm_t), np.inf)
    res[found] = np.linalg.norm((s * (r @ lm_s[found].T)).T + t - lm_t[found], axis=1)
    found &= res <= 3 * np.median(res[found]) + 1.0
    s, r, t = similarity(lm_s[found], lm_t[found])
    aligned = (s * (r @ template.T)).T + t
    t_detect = time.perf_counter() - t0
    surf = Surface(target, target_tris)
    bnd = np.zeros(len(target), bool)
    bnd[boundary_edges(target_tris).ravel()] = True
    lm_rows = _barycentric_rows(template, template_tris, lm_s[found])
    x, stats = nicp(aligned, template_tris, surf, bnd, lm_rows, lm_t[found], check=check)
    stats.update({"similarity_scale": s, "landmarks_used": int(found.sum()),
                  "similarity_landmark_rms_mm": float(np.sqrt((res[found] ** 2).mean())),
                  "detect_s": round(t_detect, 2), "total_s": round(time.perf_counter() - t0, 2)})
    return Registration(x, s, lm_t, stats)
