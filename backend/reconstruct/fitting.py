"""Fit the morphable model to the detected landmarks: pose, identity, expression.

A proxy fit in the manner of landmark-based face fitting (FDS-style): minimise the
reprojection error of the model's landmark vertices through a perspective pinhole camera,

    E = sum_i |proj(R (N + B_id a + B_ex w)_i + t) - p_i|^2 / sigma_i^2 + |a|^2 + prior(w)

with identity coefficients ``a`` ~ N(0, 1) (the ICT modes are scaled that way), expression
weights ``w`` in [0, 1] (only the shapes that landmarks can see), solved with
``scipy.optimize.least_squares`` ('trf', bounds, analytic Jacobian) on the landmark
vertices only.

The points are MediaPipe's dense mesh when the detection has it (~410 of its 468 surface points
lie on the model: .mesh_landmarks finds where, once per model), with eyelid, brow and lip
distances as residuals of their own and an expression prior of three terms (EMFACS-scaled
Gaussian, antagonists, left/right; see "the expression prior" below); else the 68 Multi-PIE
points with a plain Gaussian prior on ``w``.

Outline points are not fixed vertices: a detector puts them on the face's visible outline,
which slides over the surface as the head turns. Each one has a set of candidate vertices (a
horizontal slab of the face at its height, in front of the ears) and after every solve it moves
to the candidate that is extreme outward in the current projection ("landmark marching", Zhu et
al., HPEN / 3DDFA); pose/shape and these correspondences alternate until they stop changing.
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation
from threadpoolctl import ThreadpoolController

from protocol.job import Camera, Detection, Fit

from ..core.errors import FitError
from ..core.progress import Job
from ..models.emotions import EMFACS
from ..models.morphable import MorphableModel, VertexSubset
from ..vision.dense import FACE_OVAL, TO_68
from . import mesh_landmarks
from .pinhole import DEFAULT_FOV_DEG, FRONTAL, focal_for, rotation_angles  # noqa: F401 - used as fitting.*

# ---- camera --------------------------------------------------------------------------------
# (the field-of-view policy and the frontal reference pose: .pinhole)

# ---- noise model and priors ----------------------------------------------------------------
# Landmark residuals are divided by sigma, in pixels, proportional to the face size (the
# larger side of the landmarks' bounding box, ~2.2x the inter-ocular distance for a frontal
# face): 68-point detectors are typically off by 3-5 % of the inter-ocular distance on inner
# points (~2 % of the face size) and about twice that along the jaw line, whose points are
# only defined up to a slide along the outline.
SIGMA_INNER = 0.02
SIGMA_CONTOUR = 0.045
# Identity coefficients are N(0, 1): the MAP prior residual is the coefficient itself.
IDENTITY_PRIOR = 1.0
IDENTITY_BOUND = 4.0  # |a_k| <= 4 sigma: keeps a bad detection from producing a monster
# Expression weights: a Gaussian (L2) prior of this strength, and bounds [0, 1]: a shape at
# full weight costs as much as one landmark 3 sigma off. Chosen on synthetic fits (random
# identities, 4-5 active shapes, landmark noise 1.5 % of the face size, yaw +-20 deg): the
# error of the recovered weights is lowest around 3 (rmse 0.20 at 1.0, 0.15 at 2, 0.14 at 3,
# 0.15 at 5), and the sum of weights on shapes that are not there falls from 4.8 (1.0) to
# 2.2 (3). On the astronaut photo 1.0 turns on a dozen shapes to fit landmark noise (eyeWide
# 1.0, mouthLeft and mouthRight together); 3 keeps her smile (mouthSmile ~0.7) and little else.
# The price is shrinkage: true weights come back at roughly half to two thirds.
EXPRESSION_PRIOR = 3.0
# Expression shapes the fit never uses: pupils and gaze do not move any landmark; mouthClose
# is ARKit's corrective for jawOpen (alone it pulls the lips through the face); cheekPuff
# only widens the jaw outline, which identity explains better and the jaw points are too
# noisy to tell apart.
EXCLUDED_PREFIXES = ("PupilDilate", "eyeLook", "mouthClose", "cheekPuff")

CONTOUR_RIGHT = list(range(0, 8))  # subject's right (image left for a frontal photo)
CONTOUR_LEFT = list(range(9, 17))
CONTOUR = CONTOUR_RIGHT + CONTOUR_LEFT
SLAB_HALF_MM = 2.5  # half height of a contour landmark's candidate slab
EAR_MARGIN_MM = 3.0  # candidates may lie this far behind the jaw row (towards the ear)
INNER_FRACTION = 0.3  # ...and no closer to the midline than this fraction of the landmark's |x|

MAX_OUTER = 6

# ---- dense points (MediaPipe's mesh) ----------------------------------------------------------
# Per-point noise of the dense points. Neighbouring mesh points are placed by one network and
# their errors are strongly correlated, so they are far from ~400 independent measurements:
# the sigma is raised so that the whole set weighs about as much against the priors as the
# 51 inner points of the 68 did (0.02 * sqrt(400 / 51) ~ 0.055), then tuned on the closed
# loop (docs/au_accuracy.md).
SIGMA_DENSE = 0.055
# Differences between two points with a sigma of their own: the eye opening (upper lid above
# lower lid), the brows' height above the eyes, the mouth's width and opening. These carry the
# expression (AU1/2/4, AU5/7/45, AU12/20, AU25-27) and are nearly blind to identity and pose,
# which move both points together. Mesh indices (MediaPipe's canonical face): eyes 159/145,
# 158/153, 160/144 (subject's right) and 386/374, 385/380, 387/373 (left); brows 105, 66, 70
# over 159 / 33 and 334, 296, 300 over 386 / 263; lips 61/291 corners, 13/14 inner, 0/17 outer.
SIGMA_PAIR = 0.012
PAIRS = tuple(((a, b), SIGMA_PAIR) for a, b in (
    (159, 145), (158, 153), (160, 144), (386, 374), (385, 380), (387, 373),
    (105, 159), (66, 159), (70, 33), (334, 386), (296, 386), (300, 263),
    (61, 291), (13, 14), (0, 17)))
# Trust-region subproblem solver: "exact", an SVD per iteration, on one BLAS thread. OpenBLAS's
# threaded SVD/QR of these small (~1000 x 110) matrices degrades from ~3 ms to ~1 s when the
# CPU is shared with another busy process (measured here, 2 cores), so the fit holds BLAS to
# one thread (threadpoolctl). LSMR, used before, needs only matrix-vector products but spends
# them in Python: 0.63-0.92 s a photo against 0.29 s, for the same fit (expression weights
# within 5e-4, error within 1e-5 IOD; measured on the bundled photo).
TR_SOLVER = "exact"
MAX_ERROR_IOD = 0.25  # beyond this mean error the "fit" does not describe the photo


# ---- contour candidates --------------------------------------------------------------------
@dataclass
class ContourCandidates:
    """Per jaw-line landmark (in CONTOUR order): candidate vertex ids and the outward sign."""

    landmarks: list[int]
    candidates: list[np.ndarray]
    side: list[int]  # -1: subject's right (outward = -x), +1: left
    all_vertices: np.ndarray  # union of the candidates (sorted)
    positions: list[np.ndarray]  # for each landmark, its candidates' indices into all_vertices
    bases: VertexSubset | None = None  # the model at all_vertices, for march_contour
    centre: VertexSubset | None = None  # the model averaged over its 68 landmark vertices


# (id(model), which points) -> (weak reference to the model, their candidates); MorphableModel is unhashable.
_candidate_cache: dict[tuple, tuple[weakref.ref, ContourCandidates]] = {}


def slide_candidates(model: MorphableModel, landmarks: list[int], defaults: np.ndarray,
                     sides: list[int]) -> ContourCandidates:
    """Candidate vertices for sliding outline points (cached per model and point set).

    For the point whose default vertex is ``defaults[i]`` on side ``sides[i]``: the face-region
    vertices of the neutral mesh within ``SLAB_HALF_MM`` of its height, on its side, no further
    back (towards the ear) than the release's extended jaw line at that height, and not in the
    central part of the face. The jaw row itself is one line; the slab gives each point a band
    that crosses the cheek from the jaw line forwards, along which its silhouette point moves
    as the head turns.
    """
    key = (id(model), tuple(int(v) for v in defaults))
    hit = _candidate_cache.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    nv = min(model.regions["face"][0][1], model.n_vertices)
    V = model.neutral[:nv].astype(np.float64)
    rows = {-1: model.neutral[list(model.jaw_rows[0])].astype(np.float64),
            +1: model.neutral[list(model.jaw_rows[1])].astype(np.float64)}
    cands = []
    for default, side in zip(defaults, sides):
        x_k, y_k = model.neutral[int(default), 0], model.neutral[int(default), 1]
        row = rows[side]
        order = np.argsort(row[:, 1])
        z_jaw = float(np.interp(y_k, row[order, 1], row[order, 2]))
        half = SLAB_HALF_MM
        while True:
            mask = ((np.abs(V[:, 1] - y_k) <= half) & (side * V[:, 0] >= INNER_FRACTION * abs(x_k))
                    & (V[:, 2] >= z_jaw - EAR_MARGIN_MM))
            if mask.sum() >= 5 or half > 4 * SLAB_HALF_MM:
                break
            half *= 1.5
        idx = np.nonzero(mask)[0]
        if int(default) not in idx:
            idx = np.append(idx, int(default))
        cands.append(np.sort(idx).astype(np.int64))
    all_v = np.unique(np.concatenate(cands))
    pos = [np.searchsorted(all_v, c) for c in cands]
    res = ContourCandidates(list(landmarks), cands, list(sides), all_v, pos, model.at(all_v),
                            model.at(np.asarray(model.landmark_vertices)).mean())
    for k in [k for k, (ref, _) in _candidate_cache.items() if ref() is None]:
        del _candidate_cache[k]
    _candidate_cache[key] = (weakref.ref(model), res)
    return res


def contour_candidates(model: MorphableModel) -> ContourCandidates:
    """Candidates of the 68-point jaw line (:func:`slide_candidates` for landmarks 0-7, 9-16)."""
    return slide_candidates(model, list(CONTOUR), np.asarray(model.landmark_vertices)[CONTOUR],
                            [-1 if k in CONTOUR_RIGHT else +1 for k in CONTOUR])


# ---- small geometry helpers ----------------------------------------------------------------
def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1),
                     np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def _left_jacobian(r: np.ndarray) -> np.ndarray:
    """SO(3) left Jacobian: Exp(r + d) ~= Exp(J_l(r) d) Exp(r)."""
    th = float(np.linalg.norm(r))
    K = _skew(r)
    if th < 1e-8:
        return np.eye(3) + 0.5 * K
    return (np.eye(3) + (1 - math.cos(th)) / th**2 * K + (th - math.sin(th)) / th**3 * (K @ K))


def _project(Xc: np.ndarray, f: float, c: np.ndarray) -> np.ndarray:
    return f * Xc[:, :2] / Xc[:, 2:3] + c


def outward_direction(R: np.ndarray, t: np.ndarray, f: float, c: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Unit image direction of the model's +x axis (subject's left) at ``centre``."""
    pts = np.stack([centre, centre + np.array([10.0, 0.0, 0.0])])
    uv = _project(pts @ R.T + t, f, c)
    d = uv[1] - uv[0]
    n = np.linalg.norm(d)
    return d / n if n > 1e-9 else np.array([1.0, 0.0])


