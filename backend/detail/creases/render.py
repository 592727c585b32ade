"""Creases as relief: each traced line becomes a valley with rounded shoulders, tapering at its
ends, varying in depth along its length, sometimes broken, sometimes joining a neighbour.

Cross-section (no measured profile was found: docs/detail_maps.md says what was chosen): a
valley ``−exp(−4 ln2 (r/w)²)`` of full width ``w`` at half depth, and on each side a shoulder
``c·exp(−((|r| − 1.1 w)/(0.6 w))²)`` that gives back ``SHOULDER_VOLUME`` of the valley's volume
(skin bunched beside the fold: a crease is a configurational change of the same skin, Kligman et
al. 1985). The profile is narrow-valleyed with broad shoulders, as creases in compressed soft
solids are (Diab et al. 2013). With an asymmetry ``α`` the lateral side's width is ``w(1+α)`` and
the medial one's ``w(1−α)`` (the nasolabial fold: the cheek bulges over it).

Each line is rendered on its own: its centreline samples seed a distance transform in its
bounding box on a grid of at most RENDER_GRID² over the tile, the signed distance, depth and
width are interpolated to the output grid (linear across a line, so exact to sampling there)
and the profile is evaluated at every output texel near the line; lines add up.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .trace import Line

RENDER_GRID = 1024  # the distance fields' grid (≤ 0.3 mm texels on the face tile)
SHOULDER_VOLUME = 0.5  # of the valley's cross-section area given back by the shoulders
TAPER_FRACTION = 0.3  # of a line's length each end tapers over ...
TAPER_MAX_MM = 6.0  # ... but no more than this
DEPTH_NOISE = 0.25  # log-normal sigma of the depth along a line
DEPTH_NOISE_MM = 6.0  # its correlation length
BREAK_CHANCE = 0.3  # of a line longer than 20 mm having a break
SAMPLE_TEXELS = 0.4  # centreline samples per render-grid texel


def _shoulder_gain() -> float:
    """c such that both shoulders return SHOULDER_VOLUME of the valley's area (per unit w)."""
    x = np.linspace(0.0, 6.0, 60001)
    valley = np.exp(-4.0 * math.log(2.0) * x * x).sum()
    shoulder = np.exp(-((x - 1.1) / 0.6) ** 2).sum()
    return SHOULDER_VOLUME * valley / shoulder


SHOULDER_GAIN = _shoulder_gain()


