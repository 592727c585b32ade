"""Expression wrinkles as creases: where the expression compresses the skin of an AU's region past
its onset, a few lines are traced across the compression and rendered as valleys
(``anatomy`` says which, how many and how deep; ``trace`` draws them; ``render`` gives them
relief). The person's own lines in D(I_x) attract them, so a dynamic wrinkle deepens an
existing line instead of drawing a new one beside it; static lines under compression deepen
too. Pores and micro relief come from :mod:`backend.detail.microrelief`.

Output convention (the project's detail maps): one float32 channel, displacement along the
smooth surface's normal in millimetres, 0 = the blendshape surface, + outward; UV tile 0,
row 0 = v = 1.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from scipy import ndimage

from ...core.imaging import resize_bilinear, smoothstep
from ...core.progress import Job
from ...geometry import raster
from ...models import facs
from ...models.morphable import MorphableModel
from ...models.regions import landmark_uvs, region_masks
from .. import microrelief
from ..strain import SurfaceMesh, face_mesh, mm_per_uv, texel_grid, triangle_strain, vertex_strain
from .anatomy import FAMILIES, RADIAL_FROM, Family
from .render import render_lines
from .trace import Line, Tracer

WORK = 512  # the grid lines are traced on (~0.6 mm texels on the face tile)
# The person's own lines: relief narrower than CREASE_SCALE_MM (the map minus its local mean) and
# deeper than CREASE_MIN_MM counts as a crease, full strength at CREASE_FULL_MM.
CREASE_SCALE_MM = 1.5
CREASE_MIN_MM = 0.015
CREASE_FULL_MM = 0.05
STATIC_GAIN = 1.0  # a static line under its AU's full compression deepens by this fraction
TRACE_ORDER = ("nasolabial", "forehead", "glabella", "crows_feet", "infraorbital", "nose", "mouth_corner",
               "dimple", "perioral", "chin")


@dataclass
class CreaseResult:
    """``displacement`` (size, size) float32 mm (creases + deepened lines + micro relief; add the
    person's detail for the full map); ``mask`` the texels the mesh covers; ``lines`` the traced
    creases (working-grid coordinates); ``stats`` figures for humans."""

    displacement: np.ndarray
    mask: np.ndarray
    lines: list[Line] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _strain(mesh: SurfaceMesh, deformed: np.ndarray, n: int):
    """(compression (n, n), compression direction as a doubled-angle vector in (row, col), mask)."""
    grid = texel_grid(mesh, n)
    vs = vertex_strain(mesh, triangle_strain(mesh, deformed))
    comp = np.zeros(n * n, np.float32)
    comp[grid.flat] = np.clip(grid.interp(mesh, vs.compression), 0.0, None)
    dir2 = np.zeros((n * n, 2), np.float32)
    # (du, dv) at angle θ is (row, col) at θ + 90° (rows grow downwards): the doubled angle turns by 180°
    dir2[grid.flat] = -grid.interp(mesh, vs.dir2)
    return comp.reshape(n, n), dir2.reshape(n, n, 2), grid.mask


_scale_lock = threading.Lock()
_scales: dict[tuple, dict[tuple[str, str], float]] = {}


def family_scales(model: MorphableModel, n: int = WORK) -> dict[tuple[str, str], float]:
    """(family, region) -> the compression (90th percentile over the region) the family's strongest
    AU makes at full intensity on the mean face: what "full" means for that family there."""
    key = (model.name, str(model.source), n)
    with _scale_lock:
        if key in _scales:
            return _scales[key]
    mesh = face_mesh(model, None)
    regions = region_masks(model, n, names=sorted({r for f in FAMILIES for r in f.regions}))
    out = {}
    per_au: dict[int, np.ndarray] = {}
    for fam in FAMILIES:
        for a in fam.aus:
            if a in model.facs and a not in per_au:
                per_au[a] = _strain(mesh, model.shape(None, facs.weights_from_aus(model, {f"AU{a}": 1.0})), n)[0]
        for r in fam.regions:
            inside = regions[r] > 0.5
            peaks = [float(np.percentile(per_au[a][inside], 90)) for a in fam.aus if a in per_au and inside.any()]
            if peaks:
                out[(fam.name, r)] = max(max(peaks), 0.02)
    with _scale_lock:
        _scales[key] = out
    return out


def anatomical_directions(model: MorphableModel, dir2: np.ndarray, soft: dict[str, np.ndarray]) -> np.ndarray:
    """The strain's line field with :data:`RADIAL_FROM`'s radial prior blended in over its regions
    (doubled-angle vectors of the compression direction, (row, col), unit length)."""
    n = dir2.shape[0]
    norm = np.linalg.norm(dir2, axis=-1, keepdims=True)
    out = np.where(norm > 1e-9, dir2 / np.maximum(norm, 1e-9), 0.0)
    lm = landmark_uvs(model)
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float32)
    for region, (marks, weight) in RADIAL_FROM.items():
        if region not in soft:
            continue
        u, v = lm[list(marks)].mean(0)
        dr, dc = rows - ((1.0 - v) * n - 0.5), cols - (u * n - 0.5)
        th = np.arctan2(dr, -dc)  # compression across the radius: lines along it
        prior = np.stack([np.cos(2 * th), np.sin(2 * th)], -1)
        b = (weight * soft[region])[..., None]
        out = (1.0 - b) * out + b * prior
    return out.astype(np.float32)


def spread_over_region(fam: Family, act: np.ndarray, dir2: np.ndarray, inside: np.ndarray, soft: np.ndarray,
                       tx: float, carry_mm: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """(activation, line field) with ``fam.spread`` applied over its region: the activation raised
    to a floor of ``spread`` × its 90th percentile there (faded at the region's feathered edge), and
    the line field where the rig barely strains replaced by the compression-weighted average of
    its surroundings (``carry_mm`` wide), so the added lines follow the strained ones."""
    if fam.spread <= 0.0 or not inside.any():
        return act, dir2
    level = float(np.percentile(act[inside], 90))
    out = np.maximum(act, (fam.spread * level * soft).astype(np.float32))
    weight = np.clip(act, 0.0, None)[..., None]
    sigma = carry_mm / tx
    carried = np.stack([ndimage.gaussian_filter(dir2[..., k] * weight[..., 0], sigma) for k in range(2)], -1)
    carried /= np.maximum(np.linalg.norm(carried, axis=-1, keepdims=True), 1e-9)
    own = np.clip(act / max(level, 1e-6), 0.0, 1.0)[..., None]  # trust the rig where it strains
    b = (soft[..., None] * (1.0 - own)).astype(np.float32)
    field_ = (1.0 - b) * dir2 + b * carried
    field_ /= np.maximum(np.linalg.norm(field_, axis=-1, keepdims=True), 1e-9)
    return out.astype(np.float32), field_.astype(np.float32)


def static_creases(person: np.ndarray, n: int, mm_per_uv_: float) -> tuple[np.ndarray, np.ndarray]:
    """The person's own creases in a detail map (mm): (strength 0..1 on the n² grid, the crease
    relief itself at the map's size: the part below the local mean beyond CREASE_MIN_MM)."""
    pd = np.asarray(person, np.float32)
    s = pd.shape[0]
    local = pd - ndimage.gaussian_filter(pd, max(CREASE_SCALE_MM / (mm_per_uv_ / s), 1.0), mode="nearest")
    relief = np.minimum(local + np.float32(CREASE_MIN_MM), 0.0).astype(np.float32)
    # keep thin creases at the coarse grid: the deepest texel of each node's footprint
    small = resize_bilinear(ndimage.minimum_filter(relief, size=max(int(np.ceil(s / n)), 1)), n) if s != n else relief
    strength = np.clip(-small / (CREASE_FULL_MM - CREASE_MIN_MM), 0.0, 1.0).astype(np.float32)
    return strength, relief


def _gate(fam: Family, region: str, aus: dict[str, float]) -> float:
    """How much of the family's AUs the expression has (0..1, by side for sided regions): the FACS
    manual gives each line to its AUs, so strain from other AUs (a smile pulling the chin skin)
    makes no line where the family's AUs are absent."""
    side = region[-1] if region[-2:] in ("_R", "_L") else ""
    level = max((aus.get(f"AU{a}{side}", aus.get(f"AU{a}", 0.0)) for a in fam.aus), default=0.0)
    return float(smoothstep(0.05, 0.35, np.float64(level)))


_micro_lock = threading.Lock()  # guards both caches below
_coverage_cache: dict[tuple, np.ndarray] = {}


def _coverage(mesh: SurfaceMesh, size: int) -> np.ndarray:
    """The texels the mesh's UV layout covers (read-only; kept per layout and size: it depends on
    the UVs only; a mask-only raster of them at 4096² costs ~0.15 s)."""
    key = (hashlib.sha1(np.ascontiguousarray(mesh.uvs).tobytes() + np.ascontiguousarray(mesh.uv_tris).tobytes())
           .hexdigest(), int(size))
    with _micro_lock:
        if key in _coverage_cache:
            return _coverage_cache[key]
    mask = raster.coverage(raster.uv_to_texel(mesh.uvs[mesh.uv_tris], size, mesh.tile), size)
    mask.setflags(write=False)
    with _micro_lock:
        if len(_coverage_cache) >= 4:
            _coverage_cache.clear()
        _coverage_cache[key] = mask
    return mask


_micro: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
MICRO_CACHE = 2  # maps kept (64 MB each at 4096²): a face's last sizes


def forget_face_caches() -> None:
    """Drop the kept micro relief and UV coverage (benchmarks time a face's first map)."""
    with _micro_lock:
        _micro.clear()
        _coverage_cache.clear()


def _micro_relief(mesh: SurfaceMesh, model: MorphableModel, size: int, mask: np.ndarray, seed: int, age: float,
                  job: Optional[Job]) -> np.ndarray:
    """Pores and fine lines of the face (read-only array). They do not depend on the expression, so
    the backend process keeps the last few: a face's next expression skips the ~0.8 s of a 4096²
    one (bench: "wrinkle map 4096^2", first against next)."""
    key = (model.name, str(model.source), hashlib.sha1(np.ascontiguousarray(mesh.vertices).tobytes()).hexdigest(),
           int(size), int(seed), round(float(age), 3))
    with _micro_lock:
        if key in _micro:
            _micro.move_to_end(key)
            return _micro[key]
    mr = microrelief.micro_relief(mesh, size, mask=mask, seed=seed, age=age,
                                  density=microrelief.face_pore_density(model),
                                  direction=microrelief.face_line_direction(model, None), job=job,
                                  progress=(0.6, 0.98))
    mr.setflags(write=False)
    with _micro_lock:
        _micro[key] = mr
        while len(_micro) > MICRO_CACHE:
            _micro.popitem(last=False)
    return mr


def face_micro_relief(model: MorphableModel, identity: Optional[np.ndarray], size: int, age: float,
                      seed: int = 0) -> np.ndarray:
    """The pores and fine lines a crease map of this face with this ``seed`` gets at ``size``
    (read-only; kept per face like the maps' own): other detail models add them too."""
    mesh = face_mesh(model, identity)
    rng_micro = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(3)[2])  # as crease_field draws it
    return _micro_relief(mesh, model, int(size), _coverage(mesh, int(size)), int(rng_micro.integers(1 << 31)),
                         age, None)


def crease_field(mesh: SurfaceMesh, deformed: np.ndarray, model: MorphableModel, size: int = 1024, *,
                 age: float = 35.0, person_detail: Optional[np.ndarray] = None, seed: int = 0,
                 job: Optional[Job] = None, micro: bool = True, aus: Optional[dict[str, float]] = None) -> CreaseResult:
    """Creases of ``model``'s face tile (``mesh`` at rest, ``deformed`` its expressed vertices, ``aus``
    the expression's Action Units)."""
    t0 = time.perf_counter()
    size = int(size)
    n = WORK
    if job is not None:
        job.report(0.0, "Measuring skin strain")
    mmuv = mm_per_uv(mesh)
    tx = mmuv / n
    comp, dir2, covered = _strain(mesh, deformed, n)
    scales = family_scales(model, n)
    names = sorted({r for f in FAMILIES for r in f.regions})
    regions = region_masks(model, n, names=names)
    soft = region_masks(model, n, names=names, soft=True, feather_mm=6.0)
    ss = np.random.SeedSequence(int(seed))
    rng_trace, rng_render, rng_micro = (np.random.default_rng(s) for s in ss.spawn(3))
    static = np.zeros((n, n), np.float32)
    relief = None
    if person_detail is not None:
        static, relief = static_creases(person_detail, n, mmuv)
    directions = anatomical_directions(model, dir2, soft)
    tracer = Tracer(directions, static * covered, tx, rng_trace)
    by_name = {f.name: f for f in FAMILIES}
    params: dict[str, tuple[float, float, float, float]] = {}
    activation_all = np.zeros((n, n), np.float32)
    counts: dict[str, int] = {}
    if job is not None:
        job.report(0.1, "Tracing creases")
    for name in TRACE_ORDER:
        fam: Family = by_name[name]
        count, depth, onset = fam.at_age(age)
        params[name] = (depth, fam.width_mm, fam.asymmetry, onset)
        for region in fam.regions:
            kappa = scales.get((name, region))
            gate = _gate(fam, region, aus or {})
            if kappa is None or gate <= 0.0:
                counts[region] = 0
                continue
            act = comp / kappa * gate
            inside = (regions[region] > 0.5) & covered
            if fam.spread > 0.0:
                act, tracer.dir2 = spread_over_region(fam, act, directions, inside, soft[region], tx)
            else:
                tracer.dir2 = directions
            activation_all = np.maximum(activation_all, act * soft[region])
            # Hatzis (2004): the gap between neighbouring wrinkles shrinks as the muscle contracts
            peak = float(np.percentile(act[inside], 90)) if inside.any() else 0.0
            spacing = fam.spacing_mm * float(np.clip(1.2 - 0.2 * peak, 0.8, 1.2))
            lines = tracer.trace(name, region, inside, act, onset, spacing, count, fam.length_mm)
            counts[region] = len(lines)
        if job is not None:
            job.check()
    if job is not None:
        job.report(0.35, "Rendering creases")
    out = render_lines(tracer.lines, params, n, size, mmuv, rng_render)
    mask = _coverage(mesh, size)
    if relief is not None:
        # the person's own lines deepen under compression (an imperfection the strain amplifies)
        rel = relief if relief.shape[0] == size else resize_bilinear(relief, size)
        gain = STATIC_GAIN * smoothstep(0.3, 1.0, resize_bilinear(activation_all, size))
        out += (rel * gain).astype(np.float32)
        del rel, gain
    out[~mask] = 0.0
    stats: dict[str, Any] = {"lines": counts, "n_lines": len(tracer.lines)}
    if micro:
        if job is not None:
            job.report(0.6, "Adding skin micro relief")
        mr = _micro_relief(mesh, model, size, mask, int(rng_micro.integers(1 << 31)), age, job)
        out += mr
        stats["micro_rms_mm"] = round(float(np.sqrt(np.mean(mr[mask] ** 2))), 5)
        del mr
    stats.update(size=size, age=float(age), seed=int(seed), mm_per_texel=round(mmuv / size, 5),
                 min_mm=round(float(out[mask].min()), 4) if mask.any() else 0.0,
                 max_mm=round(float(out[mask].max()), 4) if mask.any() else 0.0,
                 seconds=round(time.perf_counter() - t0, 3))
    if job is not None:
        job.report(1.0, "Done")
    return CreaseResult(out, mask, tracer.lines, stats)


def crease_map(model: MorphableModel, identity: Optional[np.ndarray], expression: np.ndarray, size: int = 4096,
               age: float = 35.0, person_detail: Optional[np.ndarray] = None, seed: int = 0,
               job: Optional[Job] = None, micro: bool = True) -> CreaseResult:
    """Expression creases (mm) of the face tile for ``expression`` (weights over
    ``model.expression_names``) on the face of ``identity`` at ``age`` years; deterministic given
    ``seed``. ``person_detail``: the person's detail map (mm, square, any size): its lines attract
    the creases and deepen. ``micro``: add pores and fine skin relief."""
    expression = np.asarray(expression, np.float64).ravel()
    if expression.shape[0] != model.n_expressions:
        raise ValueError(f"expected {model.n_expressions} expression weights, got {expression.shape[0]}")
    mesh = face_mesh(model, identity)
    return crease_field(mesh, model.shape(identity, expression), model, size, age=age, person_detail=person_detail,
                        seed=seed, job=job, micro=micro, aus=facs.aus_from_weights(model, expression))
