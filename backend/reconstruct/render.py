"""A small ray-cast renderer of a morphable-model face through a pinhole :class:`Camera`.

It makes the pictures the backend itself looks at: renders of a model on which the landmark
detector places points once per model (dense landmark correspondence), and the closed-loop
test images of the AU evaluation (a known identity, expression, pose and lighting, textured
with a projected photo). One embree ray per pixel; the colour is the albedo (the UDIM tiles of
a texture, or a flat colour per region) times second-order SH irradiance of the interpolated
normal, written as sRGB. No shadows, no subsurface: a detector sees a lit, textured face,
which is all these pictures are for (the artist's renders are Blender's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from protocol.job import Camera

from ..core.imaging import linear_to_srgb
from ..geometry.raster import sample_tile
from ..geometry.rays import ray_caster
from ..geometry.sh_lighting import CAMERA_FACING, directional_sh, shade
from ..geometry.surface import vertex_normals
from ..models.morphable import MorphableModel
from .scene_export import ICT_EYE_SPLIT, eye_colors

# Regions drawn, with the flat linear albedo used where no texture tile covers them. The
# outer eyeball (a clear cornea shell), the eye occlusion and blend meshes (transparent
# shadow cards) and the eyelash cards (drawn opaque they read as thick eyeliner, and the
# landmark detector puts the lid margin on the liner's edge) are left out; the inner eyeball takes the per-vertex iris colours.
FLAT_ALBEDO = {
    "face": (0.62, 0.40, 0.31), "head_neck": (0.62, 0.40, 0.31),
    "mouth_socket": (0.20, 0.04, 0.04), "gums_tongue": (0.45, 0.12, 0.12), "teeth": (0.75, 0.72, 0.66),
    "lacrimal_left": (0.60, 0.30, 0.28), "lacrimal_right": (0.60, 0.30, 0.28),
}
# A soft key from above the camera plus fill: the lighting of a passport-style photo.
DEFAULT_LIGHT = directional_sh((0.25, 0.45, 1.0), 0.85, ambient=0.3)


@dataclass
class Hits:
    """Where the rays of a pixel grid met the drawn surface: ``ray`` (N,) flat pixel index of
    each hit, ``tri`` (N,) its index in the drawn triangles ``tv``/``tu`` (region ``reg`` of
    ``names``), ``bary`` (N,3), ``loc`` (N,3) model-frame point (mm); ``shape`` (H, W)."""

    shape: tuple[int, int]
    ray: np.ndarray
    tri: np.ndarray
    bary: np.ndarray
    loc: np.ndarray
    tv: np.ndarray
    tu: np.ndarray
    reg: np.ndarray
    names: np.ndarray

    def interpolate(self, per_vertex: np.ndarray, corners: np.ndarray | None = None) -> np.ndarray:
        """A per-vertex (or, with ``corners=tu``, per-UV) quantity at every hit (N, C)."""
        c = self.tv if corners is None else corners
        return np.einsum("qc,qcd->qd", self.bary, np.asarray(per_vertex, np.float64)[c[self.tri]])


def cast(model: MorphableModel, vertices: np.ndarray, camera: Camera,
         window: tuple[float, float, float, float] | None = None, size: tuple[int, int] | None = None) -> Hits:
    """One ray per pixel centre through ``camera``; ``window`` (x0, y0, x1, y1) in the camera's
    pixels with ``size`` (W, H) samples a crop of the image at another resolution (default: the
    whole image at its own size)."""
    v = np.asarray(vertices, np.float64)
    tv, tu, reg, names = drawn_triangles(model)
    caster = ray_caster(v, tv)
    x0, y0, x1, y1 = window if window is not None else (0.0, 0.0, float(camera.width), float(camera.height))
    w, h = size if size is not None else (camera.width, camera.height)
    R = np.asarray(camera.rotation, np.float64)
    gy, gx = np.mgrid[0:h, 0:w]
    px = x0 + (gx.ravel() + 0.5) * (x1 - x0) / w
    py = y0 + (gy.ravel() + 0.5) * (y1 - y0) / h
    d_cam = np.stack([(px - camera.width / 2.0) / camera.focal, (py - camera.height / 2.0) / camera.focal,
                      np.ones(w * h)], 1)
    d = d_cam @ R  # camera -> model frame (R is orthonormal: R^T d, row-wise)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.broadcast_to(camera.center, d.shape)
    tri, ray, loc = caster.intersects_id(o, d, multiple_hits=False, return_locations=True)
    bary = trimesh.triangles.points_to_barycentric(v[tv[tri]], loc)
    return Hits((h, w), ray, tri, bary, loc, tv, tu, reg, names)


@dataclass
class Rendered:
    image: np.ndarray  # (H, W, 3) uint8 sRGB
    triangle: np.ndarray  # (H, W) int, -1 where the ray missed
    point: np.ndarray  # (H, W, 3) model-frame hit point (mm), NaN where missed


def drawn_triangles(model: MorphableModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(vertex triangles, UV triangles, region index per triangle, region names) of what is drawn."""
    sizes = model.polygon_sizes
    names, tv, tu, reg = [], [], [], []
    ranges = {name: r[1] for name, r in model.regions.items()}
    for eyeball, parts in ICT_EYE_SPLIT.items():
        if eyeball in ranges:
            del ranges[eyeball]
            ranges.update({k: v for k, v in parts.items() if k.startswith("eye_inner")})
    for name, (lo, hi) in ranges.items():
        if name not in FLAT_ALBEDO and not name.startswith("eye_inner"):
            continue
        if hi <= lo or hi > len(sizes):
            continue
        a, b = model.triangles((lo, hi))
        names.append(name)
        tv.append(a)
        tu.append(b)
        reg.append(np.full(len(a), len(names) - 1, np.int16))
    return np.concatenate(tv), np.concatenate(tu), np.concatenate(reg), np.array(names)


