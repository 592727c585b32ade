"""Skin micro relief: pores, fine lines and band-limited texture, in millimetres.

Same map convention as :mod:`backend.wrinkles` (displacement along the normal, mm, UV tile,
row 0 = v = 1). Sizes are physical: every length is in mm on the surface and converted to
texels with the mesh's own scale (``mm_per_uv``: sqrt(surface area / UV area) of the mesh,
~296 mm per UV unit on ICT-FaceKit's face tile: 0.072 mm per texel at 4096², 0.29 mm at
1024²; the local scale varies ~±40 % over the face, which pore sizes follow and the FFT
textures, designed at the median scale, do not).

Components (literature ranges; Piérard 2003, Limbert & Kuhl 2018, Flament et al. 2015):

pores
    dimples of depth 0.02–0.05 mm and radius 0.04–0.12 mm (openings 0.08–0.25 mm), Poisson
    distributed with a regional density (per cm²; :data:`PORE_DENSITY_PER_CM2`): ~400 on the
    nose, ~250 on cheeks, nasolabial area and chin, ~200 on the forehead and glabella, ~80
    around the eyes, none on the lips. Positions come from a fixed UV lattice (2048 cells
    per UV unit), so the same seed gives the same pores at every map size.
fine lines
    the primary lines of the skin microrelief: V-shaped furrows ~0.02–0.04 mm deep between
    flat plateaus 0.4–1.6 mm across, elongated along the relaxed-skin-tension direction
    (here: parallel to the crests of the expression wrinkles, i.e. perpendicular to the
    dominant compression over all expression shapes). They are the zero crossings of
    anisotropic band-pass noise (min(|n|, 1.2)), which join into the polygonal skin network;
    steered per texel between four orientations.
texture
    isotropic band-limited noise, wavelengths 0.15–0.6 mm, RMS 4 µm.

Lines and texture deepen with age (+1.5 % per year after 35, −1 % per year before).
Above 2048² (:data:`NOISE_TILE`) their noise is made at 2048² and repeats (every 148 mm at
4096²): a 4096² map's micro relief in ~0.8 s instead of ~2.7 s, with the same statistics.
Content finer than the map's Nyquist limit is left out, so small maps simply hold less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import scipy.fft as sfft

from ..core.imaging import resize_bilinear
from ..core.progress import Job
from ..models import regions as face_regions
from ..models.morphable import MorphableModel
from .strain import (
    SurfaceMesh,
    TexelGrid,
    direction_from_dir2,
    face_mesh,
    mm_per_uv,
    texel_grid,
    triangle_strain,
    vertex_strain,
)

PORE_DENSITY_PER_CM2 = {
    "nose": 400.0, "nasolabial": 260.0, "elsewhere": 250.0, "infraorbital": 180.0,
    "forehead": 200.0, "glabella": 200.0, "crows_feet": 80.0, "eyelids": 30.0, "lips": 0.0,
}
DEFAULT_PORE_DENSITY_PER_CM2 = 150.0  # temples, jaw, neck, ears within the face tile
PORE_LATTICE = 2048  # candidate cells per UV unit (resolution independent)
# Fine lines and texture are periodic noise; above this size they are made at this size and
# repeat (at 4096² every 2048 texels, 148 mm on the face tile: a 0.4-1.6 mm line network that
# repeats a face's width away, under other steering and other pores), a quarter of the work.
# Pores are placed over the whole tile and never repeat.
NOISE_TILE = 2048
WEIGHT_BLOCK = 4  # above NOISE_TILE the steering weights are held over 4 x 4 texels (0.3 mm)


@dataclass(frozen=True)
class MicroParams:
    pore_depth_mm: tuple[float, float] = (0.02, 0.05)
    pore_radius_mm: tuple[float, float] = (0.04, 0.12)
    line_depth_mm: float = 0.008  # RMS of the line relief (furrows reach ~3× deeper)
    line_wavelength_mm: tuple[float, float] = (0.4, 1.6)
    line_angular_width_deg: float = 35.0  # spectral spread around the across-line direction
    texture_rms_mm: float = 0.004
    texture_wavelength_mm: tuple[float, float] = (0.15, 0.6)
    age_ref: float = 35.0


DEFAULT_MICRO = MicroParams()


def age_gain(age: float, ref: float = 35.0) -> float:
    a = float(np.clip(age, 10.0, 100.0)) - ref
    return float(1.0 + (0.015 * a if a > 0 else 0.01 * a))


def texel_size_mm(mesh: SurfaceMesh, size: int) -> dict[str, float]:
    """Millimetres per texel of a size² map of ``mesh``: overall (sqrt of area ratio) and
    the spread of the local value over the mesh's triangles (area weighted percentiles)."""
    ts = triangle_strain(mesh, mesh.vertices)
    ok = ts.valid & (ts.area_uv > 0)
    local = np.sqrt(ts.area_rest[ok] / ts.area_uv[ok]) / size
    w = ts.area_rest[ok]
    order = np.argsort(local)
    cw = np.cumsum(w[order]) / w.sum()

    def pct(q):
        return float(local[order][np.searchsorted(cw, q)])

    return {"mean": mm_per_uv(mesh) / size, "p05": pct(0.05), "p50": pct(0.5), "p95": pct(0.95)}