def march_contour(model: MorphableModel, identity: np.ndarray, expression: np.ndarray, R: np.ndarray,
                  t: np.ndarray, f: float, c: np.ndarray, cc: ContourCandidates | None = None) -> dict[int, int]:
    """For each sliding point (the 68-point jaw line unless ``cc`` names others), the candidate
    vertex extreme outward in this projection."""
    cc = cc or contour_candidates(model)
    P = cc.bases.shape(identity, expression)
    uv = _project(P @ R.T + t, f, c)
    centre = cc.centre.shape(identity, expression)[0]
    d = outward_direction(R, t, f, c, centre)
    out = {}
    for k, cand, pos, side in zip(cc.landmarks, cc.candidates, cc.positions, cc.side):
        s = uv[pos] @ d
        out[k] = int(cand[np.argmax(s) if side > 0 else np.argmin(s)])
    return out


# ---- the expression prior (dense fits) -------------------------------------------------------
# Three terms on the expression weights, each a residual of the least-squares problem:
# - per shape, the Gaussian prior EXPRESSION_PRIOR x a scale: 1 for shapes of AUs that occur in
#   an EMFACS prototype (models.emotions), NON_PROTOTYPE_SCALE for the rest (jaw thrust and
#   sideways, lip suck, funneler...). EMFACS's co-occurrence table is the documented prior on
#   which AUs people's emotional expressions use; shapes outside it have to earn more evidence.
# - antagonists, ANTAGONIST_PRIOR x w_a x w_b: muscles that pull one feature opposite ways
#   (jaw left/right, mouth left/right, lid raiser/closer, smile/frown on one side) are not
#   both on; the product costs nothing when either is 0. Without it, the fit cancels pairs
#   (jawLeft 0.69 + jawRight 0.76 on a render with neither) to soak up landmark bias.
# - left/right, SYMMETRY_PRIOR x (w_L - w_R): expressions are mostly symmetric; a lopsided
#   one (contempt) still comes through, the prior is weak.
NON_PROTOTYPE_SCALE = 2.0
ANTAGONIST_PRIOR = 4.0
SYMMETRY_PRIOR = 1.0
ANTAGONIST_NAMES = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"), ("eyeWide_L", "eyeBlink_L"),
                    ("eyeWide_R", "eyeBlink_R"), ("eyeWide_L", "eyeSquint_L"), ("eyeWide_R", "eyeSquint_R"),
                    ("mouthSmile_L", "mouthFrown_L"), ("mouthSmile_R", "mouthFrown_R"),
                    ("mouthPucker", "mouthStretch_L"), ("mouthPucker", "mouthStretch_R"),
                    ("browDown_L", "browOuterUp_L"), ("browDown_R", "browOuterUp_R"))


