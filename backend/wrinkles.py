"""Expression wrinkles from skin mechanics: a film-on-substrate buckling model driven by the
surface strain of the expressed face (:mod:`backend.strain`), synthesised as a phase-coherent
stripe field in the face UV tile.

Output convention (the project's detail maps): one float32 channel, displacement along the
smooth surface's normal in **millimetres**, 0 = the smooth (blendshape) surface, positive =
outward; UV tile 0, row 0 = v = 1.

Mechanics
---------
Skin is treated as a stiff film (epidermis + dermis) bonded to a soft substrate
(hypodermis / SMAS). Under an in-plane compressive strain ε beyond the critical strain the
film buckles into sinusoidal wrinkles (Allen 1969; Chen & Hutchinson 2004; Genzer &
Groenewold 2006, "Soft matter with hard skin"):

    λ   = 2π h (E_f / 3E_s)^(1/3)          wavelength
    ε_c = ¼ (3E_s / E_f)^(2/3)              onset strain
    A   = h √(ε/ε_c − 1)                    amplitude (half peak-to-trough), ε > ε_c

(E_f, E_s plane-strain moduli.) Note λ = πh/√ε_c: the three quantities are tied, and an
onset of a few % forces λ ≈ 16–18 h.

Parameters (:class:`SkinParams`, documented there): E_f ≈ 150 kPa (in-vivo small-strain
modulus of the facial epidermis+dermis composite; published in-vivo values span ~30 kPa –
1 MPa), E_s ≈ 3 kPa (subcutaneous fat ~1–3 kPa, Geerligs 2008; Comley & Fleck 2010), ratio
50 → ε_c ≈ 3.8 %, λ ≈ 16 h. The film thickness is the *mechanically effective* bending
layer: with the full ultrasound epidermis+dermis thickness (0.6 mm eyelid … 1.5–2 mm
cheek/forehead) the model predicts λ of 1–3 cm, coarser than the spacings observed on faces
(crow's feet 2–4 mm, glabellar and nasal lines 3–6 mm, forehead lines 5–12 mm). Those
spacings are matched by an effective layer ≈ 0.3 × the full thickness (epidermis, papillary
and upper reticular dermis, the collagen-dense part that bends; the deep dermis acts as
substrate), so regional values are 0.3 × literature thicknesses: periorbital 0.22–0.3 mm,
nose 0.33, glabella 0.40, forehead 0.45, nasolabial / cheeks 0.45–0.5 mm (regional totals
after Chopra et al. 2015; approximate).

Age (years, default 35) changes the layers monotonically (:meth:`SkinParams.age_factors`): the
dermis thins by ~6 % per decade (Shuster et al. 1975) and stiffens while the substrate
softens (elastin loss, fat atrophy; Escoffier et al. 1989, Kruglikov & Scherer 2018 report
up to a 4-fold loss of wrinkling stability): the modulus ratio grows by 3 % per year
(×2.9 from 35 to 70). ε_c falls (halves by 70), λ grows slightly, and A = (λ/π)√(ε − ε_c)
grows for every ε: older skin wrinkles earlier and deeper.

Onset is smoothed by the skin's own relief acting as an imperfection of amplitude w0 (a few
µm at the wrinkle wavelength): the amplitude solves the imperfect pitchfork
a³ + (1 − x) a = x w0/h, a = A/h, x = ε/ε_c (:func:`imperfect_amplitude`), which tends to
h√(x − 1) above onset, to w0 x/(1 − x) below it, and is 0 without compression, so
wrinkles fade in over a few % of strain instead of switching on at a kink.

Mesh strain vs skin strain (``SkinParams.strain_transfer``, κ): the generic
:func:`wrinkle_field` takes the mesh's strain as the skin's (κ = 1: right for a synthetic
sheet). ICT-FaceKit's blendshapes compress the skin of the FACS regions by 15–25 % on average
(peaks 35–60 %, measured, see :data:`ICT_FACE_SKIN`) and the lower cheeks by 5–13 %;
taken as film strain, all of that would buckle into ~1 mm deep corrugations over most of the
face. The blendshape vertices are not material points (registration slides them over the
tissue) and soft tissue takes much of an in-plane shortening as thickening, so
:func:`wrinkle_map` uses κ = 0.3 (:data:`ICT_FACE_SKIN`): the onset then sits at ~13 % mesh
compression, and full-intensity AUs give peak-to-trough depths of ~0.4–2 mm at their
strongest spots (typically tenths of a mm). κ is a calibration, not a measured constant.

Existing lines (``person_detail``, mm, same UV convention): a pre-existing crease is an
imperfection of the film. Below onset an imperfection of depth w0 grows as w0/(1 − ε/ε_c)
(the classic imperfect-column amplification, capped); beyond onset the crease seeds the
buckling mode, so wrinkle troughs lock onto it (the phase solve below is pulled to φ = π on
creases) and it deepens by the capped amplification.

Pattern synthesis
-----------------
The wrinkle field is ``A(x) · g(φ(x))`` with a phase φ whose gradient on the expressed surface
is the wave vector k = (2π/λ) d̂ along the compression direction d̂ (crests run
perpendicular to the compression). In UV that is ``k_uv = (2π/λ) G d / √(dᵀ G d)`` with G
the metric of the expressed surface. The phase comes from a *stripe-pattern* solve
(Knöppel, Crane, Pinkall & Schröder 2015, "Stripe patterns on surfaces"): on a coarse UV
grid (``solve_size``, default 512, ~0.5 mm nodes) over the compressed area, a complex field
ψ minimises Σ_edges |ψ_j − T_ij ψ_i|², where T_ij advances the phase by k·Δuv and conjugates
where the line field's sign flips between nodes (4-neighbour grid edges, a real 2N×2N
system). Its smallest eigenvector (per connected area; inverse iteration) is the most
coherent wave field; because such eigenvectors can localise (tiny, with unconverged phase,
away from their least frustrated part), a few Ginzburg–Landau steps ψ ← (A + μI)⁻¹ μψ/|ψ|
(the same sparse LU) then lift it to unit modulus everywhere: smooth stripes wherever the
wave vectors are compatible, forks (phase dislocations, as real wrinkles have) where they are
not. The grid is the coarsest with ≥ 8 nodes per local wavelength (≤ ``solve_size``).
The fine map at any size then evaluates, per texel, the bilinear blend of the four nearby
nodes' predictions ψ_n·exp(i k_n·(x − x_n)) — a phase-exact upsampling, so a 1024² and a
4096² map show the same wrinkles. The blend's coherence and |ψ| fade the amplitude at forks.

The profile g(φ) is a cosine near onset and sharpens into narrow troughs and broad crests
as ε/ε_c grows (g = c − 2 sin^{2p}(φ/2), p from 1 to 2, zero mean, peak-to-trough 2), as
post-buckled films localise into creases. Seeded smooth noise varies the wavelength
(±6 %), the direction (±5° on the surface) and the depth along the crests (lognormal,
±40 %), so wrinkles come as segments of varying depth (``irregularity`` scales all three);
everything is deterministic given ``seed``.

Micro relief (pores, fine lines, band-limited skin texture) is added by
:mod:`backend.microrelief` when ``micro=True``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage

from . import facs
from .face_model import MorphableModel
from .progress import Job
from .strain import (SurfaceMesh, TexelGrid, direction_from_dir2, face_mesh, mm_per_uv, texel_grid,
                     triangle_strain, vertex_strain)

FieldFn = Callable[[int], np.ndarray]  # size -> (size, size) float32 field
Thickness = Union[float, FieldFn]


@dataclass(frozen=True)
class SkinParams:
    """Mechanical parameters of facial skin at ``age_ref`` years (see the module docstring).

    ``film_modulus_kpa``: E_f, epidermis + dermis (in-vivo facial skin, small strain:
    published 30 kPa – 1 MPa; 150 kPa chosen). ``substrate_modulus_kpa``: E_s, hypodermis /
    SMAS (adipose 1–3 kPa). Their ratio (50) sets ε_c ≈ 3.8 % and λ/h ≈ 16.
    ``thickness_mm``: effective film thickness by face region (0.3 × literature
    epidermis+dermis thickness); ``default_thickness_mm`` elsewhere.
    ``ratio_growth_per_year``: d ln(E_f/E_s)/d age; ``thinning_per_year``: d ln h / d age.
    ``strain_transfer``: fraction of the mesh's surface compression taken as skin strain
    (1 = all of it; the blendshape mesh's vertices are not strictly material points).
    ``imperfection_mm``: amplitude w0 of the skin's own relief at the wrinkle wavelength;
    it rounds the buckling bifurcation (see :func:`imperfect_amplitude`): a few µm.
    ``crease_gain_cap``: the largest factor by which an existing crease deepens.
    """

    film_modulus_kpa: float = 150.0
    substrate_modulus_kpa: float = 3.0
    thickness_mm: Mapping[str, float] = field(default_factory=lambda: {
        "crows_feet": 0.25, "eyelids": 0.22, "infraorbital": 0.30, "nose": 0.33, "glabella": 0.40,
        "forehead": 0.45,
        "nasolabial": 0.45, "lips": 0.30, "elsewhere": 0.50})
    default_thickness_mm: float = 0.45
    age_ref: float = 35.0
    ratio_growth_per_year: float = 0.03
    thinning_per_year: float = 0.006
    strain_transfer: float = 1.0
    imperfection_mm: float = 0.004
    crease_gain_cap: float = 2.5

    @property
    def modulus_ratio(self) -> float:
        return self.film_modulus_kpa / self.substrate_modulus_kpa

    def age_factors(self, age: float) -> tuple[float, float]:
        """(modulus-ratio factor, thickness factor) at ``age`` relative to ``age_ref``;
        both monotone in age (ratio up, thickness down), clamped to ages 10..100."""
        a = float(np.clip(age, 10.0, 100.0)) - self.age_ref
        return math.exp(self.ratio_growth_per_year * a), math.exp(-self.thinning_per_year * a)

    def critical_strain(self, age: float | None = None) -> float:
        r = self.modulus_ratio * (self.age_factors(age)[0] if age is not None else 1.0)
        return 0.25 * (3.0 / r) ** (2.0 / 3.0)

    def wavelength_per_thickness(self, age: float | None = None) -> float:
        r = self.modulus_ratio * (self.age_factors(age)[0] if age is not None else 1.0)
        return 2.0 * math.pi * (r / 3.0) ** (1.0 / 3.0)


DEFAULT_SKIN = SkinParams()
# ICT-FaceKit's blendshape mesh: its vertices are not material points (registration slides
# them over the tissue) and soft tissue thickens rather than buckles under much of an in-plane
# compression, so only part of the mesh's surface compression is film strain. Measured on the
# FACS shapes at full intensity: mean compressions of 15-25 % over the forehead (AU1+2),
# glabella (AU4), crow's feet (AU6), nose (AU9) and nasolabial area (AU12), peaks of 35-60 %,
# and 5-13 % over the lower cheeks. With all of it taken as film strain every such area would
# buckle with amplitudes of ~1 mm; 0.3 gives peak-to-trough depths of ~0.3-1.5 mm at full
# intensity in those regions and leaves the lower cheeks nearly smooth.
ICT_FACE_SKIN = SkinParams(strain_transfer=0.3)


def buckling(h_mm, strain, params: SkinParams = DEFAULT_SKIN, age: float = 35.0):
    """The film-on-substrate result at ``age``: (wavelength mm, critical strain, amplitude mm)
    for film thickness ``h_mm`` at the age reference (scaled by the age's thinning) and
    compressive strain ``strain`` (scaled by ``params.strain_transfer``). Arrays broadcast."""
    _, hf = params.age_factors(age)
    h = np.asarray(h_mm, np.float64) * hf
    eps_c = params.critical_strain(age)
    lam = params.wavelength_per_thickness(age) * h
    eps = np.asarray(strain, np.float64) * params.strain_transfer
    amp = h * np.sqrt(np.clip(eps / eps_c - 1.0, 0.0, None))
    return lam, eps_c, amp


def imperfect_amplitude(h_mm, x, w0_mm) -> np.ndarray:
    """Wrinkle amplitude (mm) of a film of thickness ``h_mm`` at strain ratio ``x = ε/ε_c``
    with an imperfection of amplitude ``w0_mm`` (the imperfect pitchfork):

        a³ + (1 − x) a − x w0/h = 0,   A = h a  (largest real root)

    Far below onset A ≈ w0 x/(1 − x) (the classic amplification of an imperfection); far above
    it A → h √(x − 1) (the perfect film); at onset A = (w0 h²)^(1/3) instead of a kink.
    x = 0 gives exactly 0. Newton from above (the cubic is convex for a > 0)."""
    h = np.asarray(h_mm, np.float32)
    x = np.asarray(x, np.float32)
    q = x * np.float32(w0_mm) / np.maximum(h, 1e-6)
    p = 1.0 - x
    a = np.sqrt(np.maximum(x - 1.0, 0.0)) + np.cbrt(q) + q + np.float32(1e-6)
    for _ in range(10):
        f = a * a * a + p * a - q
        a = np.maximum(a - f / np.maximum(3.0 * a * a + p, 1e-6), 0.0)
    return (a * h).astype(np.float32)


def expression_for_aus(model: MorphableModel, aus: Mapping[str, float]) -> np.ndarray:
    """Expression weights (over ``model.expression_names``) showing the Action Units ``aus``
    (``{"AU12": 0.8, "AU6L": 0.5}``), via :func:`backend.facs.weights_from_aus`."""
    return facs.weights_from_aus(model, aus)


@dataclass
class WrinkleResult:
    """``displacement`` (size, size) float32 mm (expression wrinkles + crease deepening +
    micro relief; add ``person_detail`` for the person's full detail map); ``compression``
    (size, size) float32 (principal compressive strain, 0 outside the mesh); ``mask`` (size,
    size) bool (texels the mesh covers); ``stats``: figures for humans (wavelengths,
    amplitudes, texel size, timings)."""

    displacement: np.ndarray
    compression: np.ndarray
    mask: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ helpers

def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise, unit standard deviation, float32."""
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = ndimage.gaussian_filter(n, sigma, mode="wrap")
    s = float(n.std())
    return n / (s if s > 0 else 1.0)


def _rows_bilinear(a: np.ndarray, r0: int, r1: int, size: int) -> np.ndarray:
    """Rows r0..r1 of :func:`resize_bilinear` (a, size), without making the whole map."""
    n = a.shape[0]
    cr = np.clip((np.arange(r0, r1) + 0.5) * (n / size) - 0.5, 0, n - 1)
    i0 = np.floor(cr).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = (cr - i0).astype(np.float32)[:, None]
    rows = np.asarray(a[i0], np.float32) * (1 - f) + np.asarray(a[i1], np.float32) * f  # (k, n)
    cc = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
    j0 = np.floor(cc).astype(np.int64)
    j1 = np.minimum(j0 + 1, n - 1)
    g = (cc - j0).astype(np.float32)[None, :]
    return rows[:, j0] * (1 - g) + rows[:, j1] * g


def resize_bilinear(a: np.ndarray, size: int) -> np.ndarray:
    """Resample a square (n, n[, k]) grid to (size, size[, k]) with texel centres aligned,
    edges clamped (separable linear interpolation), float32."""
    n = a.shape[0]
    if n == size:
        return np.asarray(a, np.float32).copy()
    c = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    f = (c - i0).astype(np.float32)
    a = np.asarray(a, np.float32)
    shp = (-1,) + (1,) * (a.ndim - 1)
    tmp = a[i0] * (1 - f).reshape(shp) + a[i1] * f.reshape(shp)
    shp2 = (1, -1) + (1,) * (a.ndim - 2)
    return (tmp[:, i0] * (1 - f).reshape(shp2) + tmp[:, i1] * f.reshape(shp2)).astype(np.float32)


def _field(spec: Thickness | FieldFn | None, size: int, default: float) -> np.ndarray:
    if spec is None:
        return np.full((size, size), np.float32(default))
    if callable(spec):
        f = np.asarray(spec(size), np.float32)
        if f.shape != (size, size):
            raise ValueError(f"field provider returned {f.shape}, expected {(size, size)}")
        return f
    return np.full((size, size), np.float32(spec))


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _profile(phi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Zero-mean wrinkle profile: crest at φ = 0, trough at φ = π, peak-to-trough 2.

    g = 2 (m_p − s^p) with s = sin²(φ/2) ∈ [0, 1] and m_p the mean of s^p over a period
    (Γ(p+½)/(√π Γ(p+1)): 0.5 at p = 1, 0.4244 at 1.5, 0.375 at 2; quadratic fit, error < 1e-3).
    p = 1 is a cosine; larger p gives broad crests and narrow troughs."""
    s = np.sin(0.5 * phi) ** 2
    q = p - 1.0
    mean = 0.5 - 0.1774 * q + 0.0524 * q * q
    return (2.0 * (mean - np.power(np.maximum(s, 0.0), p))).astype(np.float32)


# ------------------------------------------------------------------ coarse stripe solve

@dataclass
class _Nodes:
    n: int
    valid: np.ndarray  # (n, n) bool: node is in the solve domain
    psi: np.ndarray  # (n, n) complex64
    k: np.ndarray  # (n, n, 2) float32, rad per UV unit (du, dv)
    comp: np.ndarray  # (n, n) float32
    stats: dict


def _wave_vectors(dir_uv: np.ndarray, g: np.ndarray, lam_mm: np.ndarray) -> np.ndarray:
    """k_uv = (2π/λ) G d / sqrt(dᵀ G d) for unit UV directions d (...,2), metric g (...,3) =
    (g_uu, g_uv, g_vv) of the expressed surface (mm² per UV²), λ in mm."""
    du, dv = dir_uv[..., 0], dir_uv[..., 1]
    gd_u = g[..., 0] * du + g[..., 1] * dv
    gd_v = g[..., 1] * du + g[..., 2] * dv
    nrm = np.sqrt(np.maximum(du * gd_u + dv * gd_v, 1e-12))
    s = 2.0 * np.pi / np.maximum(lam_mm, 1e-6) / nrm
    return np.stack([gd_u * s, gd_v * s], -1).astype(np.float32)


def _rotate_in_metric(d: np.ndarray, g: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate UV directions d (...,2) by ``angle`` measured on the surface (metric g (...,3)),
    returning unit UV vectors."""
    gd_u = g[..., 0] * d[..., 0] + g[..., 1] * d[..., 1]
    gd_v = g[..., 1] * d[..., 0] + g[..., 2] * d[..., 1]
    n1 = np.sqrt(np.maximum(d[..., 0] * gd_u + d[..., 1] * gd_v, 1e-12))
    p = np.stack([-gd_v, gd_u], -1)  # G-orthogonal to d
    gp_u = g[..., 0] * p[..., 0] + g[..., 1] * p[..., 1]
    gp_v = g[..., 1] * p[..., 0] + g[..., 2] * p[..., 1]
    n2 = np.sqrt(np.maximum(p[..., 0] * gp_u + p[..., 1] * gp_v, 1e-12))
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    out = c * d / n1[..., None] + s * p / n2[..., None]
    return (out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _assemble(idx: np.ndarray, k: np.ndarray, d: np.ndarray, n: int) -> sp.csc_matrix:
    """Connection Laplacian (2N×2N real) over grid edges between valid nodes ``idx`` (n,n)
    (−1 = not in the domain). Edge i→j: ψ_j ≈ S R(ω) ψ_i, S = conj where d_i·d_j < 0."""
    rows, cols, vals = [], [], []
    N = int(idx.max()) + 1
    diag = np.zeros(N, np.float64)
    for dr, dc in ((0, 1), (1, 0)):  # right and down neighbours
        r0, r1 = slice(0, n - dr), slice(dr, n)
        c0, c1 = slice(0, n - dc), slice(dc, n)
        i = idx[r0, c0]
        j = idx[r1, c1]
        ok = (i >= 0) & (j >= 0)
        if not ok.any():
            continue
        i, j = i[ok], j[ok]
        ki, kj = k[r0, c0][ok].astype(np.float64), k[r1, c1][ok].astype(np.float64)
        di, dj = d[r0, c0][ok], d[r1, c1][ok]
        s = np.where(np.einsum("ij,ij->i", di, dj) >= 0, 1.0, -1.0)
        duv = np.array([dc / n, -dr / n])  # moving +col is +u, +row is -v
        omega = 0.5 * ((ki + s[:, None] * kj) @ duv)
        w = 1.0
        c, sn = np.cos(omega), np.sin(omega)
        # Q = S R, R = [[c, -s], [s, c]], S = diag(1, s)
        q00, q01, q10, q11 = c, -sn, s * sn, s * c
        diag[i] += w
        diag[j] += w
        # A_ji -= w Q, A_ij -= w Q^T
        for (a, b, q) in ((0, 0, q00), (0, 1, q01), (1, 0, q10), (1, 1, q11)):
            rows.append(2 * j + a)
            cols.append(2 * i + b)
            vals.append(-w * q)
            rows.append(2 * i + b)
            cols.append(2 * j + a)
            vals.append(-w * q)
    dr_ = np.repeat(np.arange(N) * 2, 2) + np.tile([0, 1], N)
    rows.append(dr_)
    cols.append(dr_)
    vals.append(np.repeat(diag, 2))
    A = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(2 * N, 2 * N))
    return A.tocsc()


def _node_fields(mesh: SurfaceMesh, deformed: np.ndarray, n: int, thickness: Thickness,
                 params: SkinParams, age: float, job_check):
    """Strain, direction line field, expressed metric and wavelength on the n×n solve grid."""
    grid = texel_grid(mesh, n, job_check)
    vs = vertex_strain(mesh, triangle_strain(mesh, deformed))
    comp = np.zeros(n * n, np.float32)
    comp[grid.flat] = np.clip(grid.interp(mesh, vs.compression), 0.0, None)
    dir2 = np.zeros((n * n, 2), np.float32)
    dir2[grid.flat] = grid.interp(mesh, vs.dir2)
    gdef = np.zeros((n * n, 3), np.float32)
    gdef[grid.flat] = grid.interp(mesh, vs.g_def)
    h = _field(thickness, n, params.default_thickness_mm)
    lam, eps_c, _ = buckling(h, 0.0, params, age)
    return (grid.mask, comp.reshape(n, n), dir2.reshape(n, n, 2), gdef.reshape(n, n, 3),
            lam.astype(np.float32), eps_c)


NODES_PER_WAVELENGTH = 8.0  # solve-grid resolution: nodes per local wavelength (95th percentile)
INVERSE_ITERATIONS = 12  # inverse-iteration steps of the stripe eigenproblem
GL_ITERATIONS = 12  # Ginzburg-Landau relaxation steps after it
GL_SCREEN = 0.02  # μ: healing length ~1/√μ ≈ 7 nodes (about one wavelength)
CREASE_PULL = 0.5  # weight of a full-strength crease node's pull towards φ = π


def _solve_stripes(mesh: SurfaceMesh, deformed: np.ndarray, n_max: int, thickness: Thickness,
                   params: SkinParams, age: float, rng: np.random.Generator,
                   crease_fn: Optional[Callable[[int], np.ndarray]],
                   job_check: Optional[Callable[[], None]], irregularity: float = 1.0) -> _Nodes:
    """Phase field ψ on the solve grid (see the module docstring). The grid is the coarsest
    (≥ 64, ≤ ``n_max``) with NODES_PER_WAVELENGTH nodes per local wavelength over the
    compressed area."""
    n = int(n_max)
    covered, comp, dir2, gdef, lam, eps_c = _node_fields(mesh, deformed, n, thickness, params, age, job_check)
    hot = covered & (comp * params.strain_transfer > 0.9 * eps_c)
    if hot.any():
        # local surface mm per UV unit: (det G)^(1/4)
        mmuv_local = np.sqrt(np.sqrt(np.maximum(gdef[..., 0] * gdef[..., 2] - gdef[..., 1] ** 2, 1e-12)))
        need = float(np.percentile(mmuv_local[hot] / lam[hot], 95)) * NODES_PER_WAVELENGTH
        n_new = int(np.clip(16 * math.ceil(need / 16.0), 64, n_max))
        if n_new < n:
            n = n_new
            covered, comp, dir2, gdef, lam, eps_c = _node_fields(mesh, deformed, n, thickness, params, age,
                                                                  job_check)
    crease = crease_fn(n) if crease_fn is not None else None

    # seeded irregularity: direction (±5° on the surface) and wavelength (±6 %) jitter,
    # correlated over ~1.5 wavelengths (faster changes would only tear the stripes apart)
    mm_node = mm_per_uv(mesh) / n
    lam_med = float(np.median(lam[covered])) if covered.any() else float(np.median(lam))
    sig = max(1.5 * lam_med / mm_node, 1.0)
    dtheta = np.deg2rad(5.0) * irregularity * smooth_noise((n, n), sig, rng)
    lam = lam * (1.0 + 0.06 * irregularity * smooth_noise((n, n), sig, rng))
    d = _rotate_in_metric(direction_from_dir2(dir2), gdef, dtheta)
    k = _wave_vectors(d, gdef, lam)

    eps = comp * params.strain_transfer
    active = covered & (eps > 0.7 * eps_c)
    if crease is not None:
        active |= covered & (crease > 0) & (eps > 0.3 * eps_c)
    stats: dict[str, Any] = {"solve_size": n, "solve_mm_per_node": round(mm_node, 3)}
    psi = np.zeros((n, n), np.complex64)
    if not active.any():
        stats["solve_nodes"] = 0
        return _Nodes(n, active, psi, k, comp, stats)
    # grow the domain by about one wavelength so waves fade in smoothly
    lam_nodes = float(np.median(lam[active])) / mm_node
    grow = int(max(2, round(lam_nodes)))
    domain = ndimage.binary_dilation(active, iterations=grow) & covered
    labels, ncomp = ndimage.label(domain, structure=np.ones((3, 3)))
    idx = np.full((n, n), -1, np.int64)
    N = int(domain.sum())
    idx[domain] = np.arange(N)
    comp_of = labels[domain] - 1  # component of each unknown node
    stats.update(solve_nodes=N, solve_components=int(ncomp),
                 solve_nodes_per_wavelength=round(lam_nodes, 2))
    if job_check:
        job_check()
    A = _assemble(idx, k.astype(np.float64), d, n)
    # one factorisation of the screened operator K = A + μI serves both steps:
    # (1) inverse iteration towards the smallest eigenvector (the most coherent wave field);
    # (2) Ginzburg-Landau relaxation z <- K⁻¹ μ z/|z|: the eigenvector can be localised (tiny,
    #     with unconverged phase, far from its least frustrated area); this lifts it to unit
    #     modulus everywhere, so its phase heals into smooth stripes with isolated forks.
    mu = GL_SCREEN
    K = (A + mu * sp.identity(2 * N, format="csc")).tocsc()
    lu = spla.splu(K, permc_spec="MMD_AT_PLUS_A")

    def normalise(x):
        z = x[0::2] + 1j * x[1::2]
        nrm = np.sqrt(np.bincount(comp_of, np.abs(z) ** 2, minlength=ncomp) /
                      np.maximum(np.bincount(comp_of, minlength=ncomp), 1))
        z = z / np.maximum(nrm[comp_of], 1e-30)
        out = np.empty(2 * N)
        out[0::2], out[1::2] = z.real, z.imag
        return out, z

    x = rng.standard_normal(2 * N)
    x, z = normalise(x)
    for it in range(INVERSE_ITERATIONS):
        x, z = normalise(lu.solve(x))
        if job_check:
            job_check()
    target = None
    if crease is not None and (crease[domain] > 0).any():
        # pull troughs (φ = π) onto existing creases: rotate each component's global phase to
        # fit the creases best, then relax with a data term: (K + W) z = μ z/|z| + W t, t = −1.
        w = crease[domain].astype(np.float64)
        fit = np.bincount(comp_of, (w * (-np.conj(z))).real, minlength=ncomp) + \
            1j * np.bincount(comp_of, (w * (-np.conj(z))).imag, minlength=ncomp)
        rot = np.where(np.abs(fit) > 0, fit / np.maximum(np.abs(fit), 1e-30), 1.0)
        z = z * rot[comp_of]
        W = np.repeat(w * CREASE_PULL, 2)
        lu = spla.splu((K + sp.diags(W)).tocsc(), permc_spec="MMD_AT_PLUS_A")
        target = np.zeros(2 * N)
        target[0::2] = -W[0::2]
        stats["crease_nodes"] = int((w > 0).sum())
    for it in range(GL_ITERATIONS):
        u = z / np.maximum(np.abs(z), 1e-30)
        rhs = np.empty(2 * N)
        rhs[0::2], rhs[1::2] = mu * u.real, mu * u.imag
        if target is not None:
            rhs += target
        x = lu.solve(rhs)
        z = x[0::2] + 1j * x[1::2]
        if job_check:
            job_check()
    psi[domain] = z.astype(np.complex64)
    return _Nodes(n, domain, psi, k, comp, stats)


# ------------------------------------------------------------------ fine synthesis

def _evaluate_phase(nodes: _Nodes, rows: np.ndarray, cols: np.ndarray, size: int):
    """Phase-exact upsampling at texels (rows, cols) of a size² map: (phase, coherence)."""
    n = nodes.n
    yc = (rows + 0.5) * (n / size) - 0.5
    xc = (cols + 0.5) * (n / size) - 0.5
    r0 = np.floor(yc).astype(np.int64)
    c0 = np.floor(xc).astype(np.int64)
    fy = (yc - r0).astype(np.float32)
    fx = (xc - c0).astype(np.float32)
    corners = ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx))
    ws, ks, ps, dus, dvs = [], [], [], [], []
    for dr, dc, w in corners:
        rr = np.clip(r0 + dr, 0, n - 1)
        cc = np.clip(c0 + dc, 0, n - 1)
        ok = nodes.valid[rr, cc]
        ws.append(np.where(ok, w, 0.0).astype(np.float32))
        ks.append(nodes.k[rr, cc])
        ps.append(nodes.psi[rr, cc])
        # texel minus node, in UV (u right, v up)
        dus.append(((xc - (c0 + dc)) / n).astype(np.float32))
        dvs.append((-(yc - (r0 + dr)) / n).astype(np.float32))
    W = np.stack(ws)
    ref = np.argmax(W, axis=0)
    kref = np.take_along_axis(np.stack(ks), ref[None, :, None], 0)[0]
    z = np.zeros(len(rows), np.complex64)
    mag = np.zeros(len(rows), np.float32)
    for w, kk, p, du, dv in zip(ws, ks, ps, dus, dvs):
        flip = (kk[:, 0] * kref[:, 0] + kk[:, 1] * kref[:, 1]) < 0
        p = np.where(flip, np.conj(p), p)
        kx = np.where(flip, -kk[:, 0], kk[:, 0])
        ky = np.where(flip, -kk[:, 1], kk[:, 1])
        adv = kx * du + ky * dv
        z += (w * p * np.exp(1j * adv)).astype(np.complex64)
        mag += w * np.abs(p)
    coherence = np.abs(z) / np.maximum(mag, 1e-12)
    total_w = W.sum(0)
    return np.angle(z).astype(np.float32), (coherence * np.clip(total_w, 0, 1)).astype(np.float32), \
        (mag / np.maximum(total_w, 1e-12)).astype(np.float32)


def wrinkle_field(mesh: SurfaceMesh, deformed: np.ndarray, size: int = 1024, *, age: float = 35.0,
                  thickness: Thickness = DEFAULT_SKIN.default_thickness_mm,
                  params: SkinParams = DEFAULT_SKIN, person_detail: Optional[np.ndarray] = None,
                  seed: int = 0, job: Optional[Job] = None, micro: bool = False,
                  micro_density: Optional[FieldFn] = None, micro_direction: Optional[np.ndarray] = None,
                  solve_size: int = 512, grid: Optional[TexelGrid] = None,
                  irregularity: float = 1.0) -> WrinkleResult:
    """Expression wrinkles of any UV-mapped mesh (see the module docstring).

    ``mesh``: the rest (neutral) surface with UVs; ``deformed``: (V,3) vertices of the
    expressed one. ``thickness``: effective film thickness in mm at the reference age, a
    number or a function ``size -> (size, size) field``. ``person_detail``: the person's
    existing detail map (mm, (s, s) any s, same UV convention). ``micro``: add micro relief
    (``micro_density``: pores per cm² field provider; ``micro_direction``: optional
    (m, m, 2) UV line field the fine lines follow). ``irregularity`` scales the seeded
    jitter of direction, wavelength and depth (0: a perfectly regular pattern; 1: natural).
    ``solve_size``: the largest stripe-solve grid (it is chosen from the wavelengths, not from
    ``size``, so maps of every size show the same wrinkles). ``grid``: a texel table of
    ``mesh`` at ``size`` to reuse. Returns a :class:`WrinkleResult`.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    clock = [t_start]
    size = int(size)
    if size < 8:
        raise ValueError("size must be at least 8")
    check = job.check if job is not None else None

    def step(name: str, frac: float, msg: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now
        if job is not None:
            job.report(frac, msg)

    if job is not None:
        job.report(0.0, "Measuring skin strain")
    ss = np.random.SeedSequence(int(seed))
    rng_solve, rng_amp, rng_micro = (np.random.default_rng(s) for s in ss.spawn(3))
    deformed = np.asarray(deformed, np.float64)
    n = int(max(solve_size, 64))  # the solve grid does not depend on the map size

    crease_fn = None
    pd = None
    if person_detail is not None:
        pd = np.asarray(person_detail, np.float32)
        if pd.ndim != 2 or pd.shape[0] != pd.shape[1]:
            raise ValueError("person_detail must be a square (s, s) map")
        mmuv = mm_per_uv(mesh)
        crease_fn = lambda m: _crease_weights(pd, m, mmuv)  # noqa: E731

    nodes = _solve_stripes(mesh, deformed, n, thickness, params, age, rng_solve, crease_fn, check,
                           float(irregularity))
    n = nodes.n
    step("solve", 0.35, "Synthesising wrinkles")

    # fine fields
    own_grid = grid is None or grid.size != size
    grid = texel_grid(mesh, size, check) if own_grid else grid
    vs = vertex_strain(mesh, triangle_strain(mesh, deformed))
    comp = np.zeros(size * size, np.float32)
    comp[grid.flat] = np.clip(grid.interp(mesh, vs.compression), 0.0, None)
    comp = comp.reshape(size, size)
    mask = grid.mask
    if own_grid:
        del grid  # the 4096² texel table is the biggest thing held; only the mask is needed now
    h_n = _field(thickness, n, params.default_thickness_mm)
    mm_node = mm_per_uv(mesh) / n
    lam_n, eps_c, _ = buckling(h_n, 0.0, params, age)
    # depth varies along the crests: lognormal, median 1, ~±40 %, correlation ~2 wavelengths
    amp_noise_n = np.exp(0.4 * float(irregularity) * smooth_noise((n, n), max(2.0 * float(np.median(lam_n)) / mm_node, 1.0), rng_amp))
    disp = np.zeros((size, size), np.float32)
    _, hf = params.age_factors(age)
    h_n = h_n * np.float32(hf)
    chunk = max(1, (1 << 19) // size)
    amp_max = 0.0
    for r0 in range(0, size, chunk):
        r1 = min(size, r0 + chunk)
        x = comp[r0:r1].ravel() * np.float32(params.strain_transfer / eps_c)
        h = _rows_bilinear(h_n, r0, r1, size).ravel()
        amp = imperfect_amplitude(h, x, params.imperfection_mm)
        live = np.flatnonzero((amp > 1e-4) & (x > 0.25) & mask[r0:r1].ravel())
        if len(live):
            rr = (live // size + r0).astype(np.int64)
            cc = (live % size).astype(np.int64)
            phase, coh, mag = _evaluate_phase(nodes, rr, cc, size)
            p = 1.0 + 0.5 * np.clip(x[live] - 1.0, 0.0, 2.0)
            a_live = amp[live] * _rows_bilinear(amp_noise_n, r0, r1, size).ravel()[live]
            amp_max = max(amp_max, float(a_live.max()))
            out = np.zeros(len(x), np.float32)
            # fade at forks: the blend's coherence drops where the nodes disagree, and the
            # relaxed field's modulus (≈ 1 elsewhere) dips over a healing length around them
            fade = _smoothstep(0.25, 0.75, coh) * _smoothstep(0.15, 0.7, mag)
            out[live] = a_live * _profile(phase, p) * fade
            disp[r0:r1] = out.reshape(r1 - r0, size)
        if check:
            check()
        if job is not None:
            job.report(0.35 + 0.35 * r1 / size, "Synthesising wrinkles")
    step("synthesis", 0.7, "Deepening existing lines")

    stats: dict[str, Any] = dict(nodes.stats)
    if pd is not None:
        deep = _crease_deepening(pd, comp, eps_c, params, mm_per_uv(mesh))
        disp += deep
        stats["crease_deepening_min_mm"] = round(float(deep.min()), 4)
    disp[~mask] = 0.0
    wrinkle_rms = float(np.sqrt(np.mean(disp[mask] ** 2))) if mask.any() else 0.0
    step("creases", 0.75, "Adding skin micro relief")
    if micro:
        from . import microrelief

        mr = microrelief.micro_relief(mesh, size, mask=mask, seed=int(rng_micro.integers(1 << 31)),
                                      age=age, density=micro_density, direction=micro_direction,
                                      job=job, progress=(0.75, 0.98))
        disp += mr
        stats["micro_rms_mm"] = round(float(np.sqrt(np.mean(mr[mask] ** 2))), 5)
        del mr
    step("micro", 1.0, "Done")
    mmuv = mm_per_uv(mesh)
    lam_all, _, _ = buckling(_field(thickness, n, params.default_thickness_mm), 0.0, params, age)
    live_n = nodes.comp * params.strain_transfer > eps_c
    stats.update(
        size=size, age=float(age), seed=int(seed), critical_strain=round(eps_c, 4),
        mm_per_texel=round(mmuv / size, 5),
        wavelength_mm_median=round(float(np.median(lam_all[live_n])) if live_n.any() else float(np.median(lam_all)), 3),
        max_compression=round(float(comp.max()), 4),
        wrinkle_amplitude_max_mm=round(amp_max, 4), wrinkle_rms_mm=round(wrinkle_rms, 5),
        wrinkled_fraction=round(float((comp * params.strain_transfer > eps_c)[mask].mean()), 4),
        min_mm=round(float(disp[mask].min()), 4) if mask.any() else 0.0,
        max_mm=round(float(disp[mask].max()), 4) if mask.any() else 0.0,
        timings=timings, seconds=round(time.perf_counter() - t_start, 3))
    return WrinkleResult(disp, comp, mask, stats)


def _crease_weights(pd: np.ndarray, n: int, mmuv: float) -> np.ndarray:
    """Crease strength (0..1) on the n×n solve grid from a detail map (mm): how far the map
    dips below its ~3 mm local mean beyond CREASE_MIN_MM, relative to 0.05 mm."""
    s = pd.shape[0]
    if s > n:
        # keep thin creases: a minimum over each node's footprint, then resample
        small = resize_bilinear(ndimage.minimum_filter(pd, size=int(math.ceil(s / n))), n)
    elif s < n:
        small = resize_bilinear(pd, n)
    else:
        small = pd
    sig = max(3.0 / (mmuv / n), 1.0)
    hp = small - ndimage.gaussian_filter(small, sig, mode="nearest")
    return np.clip((-hp - CREASE_MIN_MM) / 0.05, 0.0, 1.0).astype(np.float32)


CREASE_SCALE_MM = 1.5  # a crease is relief narrower than this (the map minus its local mean)
CREASE_MIN_MM = 0.015  # shallower relief (pores, fine lines) does not count as a crease


def _crease_deepening(pd: np.ndarray, comp: np.ndarray, eps_c: float, params: SkinParams,
                      mmuv: float) -> np.ndarray:
    """Extra displacement (size², mm) of existing creases under compression: an imperfection
    of depth w0 grows to w0/(1 − ε/ε_c) below onset, capped at ``crease_gain_cap`` (and held
    there beyond onset). Only the crease part of ``pd`` deepens: its relief below the local
    mean (Gaussian, σ = CREASE_SCALE_MM) beyond CREASE_MIN_MM."""
    size = comp.shape[0]
    d = pd if pd.shape[0] == size else resize_bilinear(pd, size)
    sig = max(CREASE_SCALE_MM / (mmuv / size), 1.0)
    local = d - ndimage.gaussian_filter(d, sig, mode="nearest")
    crease = np.minimum(local + np.float32(CREASE_MIN_MM), 0.0)
    x = np.clip(comp * params.strain_transfer / eps_c, 0.0, None)
    cap = params.crease_gain_cap
    gain = np.where(x < 1.0, 1.0 / np.maximum(1.0 - x, 1.0 / cap), cap)
    gain = np.minimum(gain, cap)
    return (crease * (gain - 1.0)).astype(np.float32)


# ------------------------------------------------------------------ the face model

def face_thickness(model: MorphableModel, params: SkinParams = ICT_FACE_SKIN) -> FieldFn:
    """Regional effective film thickness (mm at the reference age) as a field provider."""
    from . import face_regions

    def f(size: int) -> np.ndarray:
        return face_regions.smooth_field(dict(params.thickness_mm), model, size,
                                         params.default_thickness_mm, feather_mm=10.0)

    return f


def wrinkle_map(model: MorphableModel, identity: Optional[np.ndarray], expression: np.ndarray,
                size: int = 4096, age: float = 35.0, person_detail: Optional[np.ndarray] = None,
                seed: int = 0, job: Optional[Job] = None, micro: bool = True,
                params: SkinParams = ICT_FACE_SKIN, solve_size: int = 512,
                irregularity: float = 1.0) -> WrinkleResult:
    """Expression-wrinkle displacement map (mm) of the face UV tile for ``expression``
    (weights over ``model.expression_names``) on the face of ``identity`` at ``age`` years.

    Deterministic given ``seed``. ``person_detail``: the person's detail map (mm, square, any
    size, UV tile 0): its creases deepen and attract wrinkle troughs. ``micro``: add pores and
    fine skin relief (:mod:`backend.microrelief`)."""
    expression = np.asarray(expression, np.float64).ravel()
    if expression.shape[0] != model.n_expressions:
        raise ValueError(f"expected {model.n_expressions} expression weights, got {expression.shape[0]}")
    mesh = face_mesh(model, identity)
    deformed = model.shape(identity, expression)
    density = direction = None
    if micro:
        from . import microrelief

        density = microrelief.face_pore_density(model)
        direction = microrelief.face_line_direction(model, identity)
    return wrinkle_field(mesh, deformed, size, age=age, thickness=face_thickness(model, params),
                         params=params, person_detail=person_detail, seed=seed, job=job, micro=micro,
                         micro_density=density, micro_direction=direction, solve_size=solve_size,
                         irregularity=irregularity)
