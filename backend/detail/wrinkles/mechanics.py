"""Skin as a stiff film on a soft substrate: buckling wavelength, onset strain and amplitude, with
age and the skin's own relief as an imperfection (see the package docstring for the model and
its parameters' sources)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Union

import numpy as np

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


def thickness_field(spec: Thickness | FieldFn | None, size: int, default: float) -> np.ndarray:
    if spec is None:
        return np.full((size, size), np.float32(default))
    if callable(spec):
        f = np.asarray(spec(size), np.float32)
        if f.shape != (size, size):
            raise ValueError(f"field provider returned {f.shape}, expected {(size, size)}")
        return f
    return np.full((size, size), np.float32(spec))