def expression_priors(model: MorphableModel) -> dict:
    """The dense fit's expression prior for this model (see above)."""
    proto_aus = {au for aus, _ in EMFACS.values() for au, _l, _s in aus}
    scale = np.full(model.n_expressions, NON_PROTOTYPE_SCALE)
    for n, unit in model.facs.items():
        if n in proto_aus:
            for sh in unit.shapes:
                scale[model.expression_index(sh)] = 1.0
    idx = {n: i for i, n in enumerate(model.expression_names)}
    anta = [(idx[a], idx[b]) for a, b in ANTAGONIST_NAMES if a in idx and b in idx]
    sym = [(idx[n], idx[n[:-2] + "_R"]) for n in model.expression_names
           if n.endswith("_L") and n[:-2] + "_R" in idx]
    return {"prior_scale": scale, "antagonists": anta, "symmetric": sym}


# ---- what is fitted -------------------------------------------------------------------------
@dataclass
class Targets:
    """The observed points, the model vertices they belong to, and how much each is trusted."""

    obs: np.ndarray  # (N, 2) pixels
    vertices: np.ndarray  # (N,) model vertex per point (sliding points: their current vertex)
    sigma: np.ndarray  # (N,) pixels
    slide: ContourCandidates | None  # ``landmarks`` are indices into the points
    inner: np.ndarray  # points the initial pose uses (not the outline)
    pairs: np.ndarray  # (P, 2) point indices whose difference is a residual of its own
    pair_sigma: np.ndarray  # (P,) pixels
    iod: float
    kind: str  # "68" | "dense"