def _local_mm_per_uv(mesh: SurfaceMesh, n: int, grid: Optional[TexelGrid] = None) -> np.ndarray:
    """(n, n) local surface mm per UV unit ((det G)^(1/4) of the rest metric), 0 off the mesh."""
    grid = grid if grid is not None and grid.size == n else texel_grid(mesh, n)
    vs = vertex_strain(mesh, triangle_strain(mesh, mesh.vertices))
    g = grid.interp(mesh, vs.g_rest)
    out = np.zeros(n * n, np.float32)
    out[grid.flat] = np.sqrt(np.sqrt(np.maximum(g[:, 0] * g[:, 2] - g[:, 1] ** 2, 0.0)))
    return out.reshape(n, n)


# ------------------------------------------------------------------ pores

def _pores(mesh: SurfaceMesh, size: int, rng: np.random.Generator, density: Optional[Callable[[int], np.ndarray]],
           params: MicroParams, mmuv_n: np.ndarray) -> np.ndarray:
    n = mmuv_n.shape[0]
    L = PORE_LATTICE
    dens = density(n) if density is not None else np.full((n, n), DEFAULT_PORE_DENSITY_PER_CM2, np.float32)
    dens = np.where(mmuv_n > 0, dens, 0.0).astype(np.float32)
    # accept probability per lattice cell: density (per mm²) × the cell's surface area (mm²)
    cell_r = (np.arange(L) + 0.5) * (n / L) - 0.5
    ci = np.clip(np.round(cell_r), 0, n - 1).astype(np.int64)
    prob = (dens[np.ix_(ci, ci)] / 100.0) * (mmuv_n[np.ix_(ci, ci)] / L) ** 2  # (L, L), row 0 = top
    u_rand = rng.random((L, L), dtype=np.float32)
    jitter = rng.random((2, L, L), dtype=np.float32)
    rr, cc = np.nonzero(u_rand < prob)
    if not len(rr):
        return np.zeros((size, size), np.float32)
    jr, jc = jitter[0, rr, cc], jitter[1, rr, cc]
    del u_rand, jitter, prob
    k = len(rr)
    prng = np.random.default_rng(rng.integers(1 << 62))
    depth = prng.uniform(*params.pore_depth_mm, k).astype(np.float32)
    radius = np.exp(prng.uniform(np.log(params.pore_radius_mm[0]), np.log(params.pore_radius_mm[1]), k)).astype(np.float32)
    # pore centres in output texel coordinates (x = column, y = row; centres on integers)
    x = (cc + jc) * (size / L) - 0.5
    y = (rr + jr) * (size / L) - 0.5
    mm_tex = mmuv_n[ci[rr], ci[cc]] / size  # local mm per texel at each pore
    r_tex = radius / np.maximum(mm_tex, 1e-6)
    r_eff = np.maximum(r_tex, 0.75)  # footprint at least ~a texel: keep volume, lower depth
    d_eff = depth * (r_tex / r_eff) ** 2
    out = np.zeros(size * size, np.float32)
    half = np.ceil(r_eff).astype(np.int64)
    for b in np.unique(half):
        sel = np.nonzero(half == b)[0]
        off = np.arange(-b, b + 1)
        oy, ox = np.meshgrid(off, off, indexing="ij")
        oy, ox = oy.ravel(), ox.ravel()
        for s in range(0, len(sel), 1 << 16):
            idx = sel[s:s + (1 << 16)]
            px = np.round(x[idx]).astype(np.int64)[:, None] + ox[None, :]
            py = np.round(y[idx]).astype(np.int64)[:, None] + oy[None, :]
            dx = px - x[idx][:, None]
            dy = py - y[idx][:, None]
            q = (dx * dx + dy * dy) / (r_eff[idx][:, None] ** 2)
            w = np.where(q < 1.0, (1.0 - q) ** 2, 0.0) * (-d_eff[idx][:, None])
            ok = (px >= 0) & (px < size) & (py >= 0) & (py < size) & (w != 0)
            flat = (py * size + px)[ok]
            np.add.at(out, flat, w[ok].astype(np.float32))
    return out.reshape(size, size)


