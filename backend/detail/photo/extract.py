"""D(I_x) from a photo: the stages of the package docstring, run at the working size and brought
back to the asked size."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol.job import FaceReconstruction

from ...core.imaging import LUMA, block_upsample, smoothstep, srgb_to_linear
from ...core.progress import Job
from ...geometry import raster
from ...models.morphable import MorphableModel
from ...reconstruct import texture
from ...geometry import sh_lighting
from ...geometry.sh_lighting import CAMERA_FACING
from .lighting import estimate_lighting
from .masks import (
    NONSKIN_FAR_MM,
    NONSKIN_NEAR_MM,
    colour_skin_probability,
    core_skin,
    geometric_skin_mask,
    hair_regions,
    outside_distance,
)
from .marks import albedo_brightness, colour_marks
from .shading import MAX_MM, detail_from_shading
from .surface import photo_texels_per_pixel, texel_surface, vertex_texels, working_size

# Shape from shading trusts a texel fully only when the camera sees it within ~55 degrees:
# near the silhouette the photo mixes in background and the proxy's normal is least right.
VIEW_COS_NONE, VIEW_COS_FULL = 0.25, 0.6
# Camera-facing frame: OpenCV camera axes (x right, y down, z forward) turned to x right,
# y up, z towards the camera -- for a frontal pose it is the model frame itself.
# bump when D(I_x) changes meaning, so maps cached by an older method are remade
# (2: glasses rims, hair strands, moles and specular spots are not relief)
METHOD_VERSION = 2


@dataclass
class PhotoDetail:
    """``displacement`` (size, size) float32 mm along the proxy normal (0 = proxy, + = out);
    ``skin_mask`` (size, size) float32 0..1 -- where the displacement is trusted (skin, seen
    by the photo); ``sh`` (9, 3) SH lighting per RGB channel in the camera-facing frame,
    scaled so the mean shading over skin is 1; ``albedo`` (size, size, 3) float32 linear
    low-frequency skin albedo (extrapolated outside skin); ``stats`` figures for humans."""

    displacement: np.ndarray
    skin_mask: np.ndarray
    sh: np.ndarray
    albedo: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


def extract_photo_detail(model: MorphableModel, rec: FaceReconstruction, photo: np.ndarray, size: int = 1024,
                         job=None, trace: dict | None = None) -> PhotoDetail:
    """The person's own detail map D(I_x) from ``photo`` on the fitted proxy ``rec.fit``.

    See the module docstring for the method. ``job`` (``backend.progress.Job``-like, with
    ``check()`` and ``report(fraction, message)``) gets progress 0..1 and cancellation.
    ``trace``, when a dict, receives the working-size intermediate maps (tests, figures).
    """
    if rec.fit is None:
        raise ValueError("the reconstruction has no fit")
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be (H, W, 3) uint8, got {photo.shape} {photo.dtype}")
    size = int(size)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    clock = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now

    sub = (job or Job()).child(0.0, 1.0)
    check = sub.check
    sub.report(0.0, "Photo detail: projecting the photo")
    cam = rec.fit.camera
    vertices = model.shape(np.asarray(rec.fit.identity, np.float64), np.asarray(rec.fit.expression, np.float64))
    face = tuple(model.regions["face"][1])
    tpp_out = photo_texels_per_pixel(model, vertices, cam, size, face)
    work = working_size(size, tpp_out)
    k = size // work
    tpp = tpp_out * work / size
    # colour and visibility weight from the texture stage (same raster, same occlusion test);
    # no mirror fill: a mirrored texel's shading is the other side's lighting
    tex = texture.project_texture(model, vertices, cam, photo, face, 0, work, sub.child(0.0, 0.45),
                                  mirror=False)
    lap("project")
    rotation = CAMERA_FACING @ np.asarray(cam.rotation, np.float64)
    surf = texel_surface(model, vertices, work, rotation, face, 0, check)
    rgb = srgb_to_linear(tex.rgb)
    vis = np.where(surf.covered, tex.mask, 0.0).astype(np.float32)
    del tex
    mm = surf.median_texel_mm
    lap("surface")
    sub.report(0.5, "Photo detail: lighting and skin")

    geo, _ = geometric_skin_mask(model, surf)
    w_geo = geo * vis
    light = estimate_lighting(rgb, surf.normals, w_geo, mm)
    check()
    shading_l = sh_lighting.shade(surf.normals.astype(np.float64), light.sh) @ LUMA
    core = core_skin(model, surf) & (geo > 0.99) & (vis > 0.5)
    p_colour, colour_info = colour_skin_probability(rgb, shading_l.astype(np.float32), (w_geo > 0.5), core, mm)
    nonskin = hair_regions(p_colour < 0.5, (vis > 0.3) & surf.covered, mm)
    near_hair = smoothstep(NONSKIN_NEAR_MM, NONSKIN_FAR_MM, outside_distance(nonskin) * mm)
    # colour decides only through hair masses: a texel that merely looks off (a creased
    # shadow, a freckle) stays skin; its residual is what shape from shading is for
    skin = (geo * near_hair).astype(np.float32)
    # how well the photo shows each texel: the texture's weight, and for shape from shading a
    # stricter view angle (see VIEW_COS_*)
    view = cam.center[None, None, :] - surf.points.astype(np.float64)
    view = view @ rotation.T
    view /= np.maximum(np.linalg.norm(view, axis=-1, keepdims=True), 1e-9)
    cos_view = np.einsum("...i,...i->...", surf.normals.astype(np.float64), view)
    seen = smoothstep(0.0, 0.5, vis) * smoothstep(VIEW_COS_NONE, VIEW_COS_FULL, cos_view)
    skin_seen = (skin * seen).astype(np.float32)
    del view, cos_view
    # rims, strands, dark moles: not relief, and not skin for the lighting fit either
    lm = vertex_texels(model, model.landmark_vertices, work)
    eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
    not_relief, marks_info = colour_marks(rgb, shading_l.astype(np.float32), core, nonskin, eyes, mm, tpp)
    light = estimate_lighting(rgb, surf.normals, skin_seen * (1.0 - not_relief), mm)  # again, on skin only
    lap("lighting_mask")
    sub.report(0.65, "Photo detail: shape from shading")

    disp, info = detail_from_shading(rgb, surf, skin_seen, light, fade=skin_seen, texels_per_pixel=tpp, check=check,
                                     trace=trace, not_relief=not_relief)
    if trace is not None:
        trace.update(colour_marks=not_relief, albedo_brightness=albedo_brightness(rgb, shading_l.astype(np.float32), core))
    lap("solve")
    if k > 1:
        # back to the requested size: cubic for the (band-limited) relief, linear for the rest
        disp = np.clip(block_upsample(disp, k, (size, size), order=3), -MAX_MM, MAX_MM)
        skin_seen = np.clip(block_upsample(skin_seen, k, (size, size)), 0.0, 1.0)
        albedo = block_upsample(light.albedo, k, (size, size))
        covered = raster.rasterize(raster.uv_to_texel(model.uvs[model.triangles(face)[1]], size, 0), size).tri >= 0
        disp *= covered
        skin_seen *= covered
        lap("upsample")
    else:
        albedo = light.albedo
    sub.report(1.0, "Photo detail done")
    inside = skin_seen > 0.5
    stats = {
        "size": size,
        "working_size": work,
        "texel_mm": round(mm * work / size, 4),
        "texels_per_photo_pixel": round(tpp_out, 3),
        "skin_fraction": round(float(inside.sum()) / float(size * size), 4),
        "lighting_residual": round(light.residual, 4),
        "displacement_abs_p99_mm": round(float(np.percentile(np.abs(disp[inside]), 99)) if inside.any() else 0.0, 4),
        "displacement_range_mm": [round(float(disp.min()), 4), round(float(disp.max()), 4)],
        "timings_s": {**timings, "total": round(time.perf_counter() - t0, 3)},
        **colour_info,
        **marks_info,
        **info,
    }
    return PhotoDetail(displacement=disp.astype(np.float32), skin_mask=skin_seen.astype(np.float32),
                       sh=light.sh.astype(np.float64), albedo=albedo.astype(np.float32), stats=stats)
