"""The wrinkle map: amplitude from the buckling model times a profile of the solved phase, existing
creases deepened, micro relief added; on any UV-mapped mesh (:func:`wrinkle_field`) or on the
morphable model's face tile (:func:`wrinkle_map`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np
from scipy import ndimage

from ...core.imaging import resize_bilinear, resize_bilinear_rows, smooth_noise, smoothstep
from ...core.progress import Job
from ...models import facs
from ...models import regions as face_regions
from ...models.morphable import MorphableModel
from .. import microrelief
from ..strain import SurfaceMesh, TexelGrid, face_mesh, mm_per_uv, texel_grid, triangle_strain, vertex_strain
from .mechanics import (
    DEFAULT_SKIN,
    ICT_FACE_SKIN,
    FieldFn,
    SkinParams,
    Thickness,
    buckling,
    imperfect_amplitude,
    thickness_field,
)
from .stripes import evaluate_phase, solve_stripes


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


def _profile(phi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Zero-mean wrinkle profile: crest at φ = 0, trough at φ = π, peak-to-trough 2.

    g = 2 (m_p − s^p) with s = sin²(φ/2) ∈ [0, 1] and m_p the mean of s^p over a period
    (Γ(p+½)/(√π Γ(p+1)): 0.5 at p = 1, 0.4244 at 1.5, 0.375 at 2; quadratic fit, error < 1e-3).
    p = 1 is a cosine; larger p gives broad crests and narrow troughs."""
    s = np.sin(0.5 * phi) ** 2
    q = p - 1.0
    mean = 0.5 - 0.1774 * q + 0.0524 * q * q
    return (2.0 * (mean - np.power(np.maximum(s, 0.0), p))).astype(np.float32)


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

    nodes = solve_stripes(mesh, deformed, n, thickness, params, age, rng_solve, crease_fn, check,
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
    h_n = thickness_field(thickness, n, params.default_thickness_mm)
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
        h = resize_bilinear_rows(h_n, r0, r1, size).ravel()
        amp = imperfect_amplitude(h, x, params.imperfection_mm)
        live = np.flatnonzero((amp > 1e-4) & (x > 0.25) & mask[r0:r1].ravel())
        if len(live):
            rr = (live // size + r0).astype(np.int64)
            cc = (live % size).astype(np.int64)
            phase, coh, mag = evaluate_phase(nodes, rr, cc, size)
            p = 1.0 + 0.5 * np.clip(x[live] - 1.0, 0.0, 2.0)
            a_live = amp[live] * resize_bilinear_rows(amp_noise_n, r0, r1, size).ravel()[live]
            amp_max = max(amp_max, float(a_live.max()))
            out = np.zeros(len(x), np.float32)
            # fade at forks: the blend's coherence drops where the nodes disagree, and the
            # relaxed field's modulus (≈ 1 elsewhere) dips over a healing length around them
            fade = smoothstep(0.25, 0.75, coh) * smoothstep(0.15, 0.7, mag)
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
        mr = microrelief.micro_relief(mesh, size, mask=mask, seed=int(rng_micro.integers(1 << 31)),
                                      age=age, density=micro_density, direction=micro_direction,
                                      job=job, progress=(0.75, 0.98))
        disp += mr
        stats["micro_rms_mm"] = round(float(np.sqrt(np.mean(mr[mask] ** 2))), 5)
        del mr
    step("micro", 1.0, "Done")
    mmuv = mm_per_uv(mesh)
    lam_all, _, _ = buckling(thickness_field(thickness, n, params.default_thickness_mm), 0.0, params, age)
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


def face_thickness(model: MorphableModel, params: SkinParams = ICT_FACE_SKIN) -> FieldFn:
    """Regional effective film thickness (mm at the reference age) as a field provider."""
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
        density = microrelief.face_pore_density(model)
        direction = microrelief.face_line_direction(model, identity)
    return wrinkle_field(mesh, deformed, size, age=age, thickness=face_thickness(model, params),
                         params=params, person_detail=person_detail, seed=seed, job=job, micro=micro,
                         micro_density=density, micro_direction=direction, solve_size=solve_size,
                         irregularity=irregularity)