# ------------------------------------------------------------------ spectral noise

def _freq_grid(size: int):
    fy = sfft.fftfreq(size).astype(np.float32)[:, None]  # cycles per texel (rows)
    fx = sfft.rfftfreq(size).astype(np.float32)[None, :]
    return fx, fy


def _bandpass(fr: np.ndarray, f_lo: float, f_hi: float) -> np.ndarray:
    """Smooth band between f_lo and f_hi (cycles per texel), log-Gaussian shape."""
    fc = np.sqrt(f_lo * f_hi)
    sig = max(np.log(f_hi / f_lo) / 2.0, 0.2)
    with np.errstate(divide="ignore"):
        lg = np.log(np.maximum(fr, 1e-12) / fc)
    return np.exp(-0.5 * (lg / sig) ** 2).astype(np.float32) * (fr > 0)


def _angular(phi: np.ndarray, centre: float, width_deg: float = 12.0) -> np.ndarray:
    """Gaussian angular window (float32) around ``centre`` for wave-vector angles ``phi``,
    modulo π (a real field's spectrum is symmetric)."""
    d = np.mod(phi - np.float32(centre) + np.float32(np.pi / 2), np.float32(np.pi)) - np.float32(np.pi / 2)
    return np.exp(np.float32(-0.5 / np.deg2rad(width_deg) ** 2) * d * d).astype(np.float32)


def _normalised(a: np.ndarray) -> np.ndarray:
    s = float(a.std())
    return a / s if s > 0 else a


def _add_steered(lines: np.ndarray, tile: np.ndarray, weights: np.ndarray, reps: int) -> None:
    """``lines += weights ⊗ tiled(tile)`` without making either at full size: ``tile`` (g, g)
    repeated reps × reps times, ``weights`` (size/B, size/B) held constant over B × B texels
    (B = WEIGHT_BLOCK). The steering weights change over millimetres (their direction field has
    ~1.2 mm cells), so blocks of 0.3 mm do not show."""
    g = tile.shape[0]
    q = g // WEIGHT_BLOCK
    view = lines.reshape(reps, q, WEIGHT_BLOCK, reps, q, WEIGHT_BLOCK)
    view += (weights.reshape(reps, q, 1, reps, q, 1)
             * tile.reshape(1, q, WEIGHT_BLOCK, 1, q, WEIGHT_BLOCK))