def _targets_68(model: MorphableModel, obs: np.ndarray, face_px: float, iod: float) -> Targets:
    sigma = np.full(68, SIGMA_INNER * face_px)
    sigma[CONTOUR] = SIGMA_CONTOUR * face_px
    return Targets(obs, np.asarray(model.landmark_vertices, np.int64).copy(), sigma, contour_candidates(model),
                   np.arange(17, 68), np.zeros((0, 2), np.int64), np.zeros(0), iod, "68")


def _targets_dense(model: MorphableModel, dense_pts: np.ndarray, face_px: float, iod: float, check=None) -> Targets:
    ml = mesh_landmarks.mesh_landmarks(model, check)
    used = ml.used
    obs = dense_pts[used]
    sigma = np.full(len(used), SIGMA_DENSE * face_px)
    where = {int(k): i for i, k in enumerate(used)}
    sliding = [i for i, k in enumerate(used) if ml.sliding[k]]
    sigma[sliding] = SIGMA_CONTOUR * face_px
    sides = [1 if model.neutral[ml.vertices[used[i]], 0] > 0 else -1 for i in sliding]
    slide = slide_candidates(model, sliding, ml.vertices[used[sliding]], sides) if sliding else None
    oval = set(FACE_OVAL.tolist())
    inner = np.array([i for i, k in enumerate(used) if k not in oval], np.int64)
    pairs, psig = [], []
    for (a, b), sig in PAIRS:
        if a in where and b in where:
            pairs.append((where[a], where[b]))
            psig.append(sig * face_px)
    return Targets(obs, ml.vertices[used].copy(), sigma, slide, inner, np.array(pairs, np.int64).reshape(-1, 2),
                   np.array(psig), iod, "dense")


