"""The per-pixel inputs of the neural renderer: which UV each pixel sees, the proxy's normal and the
detailed normal there, and how much of the neural image the pixel takes.

Two sources give the same :class:`Rasters`:

- **The backend's ray caster** (:func:`from_model`) for the views the backend makes itself: the
  photo's own view when a renderer is trained on it (FaceDet3D's "UV-Raster(G, c)"), and the
  evaluation's expressions. The detailed normal is the proxy's normal bent by the displacement
  map's surface gradient (bump mapping, :func:`detail_tilt`): what Blender's "displacement and
  bump" does with the same map.
- **Blender's own passes** (:func:`from_blender_exr`) for a frame of the user's scene: one Cycles
  sample per pixel with the UV and Normal passes, the face's own materials on the view layer
  ``detailed`` and a plain material on ``proxy`` (no displacement), so the net sees exactly the
  mesh, shape keys, displacement, camera and frame that Cycles renders, with nothing re-derived.

Frames: normals are in Blender's world frame (the model frame turned by ``MODEL_TO_BLENDER`` for
the backend's views, where the face object carries no rotation), so the photo's light applies to
both alike. UVs are UDIM coordinates (tile 0 = the face, u in [0, 1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import OpenEXR
from scipy import ndimage

from protocol import job as job_files
from protocol.job import Camera

from ...core.errors import DamagedFileError
from ...core.imaging import resample, smoothstep
from ...detail.photo.surface import texel_surface
from ...geometry.raster import sample_tile
from ...geometry.surface import vertex_normals
from ...models.morphable import MorphableModel
from ...reconstruct.render import cast
from ...reconstruct.scene_export import MODEL_TO_BLENDER

TILT_SIZE = 1024  # UV grid of the detail's tilt field: 0.2 mm texels, finer than a 512 px face resolves
FEATHER_MM = 8.0  # the neural image fades out over this width inside the face tile's edge
MASK_SIZE = 512  # UV grid of that fade
SUPERSAMPLE = 3  # rays per pixel side for the normals (see from_model)
SAME_SURFACE_UV = 0.01  # the two layers' UVs closer than this: they see the same surface
# Blender's layer names in the raster EXR (addon/scene/neural_pass.py writes them), and the face
# skin's material index in its detailed layer's IndexMA pass.
DETAILED_LAYER, PROXY_LAYER = job_files.NEURAL_DETAILED_LAYER, job_files.NEURAL_PROXY_LAYER
FACE_PASS_INDEX = job_files.NEURAL_FACE_PASS_INDEX


@dataclass
class Rasters:
    """``uv`` (H,W,2) UDIM coordinates (0 where nothing is hit); ``normal`` and ``detail_normal``
    (H,W,3) unit, Blender world frame; ``hit`` (H,W) bool: the face object covers the pixel;
    ``face`` (H,W) float32 0..1: the neural image's weight (face tile, faded at its edge)."""

    uv: np.ndarray
    normal: np.ndarray
    detail_normal: np.ndarray
    hit: np.ndarray
    face: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.hit.shape


def face_fade(model: MorphableModel, vertices: np.ndarray, size: int = MASK_SIZE) -> np.ndarray:
    """(S,S) weight of the neural image over the face tile: 1 inside, falling to 0 over
    :data:`FEATHER_MM` at the tile's edges (the brow, eye and lip openings, the face's outline)
    so the composite has no seam where the Cycles render takes over."""
    surf = texel_surface(model, vertices, size)
    inside = ndimage.distance_transform_edt(surf.covered) * surf.median_texel_mm
    return smoothstep(0.0, FEATHER_MM, inside).astype(np.float32) * surf.covered