def profile(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The unit-depth cross-section at signed distance ``r`` (mm) for half-side widths ``w``."""
    a = np.abs(r) / np.maximum(w, 1e-6)
    return -np.exp(-4.0 * math.log(2.0) * a * a) + SHOULDER_GAIN * np.exp(-((a - 1.1) / 0.6) ** 2)


def _resample_polyline(points: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` along a polyline, and their arc length (both in its units)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return points[:1], np.zeros(1)
    t = np.arange(0.0, s[-1] + 1e-9, spacing)
    return np.stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])], 1), t


def line_depths(length_mm: float, activation: np.ndarray, depth_mm: float, onset: float,
                rng: np.random.Generator, joined_end: int = 0) -> np.ndarray:
    """Depth (mm) along a line's samples: full depth where the skin is compressed as by the
    full AU, less below, tapering at the ends (not at a joined end: -1 start, +1 end), with
    correlated log-normal variation and at times a break."""
    n = len(activation)
    s = np.linspace(0.0, length_mm, n)
    t = np.clip((activation - onset) / max(1.0 - onset, 1e-6), 0.0, 1.3)
    depth = depth_mm * np.where(t < 1.0, t * t * (3.0 - 2.0 * t), t)
    taper_len = max(min(TAPER_FRACTION * length_mm, TAPER_MAX_MM), 1e-6)
    start = np.clip(s / taper_len, 0.0, 1.0) if joined_end != -1 else np.ones(n)
    end = np.clip((length_mm - s) / taper_len, 0.0, 1.0) if joined_end != 1 else np.ones(n)
    depth = depth * np.sin(0.5 * np.pi * start) ** 2 * np.sin(0.5 * np.pi * end) ** 2
    # correlated variation along the line: 1-D smoothed noise, log-normal
    step = length_mm / max(n - 1, 1)
    sigma = min(max(DEPTH_NOISE_MM / max(step, 1e-6), 1.0) / 2.0, 256.0)
    noise = ndimage.gaussian_filter1d(rng.standard_normal(n + 1024), sigma)
    noise = np.clip(noise / max(float(noise.std()), 1e-6), -3.0, 3.0)[512:512 + n]
    depth = depth * np.exp(DEPTH_NOISE * noise - 0.5 * DEPTH_NOISE ** 2)
    if length_mm > 20.0 and rng.random() < BREAK_CHANCE:
        centre = rng.uniform(0.3, 0.7) * length_mm
        half = rng.uniform(1.0, 2.0)
        depth = depth * (1.0 - np.exp(-(((s - centre) / half) ** 4)))
    return depth


def render_lines(lines: list[Line], params: dict[str, tuple[float, float, float, float]], n: int, size: int,
                 mm_per_uv: float, rng: np.random.Generator, out: np.ndarray | None = None) -> np.ndarray:
    """Add the relief of ``lines`` (traced on an n² grid) to an size² map (mm). ``params``:
    family -> (depth mm, width mm, asymmetry, onset)."""
    out = np.zeros((size, size), np.float32) if out is None else out
    R = min(size, RENDER_GRID)
    tR = mm_per_uv / R  # mm per render-grid texel
    for line in lines:
        depth_mm, width_mm, asym, onset = params[line.family]
        pts = (line.points + 0.5) * (R / n) - 0.5  # working grid -> render grid texel coordinates
        act = line.activation
        joined = 0
        if line.fork_to is not None:  # the line runs on into its neighbour at its nearer end
            target = (np.asarray(line.fork_to) + 0.5) * (R / n) - 0.5
            if np.linalg.norm(pts[0] - target) < np.linalg.norm(pts[-1] - target):
                pts, act, joined = np.vstack([target, pts]), np.concatenate([[act[0]], act]), -1
            else:
                pts, act, joined = np.vstack([pts, target]), np.concatenate([act, [act[-1]]]), 1
        samples, s = _resample_polyline(pts, SAMPLE_TEXELS)
        if len(samples) < 2:
            continue
        s_src = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        a = np.interp(s, s_src, act)
        depth = line_depths(float(s[-1] * tR), a, depth_mm, onset, rng, joined)
        if depth.max() <= 1e-5:
            continue
        tangent = np.gradient(samples, axis=0)
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)  # +90° in (row, col)
        # the lateral side (away from the face's vertical midline) for asymmetric families
        lateral = np.sign((samples[:, 1] - (R - 1) / 2.0) * normal[:, 1])
        lateral[lateral == 0] = 1.0
        pad = 3.5 * width_mm * (1.0 + abs(asym)) / tR + 2
        r0, c0 = np.floor(samples.min(0) - pad).astype(int)
        r1, c1 = np.ceil(samples.max(0) + pad).astype(int) + 1
        r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, R), min(c1, R)
        if r1 <= r0 or c1 <= c0:
            continue
        seeds = np.full((r1 - r0, c1 - c0), -1, np.int64)
        ri = np.clip(np.rint(samples[:, 0]).astype(int) - r0, 0, r1 - r0 - 1)
        ci = np.clip(np.rint(samples[:, 1]).astype(int) - c0, 0, c1 - c0 - 1)
        seeds[ri, ci] = np.arange(len(samples))
        _, (ir, ic) = ndimage.distance_transform_edt(seeds < 0, return_indices=True)
        nearest = seeds[ir, ic]
        gr, gc = np.mgrid[r0:r1, c0:c1]
        dr = gr - samples[nearest, 0]
        dc = gc - samples[nearest, 1]
        sd = (dr * normal[nearest, 0] + dc * normal[nearest, 1]) * tR  # signed mm, + on the +90° side
        along = dr * tangent[nearest, 0] + dc * tangent[nearest, 1]
        beyond = np.where(nearest == 0, np.minimum(along, 0.0), 0.0) + np.where(
            nearest == len(samples) - 1, np.maximum(along, 0.0), 0.0)  # past the ends, in texels
        dep = depth[nearest] * np.exp(-((beyond * tR / max(width_mm, 1e-6)) ** 2))
        side = np.sign(sd) * lateral[nearest]  # + on the lateral side
        w_side = width_mm * (1.0 + asym * np.where(side >= 0, 1.0, -1.0))
        # to the output grid: its texels inside the box, linear interpolation of the fields
        S0, S1 = max(int(r0 * size // R), 0), min(int(math.ceil(r1 * size / R)), size)
        T0, T1 = max(int(c0 * size // R), 0), min(int(math.ceil(c1 * size / R)), size)
        rows = (np.arange(S0, S1) + 0.5) * (R / size) - 0.5 - r0
        cols = (np.arange(T0, T1) + 0.5) * (R / size) - 0.5 - c0
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        coords = [np.clip(rr, 0, r1 - r0 - 1), np.clip(cc, 0, c1 - c0 - 1)]

        def up(f):
            return ndimage.map_coordinates(np.asarray(f, np.float32), coords, order=1, mode="nearest")

        out[S0:S1, T0:T1] += (up(dep) * profile(up(sd), up(w_side))).astype(np.float32)
    return out