# ---- the solver ----------------------------------------------------------------------------
class _Problem:
    """Residuals and Jacobian for x = [r (3), t (3), a (K), w (E_active)]."""

    def __init__(self, model: MorphableModel, vertices: np.ndarray, obs: np.ndarray, sigma: np.ndarray,
                 f: float, c: np.ndarray, R_ref: np.ndarray, n_id: int, active: np.ndarray,
                 fixed_shape: bool = False, pairs: np.ndarray | None = None, pair_sigma: np.ndarray | None = None,
                 expression_prior: float | None = None, identity: np.ndarray | None = None,
                 prior_scale: np.ndarray | None = None, antagonists=None, symmetric=None):
        sel = np.asarray(vertices, np.int64)
        self.N = model.neutral[sel].astype(np.float64)
        self.Bid = model.identity_basis[:n_id, sel].astype(np.float64) if n_id else np.zeros((0, len(sel), 3))
        if identity is not None:  # identity known (a video's frames): folded into the mean
            self.N = self.N + np.tensordot(np.asarray(identity, np.float64), model.identity_basis[:len(identity), sel], 1)
        # the landmark vertices first: [active] alone would copy every vertex of every shape (14 MB)
        self.Bex = model.expression_basis[:, sel][np.asarray(active)].astype(np.float64)
        self.obs, self.sigma, self.f, self.c, self.R_ref = obs, sigma, f, c, R_ref
        self.K = 0 if fixed_shape else n_id
        self.E = 0 if fixed_shape else len(active)
        self.fixed_shape = fixed_shape
        self.shape0 = None  # (a, w) used when fixed_shape
        self.pairs = np.zeros((0, 2), np.int64) if pairs is None else pairs
        self.pair_sigma = np.zeros(0) if pair_sigma is None else pair_sigma
        lam = EXPRESSION_PRIOR if expression_prior is None else expression_prior
        self.lam = np.full(self.E, lam) * (prior_scale[active] if (prior_scale is not None and self.E) else 1.0)
        # antagonist and left/right pairs as positions among the active shapes
        pos = {int(k): i for i, k in enumerate(active)} if self.E else {}
        self.anta = np.array([(pos[a], pos[b]) for a, b in (antagonists or []) if a in pos and b in pos],
                             np.int64).reshape(-1, 2)
        self.sym = np.array([(pos[a], pos[b]) for a, b in (symmetric or []) if a in pos and b in pos],
                            np.int64).reshape(-1, 2)

    def unpack(self, x):
        r, t = x[:3], x[3:6]
        a = x[6:6 + self.K]
        w = x[6 + self.K:6 + self.K + self.E]
        return r, t, a, w

    def points(self, a, w):
        if self.fixed_shape:
            a, w = self.shape0
        P = self.N
        if len(a):
            P = P + np.tensordot(a, self.Bid[:len(a)], 1)
        if len(w):
            P = P + np.tensordot(w, self.Bex, 1)
        return P

    def rotation(self, r):
        return Rotation.from_rotvec(r).as_matrix() @ self.R_ref

    def camera_points(self, x):
        r, t, a, w = self.unpack(x)
        return self.points(a, w) @ self.rotation(r).T + t

    def residuals(self, x):
        r, t, a, w = self.unpack(x)
        Xc = self.camera_points(x)
        uv = _project(Xc, self.f, self.c)
        d = uv - self.obs
        res = (d / self.sigma[:, None]).ravel()
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        pair = ((d[i] - d[j]) / self.pair_sigma[:, None]).ravel()
        anta = ANTAGONIST_PRIOR * w[self.anta[:, 0]] * w[self.anta[:, 1]] if len(w) else np.zeros(0)
        sym = SYMMETRY_PRIOR * (w[self.sym[:, 0]] - w[self.sym[:, 1]]) if len(w) else np.zeros(0)
        return np.concatenate([res, pair, IDENTITY_PRIOR * a, self.lam * w, anta, sym])

    def jacobian(self, x):
        r, t, a, w = self.unpack(x)
        Rr = Rotation.from_rotvec(r).as_matrix()
        R = Rr @ self.R_ref
        P = self.points(a, w)
        Xc = P @ R.T + t
        n = len(P)
        iz = 1.0 / Xc[:, 2]
        # the projection's derivative: d(u, v)/dX = [[fz, 0, gx], [0, fz, gy]] per point
        fz, gx, gy = self.f * iz, -self.f * Xc[:, 0] * iz * iz, -self.f * Xc[:, 1] * iz * iz

        def project(D: np.ndarray) -> np.ndarray:
            # (k, n, 3) camera-frame displacements per parameter -> (n, 2, k) pixels; written out
            # (the projection's derivative is sparse), not einsum: 1.3 against 2.2 ms a Jacobian of
            # 410 points (measured); a video frame's fit makes ~14 of them
            return np.stack([(D[..., 0] * fz + D[..., 2] * gx).T, (D[..., 1] * fz + D[..., 2] * gy).T], 1)

        RY = Xc - t  # Rr @ R_ref @ P
        dR = -_skew(RY) @ _left_jacobian(r)  # (n, 3, 3)
        cols = [project(dR.transpose(2, 0, 1)), project(np.broadcast_to(np.eye(3)[:, None, :], (3, n, 3)))]
        if self.K:
            cols.append(project(self.Bid[:self.K] @ R.T))
        if self.E:
            cols.append(project(self.Bex @ R.T))
        J_uv = np.concatenate(cols, axis=2)  # (n, 2, P) pixels per parameter
        J_lm = (J_uv / self.sigma[:, None, None]).reshape(2 * n, -1)
        i, j = self.pairs[:, 0], self.pairs[:, 1]
        J_pair = ((J_uv[i] - J_uv[j]) / self.pair_sigma[:, None, None]).reshape(2 * len(i), J_uv.shape[2])
        nprior = self.K + self.E
        J_pr = np.zeros((nprior, 6 + nprior))
        J_pr[:self.K, 6:6 + self.K] = IDENTITY_PRIOR * np.eye(self.K)
        J_pr[self.K:, 6 + self.K:] = np.diag(self.lam) if self.E else np.zeros((0, 0))
        e0 = 6 + self.K
        J_an = np.zeros((len(self.anta) if self.E else 0, 6 + nprior))
        J_sy = np.zeros((len(self.sym) if self.E else 0, 6 + nprior))
        for row, (i, j) in enumerate(self.anta if self.E else []):
            J_an[row, e0 + i] = ANTAGONIST_PRIOR * w[j]
            J_an[row, e0 + j] = ANTAGONIST_PRIOR * w[i]
        for row, (i, j) in enumerate(self.sym if self.E else []):
            J_sy[row, e0 + i] = SYMMETRY_PRIOR
            J_sy[row, e0 + j] = -SYMMETRY_PRIOR
        return np.vstack([J_lm, J_pair, J_pr, J_an, J_sy])