def detail_tilt(model: MorphableModel, vertices: np.ndarray, displacement: np.ndarray,
                size: int = TILT_SIZE) -> np.ndarray:
    """(S,S,3) model-frame tilt ``-grad_s d`` of a displacement map (mm along the proxy normal,
    face tile): a proxy normal ``n`` becomes ``normalize(n + tilt)`` on the detailed surface."""
    surf = texel_surface(model, vertices, size)
    d = resample(np.asarray(displacement, np.float32), size).astype(np.float64)
    g_row, g_col = np.gradient(d)  # mm per texel
    J = surf.jac.astype(np.float64)  # (S,S,3,2): d point / d (column, row), mm per texel
    G = np.einsum("...ik,...il->...kl", J, J)
    det = G[..., 0, 0] * G[..., 1, 1] - G[..., 0, 1] * G[..., 1, 0]
    ok = surf.covered & (det > 1e-12)
    inv = np.zeros_like(G)
    safe = np.where(ok, det, 1.0)
    inv[..., 0, 0], inv[..., 1, 1] = G[..., 1, 1] / safe, G[..., 0, 0] / safe
    inv[..., 0, 1] = inv[..., 1, 0] = -G[..., 0, 1] / safe
    coef = np.einsum("...kl,...l->...k", inv, np.stack([g_col, g_row], -1))
    tilt = -np.einsum("...ik,...k->...i", J, coef)
    tilt[~ok] = 0.0
    return tilt.astype(np.float32)


def _unit(n: np.ndarray) -> np.ndarray:
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