def render(model: MorphableModel, vertices: np.ndarray, camera: Camera, tiles: dict[int, np.ndarray] | None = None,
           sh: np.ndarray | None = None, eye_rgb: np.ndarray | None = None,
           vertex_rgb: np.ndarray | None = None, background=(0.18, 0.18, 0.2)) -> Rendered:
    """Render ``vertices`` (the model's, mm) through ``camera``.

    ``tiles``: UDIM tile -> (S, S, 3) linear RGB albedo (tile 0 the face, 1 the head); regions
    outside every given tile take :data:`FLAT_ALBEDO`. ``sh``: (9,) or (9, 3) irradiance
    coefficients in the model frame (default :data:`DEFAULT_LIGHT` turned with the camera, so
    the key light stays above the camera whatever the pose). ``eye_rgb``: per-vertex linear
    colours of the inner eyeballs (scene_export.eye_colors). ``vertex_rgb``: (V, 3) linear
    albedo per vertex for the face and head regions, in place of tiles and flat colours.
    """
    v = np.asarray(vertices, np.float64)
    hits = cast(model, v, camera)
    tri, ray, tv, tu, reg, names = hits.tri, hits.ray, hits.tv, hits.tu, hits.reg, hits.names
    w, h = camera.width, camera.height
    n = hits.interpolate(vertex_normals(v, tv))
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    albedo = np.zeros((len(tri), 3))
    r_of = reg[tri]
    for i, name in enumerate(names):
        sel = r_of == i
        if not sel.any():
            continue
        if name.startswith("eye_inner"):
            cols = eye_rgb if eye_rgb is not None else eye_colors(model, v, None)[:, :3]
            albedo[sel] = hits.interpolate(cols)[sel]
            continue
        albedo[sel] = FLAT_ALBEDO[name]
        if vertex_rgb is not None and name in ("face", "head_neck"):
            albedo[sel] = hits.interpolate(vertex_rgb)[sel]
        elif tiles:
            uv = hits.interpolate(model.uvs, tu)[sel]
            tile = np.floor(uv[:, 0]).astype(int)
            idx = np.nonzero(sel)[0]
            for t, img in tiles.items():
                m = tile == t
                if m.any():
                    albedo[idx[m]] = sample_tile(np.asarray(img, np.float64), uv[m], t)
    if sh is None:
        # the default light is given in the camera's frame (x right, y up, z to the camera)
        irr = shade(n @ (CAMERA_FACING @ np.asarray(camera.rotation, np.float64)).T, DEFAULT_LIGHT)[:, None]
    else:
        irr = shade(n, np.asarray(sh, np.float64))
        irr = irr[:, None] if irr.ndim == 1 else irr
    rgb = np.tile(np.asarray(background, np.float64), (w * h, 1))
    rgb[ray] = albedo * np.clip(irr, 0.0, None)
    img = (np.clip(linear_to_srgb(np.clip(rgb, 0, 1)), 0, 1) * 255 + 0.5).astype(np.uint8).reshape(h, w, 3)
    tri_img = np.full(w * h, -1, np.int64)
    tri_img[ray] = tri
    pts = np.full((w * h, 3), np.nan)
    pts[ray] = hits.loc
    return Rendered(img, tri_img.reshape(h, w), pts.reshape(h, w, 3))
