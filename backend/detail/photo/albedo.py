"""Albedo from the photo: the projected texture with the photo's lighting divided out.

The texture stage projects the photo as it is, so its shading (the key light's fall-off, the
shadow beside the nose) is baked in and a render lights it a second time. With the photo's SH
lighting (fitted on the skin by :func:`..lighting.estimate_lighting`, the one D(I_x) uses) each
seen texel's albedo is ``colour / shade(n)``, ``n`` the proxy's normal there in the camera-facing
frame. Where the photo sees a texel poorly (grazing, occluded, outside the photo) or the shading
is too dark to divide by, the texel takes its mirror image's albedo (albedo is nearly symmetric;
the shading was not) and then the pull-push fill, as the texture stage does.

The lighting keeps the normalisation ``estimate_lighting`` gives it (mean shading over the skin
= 1 per channel); a render that relights the albedo with the same SH (a Blender world made from
it, ``sh_world``) gives back the photo's colours, up to the proxy's missing detail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.job import Camera

from ...core.imaging import linear_to_srgb, smoothstep, srgb_to_linear
from ...geometry import sh_lighting
from ...geometry.sh_lighting import CAMERA_FACING
from ...models.morphable import MorphableModel
from ...reconstruct import texture
from .surface import texel_surface

# Shading below MIN_SHADE of the skin's mean is not divided by, and a texel's own division is
# trusted fully only from FULL_SHADE up (a ramp, so no seam where the mirror image takes over):
# where the SH model predicts little light the photo is lit by what it lacks -- light bounced
# from the cheeks, scattered under the skin, a fill -- and the division glows (the underside of
# the chin, the nostrils, eyelid creases). Seen on the bundled photo: at 0.15 the chin's underside
# glowed yellow and the nose tip white; at 0.35 / 0.6 both are skin.
MIN_SHADE = 0.35
FULL_SHADE = 0.6
# Weight of a texel's own division from the texture's visibility weight: full trust from this up.
FULL_TRUST = 0.5


@dataclass
class AlbedoTile:
    linear: np.ndarray  # (S, S, 3) float32 linear albedo, in the lighting's scale (may exceed 1)
    weight: np.ndarray  # (S, S) float32 0..1: how much of each texel is its own division
    stats: dict

    def rgb(self, scale: float = 1.0) -> np.ndarray:
        """(S, S, 3) uint8 sRGB of ``linear / scale`` (see :func:`headroom`)."""
        lin = np.clip(self.linear / scale, 0.0, 1.0)
        return (np.clip(linear_to_srgb(lin), 0, 1) * 255 + 0.5).astype(np.uint8)


def headroom(tile: AlbedoTile, percentile: float = 99.5) -> float:
    """The factor that brings the tile's brightest seen albedo (its ``percentile``, over channels)
    down to 1. Albedo and light share one scale (the lighting's mean shading over the skin is 1),
    so the albedo can come out above 1 where the photo's light was dim; clipped in an 8-bit PNG the
    red channel would clip first and the skin turn pale. The factor moves into the light instead
    (relight.py multiplies the world's radiance by it). On the bundled photo it is 1.0: nothing
    clips there."""
    seen = tile.weight > 0.5
    if not seen.any():
        return 1.0
    return float(max(1.0, np.percentile(tile.linear[seen], percentile)))


def _sh_frame(camera: Camera) -> np.ndarray:
    """Model frame -> the camera-facing frame the SH lighting is expressed in."""
    return CAMERA_FACING @ np.asarray(camera.rotation, np.float64)


def albedo_tile(model: MorphableModel, vertices: np.ndarray, camera: Camera, photo: np.ndarray, sh: np.ndarray,
                polygon_range: tuple[int, int], tile: int, size: int, job=None) -> AlbedoTile:
    """The albedo of one UV tile from the photo and its SH lighting ``sh`` (9, 3)."""
    tex = texture.project_texture(model, vertices, camera, photo, polygon_range, tile, size, job, mirror=False)
    surf = texel_surface(model, vertices, size, _sh_frame(camera), polygon_range, tile)
    shade = sh_lighting.shade(surf.normals.astype(np.float64), np.asarray(sh, np.float64))  # (S, S, 3)
    lum = shade.mean(-1)
    colour = srgb_to_linear(tex.rgb).astype(np.float64)
    trust = np.clip(tex.mask / FULL_TRUST, 0.0, 1.0) * smoothstep(MIN_SHADE, FULL_SHADE, lum) * surf.covered
    own = np.where(trust[..., None] > 0, colour / np.maximum(shade, MIN_SHADE), 0.0)
    weight = trust.astype(np.float32)
    grid_c = own.astype(np.float32)
    grid_w = weight
    mirrored = 0.0
    if tile == 0:  # the face tile has a mirror layout (texture.UVLayout); the head tile does not
        lay = texture.uv_layout(model, polygon_range[0], polygon_range[1], tile, size)
        ok = lay.mirror_ok(model)
        if ok is not None:
            grid_w, grid_c, add = texture.mirror_blend(grid_w, grid_c, ok)
            mirrored = float(add.ravel()[lay.flat].sum()) / max(len(lay.flat), 1)
    filled = texture.pull_push_fill(grid_c, grid_w, empty=(0.45, 0.3, 0.25))
    lin = np.clip(filled, 0.0, None).astype(np.float32)
    seen = weight > 0.5
    stats = {"own_fraction": round(float(seen[surf.covered].mean()) if surf.covered.any() else 0.0, 4),
             "mirrored_weight": round(mirrored, 4),
             "shade_range": [round(float(np.percentile(lum[seen], 1)), 3) if seen.any() else None,
                             round(float(np.percentile(lum[seen], 99)), 3) if seen.any() else None]}
    return AlbedoTile(linear=lin, weight=weight, stats=stats)