class ViewCast:
    """One view of the model cast once (``supersample``² rays per pixel); :meth:`rasters` gives its
    Rasters for any detail tilt without casting again (a person's training views take 13 details
    each: the photo's and 12 fake ones)."""

    def __init__(self, model: MorphableModel, vertices: np.ndarray, camera: Camera, fade: np.ndarray,
                 window=None, size=None, supersample: int = SUPERSAMPLE):
        k = int(supersample)
        if k < 1 or k % 2 == 0:
            raise ValueError(f"supersample must be odd and positive, got {k}")
        window = window if window is not None else (0.0, 0.0, float(camera.width), float(camera.height))
        self.w, self.h = size if size is not None else (camera.width, camera.height)
        self.k = k
        v = np.asarray(vertices, np.float64)
        hits = cast(model, v, camera, window, (self.w * k, self.h * k))
        self.rows = hits.ray
        self.uv = hits.interpolate(model.uvs, hits.tu)
        self.n = _unit(hits.interpolate(vertex_normals(v, hits.tv)))
        self.tile0 = (self.uv[:, 0] >= 0) & (self.uv[:, 0] < 1) & (hits.names[hits.reg[hits.tri]] == "face")
        self.m2b = np.asarray(MODEL_TO_BLENDER, np.float64)
        face_w = np.zeros(len(self.uv))
        face_w[self.tile0] = sample_tile(fade, self.uv[self.tile0])
        self.base = (self._centre(self.uv).astype(np.float32), self._mean_normal(self.n),
                     self._centre(np.ones(len(self.uv))) > 0, self._centre(face_w).astype(np.float32))

    def _fine(self, values: np.ndarray) -> np.ndarray:
        k = self.k
        out = np.zeros((self.h * k * self.w * k,) + values.shape[1:], np.float64)
        out[self.rows] = values
        return out.reshape((self.h * k, self.w * k) + values.shape[1:])

    def _centre(self, values: np.ndarray) -> np.ndarray:
        return self._fine(values)[self.k // 2::self.k, self.k // 2::self.k]

    def _mean_normal(self, n: np.ndarray) -> np.ndarray:
        k = self.k
        world = self._fine(n @ self.m2b.T)
        return _unit(world.reshape(self.h, k, self.w, k, 3).sum(axis=(1, 3))).astype(np.float32)

    def rasters(self, tilt: np.ndarray | None = None) -> Rasters:
        """The view's rasters with the detail ``tilt`` (:func:`detail_tilt`; None: none)."""
        uv, normal, hit, face = self.base
        detail = normal
        if tilt is not None:
            nd = self.n.copy()
            nd[self.tile0] = _unit(self.n[self.tile0] + sample_tile(tilt, self.uv[self.tile0]))
            detail = self._mean_normal(nd)
        return Rasters(uv, normal, detail, hit, face)


def from_model(model: MorphableModel, vertices: np.ndarray, camera: Camera, fade: np.ndarray,
               tilt: np.ndarray | None = None, window=None, size=None, supersample: int = SUPERSAMPLE) -> Rasters:
    """Rasters of the model's ``vertices`` through ``camera`` (a ``window`` of it at ``size``,
    see :func:`backend.reconstruct.render.cast`); ``fade`` from :func:`face_fade`, ``tilt`` from
    :func:`detail_tilt` (None: no detail, the detailed normal is the proxy's).

    The normals are averaged over ``supersample``² rays per pixel (odd; the UV is the centre
    ray's): relief finer than a pixel must shade the pixel by its mean, as Blender's normal pass
    averaged over its samples does, not alias into pixel noise."""
    return ViewCast(model, vertices, camera, fade, window, size, supersample).rasters(tilt)


def from_blender_exr(path, fade: np.ndarray) -> Rasters:
    """Rasters from the multilayer EXR of a raster render of the face object (a few samples per
    pixel, transparent film, view layers :data:`DETAILED_LAYER` and :data:`PROXY_LAYER` with the
    UV and Normal passes, and the material index pass on the detailed layer: the face skin's
    material at :data:`FACE_PASS_INDEX`)."""
    try:
        with OpenEXR.File(str(path)) as f:
            ch = {}
            for part in f.parts:
                ch.update({k: np.asarray(c.pixels) for k, c in part.channels.items()})
    except Exception as e:  # OpenEXR raises its own error types for a missing or foreign file
        raise DamagedFileError(f"{path} is not a readable raster render ({e})",
                               "Render the neural pass again: Blender writes this file first.") from e

    def get(name: str) -> np.ndarray:
        if name not in ch:
            raise DamagedFileError(f"{path} has no {name!r} channel (it has {', '.join(sorted(ch)) or 'none'})",
                                   "Render the neural pass again with this version of the add-on.")
        return ch[name].astype(np.float32)

    # The UVs are the detailed layer's: there the eyelash cards are transparent and the skin behind
    # them is recorded, while the proxy layer's plain override makes them opaque (their UVs drew a
    # dotted line beside the eye, looked at). Where the two layers see different surfaces the
    # proxy's normal is the lash card's: the detailed normal stands in for it there.
    uv = np.stack([get(f"{DETAILED_LAYER}.UV.U"), get(f"{DETAILED_LAYER}.UV.V")], -1)
    uv_proxy = np.stack([get(f"{PROXY_LAYER}.UV.U"), get(f"{PROXY_LAYER}.UV.V")], -1)
    alpha = get(f"{PROXY_LAYER}.Combined")[..., 3]
    n = _unit(np.stack([get(f"{PROXY_LAYER}.Normal.{a}") for a in "XYZ"], -1))
    nd = _unit(np.stack([get(f"{DETAILED_LAYER}.Normal.{a}") for a in "XYZ"], -1))
    other = np.linalg.norm(uv - uv_proxy, axis=-1) > SAME_SURFACE_UV
    n[other] = nd[other]
    hit = alpha > 0.5
    skin = np.abs(get(f"{DETAILED_LAYER}.Material Index.X") - FACE_PASS_INDEX) < 0.5
    # A pixel on the skin's border averages the UVs of both sides over its samples (the face tile's
    # and the neck's, or across a seam): a UV somewhere else in the tile, drawn as a dotted line
    # (looked at). The border pixels are left to Cycles; the fade is ~0 there anyway.
    skin = ndimage.binary_erosion(skin & (alpha > 0.999), np.ones((3, 3), bool))
    flat = uv.reshape(-1, 2)
    tile0 = hit.ravel() & skin.ravel() & (flat[:, 0] >= 0) & (flat[:, 0] < 1)
    face = np.zeros(hit.size, np.float32)
    face[tile0] = sample_tile(fade, flat[tile0]) * alpha.ravel()[tile0]
    uv[~hit] = 0.0
    n[~hit] = 0.0
    nd[~hit] = 0.0
    return Rasters(uv, n, nd, hit, face.reshape(hit.shape))