def micro_relief(mesh: SurfaceMesh, size: int, *, mask: Optional[np.ndarray] = None, seed: int = 0,
                 age: float = 35.0, density: Optional[Callable[[int], np.ndarray]] = None,
                 direction: Optional[np.ndarray] = None, params: MicroParams = DEFAULT_MICRO,
                 job: Optional[Job] = None, progress: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Micro relief (size, size) float32 mm over the texels ``mesh`` covers (0 elsewhere).

    ``density``: pores per cm² field provider ``n -> (n, n)``; ``direction``: (m, m, 2) unit
    UV line field the fine lines follow (default: along u); ``mask``: the covered texels, if
    already known. Deterministic given ``seed``."""
    size = int(size)
    f0, f1 = progress

    def report(f, msg):
        if job is not None:
            job.report(f0 + (f1 - f0) * f, msg)

    rng_p, rng_l, rng_t = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))
    n = 512
    mmuv_n = _local_mm_per_uv(mesh, n)
    mm_tex = float(np.median(mmuv_n[mmuv_n > 0])) / size if (mmuv_n > 0).any() else mm_per_uv(mesh) / size
    gain = age_gain(age, params.age_ref)
    report(0.0, "Adding pores")
    out = _pores(mesh, size, rng_p, density, params, mmuv_n)
    report(0.4, "Adding fine skin lines")
    if job is not None:
        job.check()

    # the noise fields are periodic: above NOISE_TILE² they are made at NOISE_TILE² and repeat
    # (every 148 mm at 4096² on the face tile; see NOISE_TILE)
    gen = min(size, NOISE_TILE)
    reps = size // gen
    fx, fy = _freq_grid(gen)
    fr = np.sqrt(fx * fx + fy * fy)
    nyq = 0.5

    def band(wl_mm: tuple[float, float]):
        f_hi = min(mm_tex / wl_mm[0], nyq)  # cycles per texel
        f_lo = mm_tex / wl_mm[1]
        return (f_lo, f_hi) if f_lo < f_hi * 0.95 else None

    # fine lines: the zero crossings of anisotropic band-pass noise, as V-shaped furrows between
    # flat plateaus (min(|n|, 1.2)), steered per texel between four orientations
    b = band(params.line_wavelength_mm)
    if b is not None:
        white = sfft.rfft2(rng_l.standard_normal((gen, gen), dtype=np.float32), workers=-1)
        radial = _bandpass(fr, *b)
        phi_f = np.arctan2(fy, fx).astype(np.float32)  # wave-vector angle of each frequency
        if direction is None:
            line_dir = np.zeros((64, 64, 2), np.float32)
            line_dir[..., 0] = 1.0
        else:
            line_dir = np.asarray(direction, np.float32)
        # line angle in image coordinates (x = u, y = -v), doubled (a line field); steering
        # weights max(cos(2α − 2θ_k), 0)² for θ_k = 0, 45, 90, 135° sum to 1 everywhere, and
        # are smooth, so they are made on the direction field's grid and resampled
        ang2 = 2.0 * np.arctan2(-line_dir[..., 1], line_dir[..., 0])
        lines = np.zeros((size, size), np.float32)
        for kk in range(4):
            th = kk * np.pi / 4.0  # line direction; the spectrum lies across it
            spec = white * (radial * _angular(phi_f, th + np.pi / 2.0, params.line_angular_width_deg))
            buf = _normalised(sfft.irfft2(spec, s=(gen, gen), workers=-1))
            del spec
            np.abs(buf, out=buf)
            np.minimum(buf, np.float32(1.2), out=buf)
            buf -= buf.mean()
            steer = (np.maximum(np.cos(ang2 - 2.0 * th), 0.0) ** 2).astype(np.float32)
            if reps == 1:
                buf *= resize_bilinear(steer, size)
                lines += buf
            else:
                _add_steered(lines, buf, resize_bilinear(steer, size // WEIGHT_BLOCK), reps)
            del buf
            if job is not None:
                job.check()
        del white, radial, phi_f
        out += np.float32(params.line_depth_mm * gain) * _normalised(lines)
        del lines
    report(0.8, "Adding skin texture")

    b = band(params.texture_wavelength_mm)
    if b is not None:
        white = sfft.rfft2(rng_t.standard_normal((gen, gen), dtype=np.float32), workers=-1)
        tex = _normalised(sfft.irfft2(white * _bandpass(fr, *b), s=(gen, gen), workers=-1))
        del white
        tex *= np.float32(params.texture_rms_mm * gain)
        out.reshape(reps, gen, reps, gen)[...] += tex[None, :, None, :]
        del tex
    del fr, fx, fy
    m = mask if mask is not None and mask.shape == (size, size) else texel_grid(mesh, size).mask
    out[~m] = 0.0
    report(1.0, "Micro relief done")
    return out


# ------------------------------------------------------------------ the face model

def face_pore_density(model: MorphableModel) -> Callable[[int], np.ndarray]:
    """Pores per cm² by face region (:data:`PORE_DENSITY_PER_CM2`) as a field provider."""
    def f(n: int) -> np.ndarray:
        return face_regions.smooth_field(PORE_DENSITY_PER_CM2, model, n, DEFAULT_PORE_DENSITY_PER_CM2,
                                         feather_mm=6.0)

    return f


_LINE_CACHE: dict[tuple, np.ndarray] = {}


def face_line_direction(model: MorphableModel, identity: Optional[np.ndarray] = None, n: int = 256) -> np.ndarray:
    """(n, n, 2) unit UV direction of the skin's fine lines: perpendicular to the dominant
    compression summed over every expression shape (the relaxed skin tension lines run along
    expression wrinkles). Cached per model, identity and size (a few calls' worth)."""
    ident = b"" if identity is None else np.asarray(identity, np.float64).tobytes()
    key = (id(model), model.name, model.source, model.n_vertices, ident, int(n))
    if key in _LINE_CACHE:
        return _LINE_CACHE[key]
    mesh = face_mesh(model, identity)
    acc = np.zeros((len(mesh.uvs), 2))
    for j in range(model.n_expressions):
        w = np.zeros(model.n_expressions)
        w[j] = 1.0
        acc += vertex_strain(mesh, triangle_strain(mesh, model.shape(identity, w))).dir2
    grid = texel_grid(mesh, n)
    d2 = np.zeros((n * n, 2), np.float32)
    d2[grid.flat] = grid.interp(mesh, acc)
    comp_dir = direction_from_dir2(d2.reshape(n, n, 2))
    # lines run perpendicular to the dominant compression (parallel to wrinkle crests); in UV
    # we take the UV perpendicular (the layout is near-conformal over the face)
    out = np.stack([-comp_dir[..., 1], comp_dir[..., 0]], -1).astype(np.float32)
    if len(_LINE_CACHE) >= 4:
        _LINE_CACHE.pop(next(iter(_LINE_CACHE)))
    _LINE_CACHE[key] = out
    return out