def _bounds(K: int, E: int, fixed_shape: bool):
    if fixed_shape:
        K = E = 0
    lo = np.concatenate([[-np.inf] * 3, [-np.inf, -np.inf, 1.0], [-IDENTITY_BOUND] * K, [0.0] * E])
    hi = np.concatenate([[np.inf] * 6, [IDENTITY_BOUND] * K, [1.0] * E])
    return lo, hi


def active_expressions(model: MorphableModel) -> np.ndarray:
    """Indices of the expression shapes the fit estimates (see EXCLUDED_PREFIXES)."""
    return np.array([i for i, n in enumerate(model.expression_names)
                     if not n.startswith(EXCLUDED_PREFIXES)], np.int64)


def _initial_pose(model, tg: Targets, f, c, identity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rigid pose of the mean face: weak-perspective guess of the distance, then a 6-dof
    least-squares PnP from three yaw guesses (-35, 0, +35 degrees); the best one wins."""
    P = model.shape(identity, None, vertices=tg.vertices)
    inner, obs = tg.inner, tg.obs
    spread3 = np.sqrt(((P[inner, :2] - P[inner, :2].mean(0)) ** 2).sum(1).mean())
    spread2 = np.sqrt(((obs[inner] - obs[inner].mean(0)) ** 2).sum(1).mean())
    tz = f * spread3 / max(spread2, 1e-6)
    best = None
    for yaw in (0.0, -35.0, 35.0):
        R_ref = FRONTAL @ Rotation.from_euler("y", yaw, degrees=True).as_matrix()
        mc = (P[inner] @ R_ref.T).mean(0)
        xy = (obs[inner].mean(0) - c) * (tz + mc[2]) / f - mc[:2]
        x0 = np.concatenate([np.zeros(3), [xy[0], xy[1], tz]])
        prob = _Problem(model, tg.vertices[inner], obs[inner], tg.sigma[inner], f, c, R_ref, 0,
                        np.zeros(0, np.int64), fixed_shape=True, identity=identity)
        prob.shape0 = (np.zeros(0), np.zeros(0))
        lo, hi = _bounds(0, 0, True)
        sol = least_squares(prob.residuals, x0, jac=prob.jacobian, bounds=(lo, hi), method="trf",
                            x_scale="jac", max_nfev=60, tr_solver=TR_SOLVER)
        if best is None or sol.cost < best[0]:
            best = (sol.cost, prob.rotation(sol.x[:3]), sol.x[3:6].copy())
    return best[1], best[2]


def _expression_sd(prob: "_Problem", x: np.ndarray, active: np.ndarray, n_expr: int) -> np.ndarray:
    """Posterior standard deviation of each expression weight (Laplace approximation: the
    inverse of J^T J at the solution, residuals in units of their sigma). Shapes at a bound
    keep their curvature. 0 for shapes not fitted."""
    J = prob.jacobian(x)
    H = J.T @ J
    cov = np.linalg.pinv(H, hermitian=True)
    sd = np.zeros(n_expr)
    e0 = 6 + prob.K
    sd[active] = np.sqrt(np.clip(np.diag(cov)[e0:e0 + prob.E], 0, None))
    return sd


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """One controller, made at the first fit (numpy's and scipy's BLAS are loaded by then): making
    one per call (threadpool_limits) costs 1.3 ms, a video frame's fit ~100 ms (measured)."""
    return ThreadpoolController()


def _one_blas_thread(fn):
    """Run ``fn`` with BLAS held to one thread (see TR_SOLVER)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _blas_controller().limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return run


@_one_blas_thread
def fit_model(model: MorphableModel, detection: Detection, image_size: tuple[int, int], job: Job | None = None,
              n_identity: int = 50, *, fov_deg: float = DEFAULT_FOV_DEG, focal: float | None = None,
              fit_expression: bool = True, march: bool = True, max_outer: int = MAX_OUTER,
              use_dense: bool = True, identity: np.ndarray | None = None,
              expression_prior: float | None = None, start: Fit | None = None, posterior: bool = True) -> Fit:
    """Fit pose, identity and expression of ``model`` to the detection's landmarks: MediaPipe's
    dense points when the detection has them (and ``use_dense``), else the 68.

    ``image_size`` is (width, height) of the photo the landmarks are in. The camera is a
    pinhole with its principal point at the image centre and a focal length from ``focal``
    (pixels) or else ``fov_deg`` across the long side (see DEFAULT_FOV_DEG). With
    ``march=False`` the outline points keep their fixed (frontal) vertices. ``identity``
    given: it is held fixed (a video's frames after the first) and only pose and expression
    are fitted. ``start``: a fit of a neighbouring moment (the previous video frame) whose pose
    and expression the solve starts from, instead of the three-yaw pose search. ``posterior``
    False skips the weights' posterior sd (a video's frames: a third of a frame's fit). Raises :class:`FitError` when the result does not describe the landmarks.
    """
    w_img, h_img = int(image_size[0]), int(image_size[1])
    obs = np.asarray(detection.landmarks, np.float64)
    if obs.shape != (68, 2) or not np.isfinite(obs).all():
        raise FitError(f"Expected 68 finite landmarks, got an array of shape {obs.shape}.",
                       "Run face detection again; the landmark file may be damaged.")
    iod = float(np.linalg.norm(obs[42:48].mean(0) - obs[36:42].mean(0)))
    face_px = float(max(np.ptp(obs[:, 0]), np.ptp(obs[:, 1])))
    if iod < 2.0 or face_px < 10.0:
        raise FitError(f"The landmarks are degenerate (eyes {iod:.1f} px apart).",
                       "Use a photo in which the face is at least ~100 px wide.")
    dense_pts = detection.dense_points if use_dense else None
    if dense_pts is not None and (dense_pts.shape[0] < 468 or not np.isfinite(dense_pts).all()):
        raise FitError(f"Expected 478 finite dense landmarks, got an array of shape {dense_pts.shape}.",
                       "Run face detection again; the landmark file may be damaged.")
    f = float(focal) if focal else focal_for((w_img, h_img), fov_deg)
    c = np.array([w_img / 2.0, h_img / 2.0])
    fixed_id = identity is not None
    K = 0 if fixed_id else int(max(0, min(n_identity, model.n_identity)))
    active = active_expressions(model) if fit_expression else np.zeros(0, np.int64)
    E = len(active)

    def step(frac, msg):
        if job is not None:
            job.check()
            job.report(frac, msg)

    step(0.0, "Estimating head pose")
    tg = (_targets_dense(model, dense_pts, face_px, iod, job.check if job is not None else None)
          if dense_pts is not None else _targets_68(model, obs, face_px, iod))
    id0 = np.asarray(identity, np.float64) if fixed_id else None
    if start is not None:
        R, t = np.asarray(start.camera.rotation, np.float64), np.asarray(start.camera.translation, np.float64)
        w_full = np.asarray(start.expression, np.float64).copy()
        w_act = w_full[active].copy()
    else:
        R, t = _initial_pose(model, tg, f, c, id0)
        w_act = np.zeros(E)
        w_full = np.zeros(model.n_expressions)
    a = np.zeros(K)
    a_full = id0 if fixed_id else a
    vertices = tg.vertices.copy()
    solves = 0  # reported as Fit.iterations: pose/shape solves between correspondence updates
    prob = sol = None
    for outer in range(1, max(1, max_outer) + 1):
        step(0.1 + 0.85 * (outer - 1) / max(1, max_outer), f"Fitting shape and expression (pass {outer})")
        if march and tg.slide is not None:
            picks = march_contour(model, a_full, w_full, R, t, f, c, tg.slide)
            new = vertices.copy()
            for k, v in picks.items():
                new[k] = v
            if outer > 1 and np.array_equal(new, vertices):
                break
            vertices = new
        elif outer > 1:
            break
        prob = _Problem(model, vertices, tg.obs, tg.sigma, f, c, R, K, active, pairs=tg.pairs,
                        pair_sigma=tg.pair_sigma, expression_prior=expression_prior, identity=id0,
                        **(expression_priors(model) if tg.kind == "dense" else {}))
        x0 = np.concatenate([np.zeros(3), t, a, w_act])
        lo, hi = _bounds(K, E, False)
        x0 = np.clip(x0, lo, hi)
        sol = least_squares(prob.residuals, x0, jac=prob.jacobian, bounds=(lo, hi), method="trf",
                            x_scale="jac", max_nfev=100, ftol=1e-6, xtol=1e-6, tr_solver=TR_SOLVER)
        solves += 1
        r, t, a, w_act = prob.unpack(sol.x)
        R = prob.rotation(r)
        t, a, w_act = t.copy(), a.copy(), w_act.copy()
        a_full = id0 if fixed_id else a
        w_full = np.zeros(model.n_expressions)
        w_full[active] = w_act

    # final figures with the final correspondences
    P = model.shape(a_full, w_full, vertices=vertices)
    Xc = P @ R.T + t
    if not (np.isfinite(Xc).all() and (Xc[:, 2] > 1.0).all()):
        raise FitError("The face model could not be placed in front of the camera.",
                       "Use a photo with a clearly visible frontal or three-quarter face.")
    uv = _project(Xc, f, c)
    err_px = float(np.linalg.norm(uv - tg.obs, axis=1).mean())
    err_iod = err_px / iod
    if not np.isfinite(err_iod) or err_iod > MAX_ERROR_IOD:
        raise FitError(f"The face model does not match the landmarks (mean error {100 * err_iod:.0f}% "
                       "of the eye distance).",
                       "The landmarks may be wrong: use a sharper, evenly lit photo of an unoccluded face.")
    sd = _expression_sd(prob, sol.x, active, model.n_expressions) if E and posterior else np.zeros(model.n_expressions)
    step(1.0, f"Fitted: mean landmark error {err_px:.1f} px")
    cam = Camera(width=w_img, height=h_img, focal=f, rotation=R.tolist(), translation=t.tolist())
    if tg.kind == "dense":
        ml = mesh_landmarks.mesh_landmarks(model)
        full = ml.vertices.copy()
        full[ml.used] = vertices
        lm68 = [int(full[k]) if full[k] >= 0 else int(model.landmark_vertices[i]) for i, k in enumerate(TO_68)]
        dense_v = [int(v) for v in full]
    else:
        lm68, dense_v = [int(v) for v in vertices], []
    return Fit(camera=cam, identity=[float(v) for v in a_full], expression=w_full.tolist(),
               expression_names=list(model.expression_names), landmark_vertices=lm68,
               error_iod=float(err_iod), error_px=err_px, iterations=int(solves),
               points=tg.kind, dense_vertices=dense_v, expression_sd=[round(float(v), 4) for v in sd])
