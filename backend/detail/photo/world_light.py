"""The photo's lighting as a Blender world: SH irradiance -> an environment map of radiance.

The lighting is fitted (``..lighting.estimate_lighting``) as irradiance ``E(n)`` on the 9 real SH
functions, in the camera-facing frame, with the clamped-cosine convolution folded in (Ramamoorthi
& Hanrahan 2001: A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4). A Lambertian surface of albedo ``a``
under a distant radiance ``L`` leaves ``a / pi * (integral of L cos)``; for a render to give the
photo's ``a * E(n)`` the world's radiance must be ``L_lm = pi * E_lm / A_l``. The coefficients are
re-expressed in Blender's world frame (the face object's ``MODEL_TO_BLENDER``) and written as an
equirectangular image, negative radiance (the band-limited ringing) clamped at 0.

Blender's equirectangular layout, measured on its own renders (tests/blender/test_world_light.py):
the image's first row is +Z (up), its left edge -X, a quarter across +Y, half across +X.
"""

from __future__ import annotations

import numpy as np

from protocol.job import Camera

from ...core.imaging import LUMA, smoothstep
from ...geometry import sh_lighting
from ...geometry.sh_lighting import CAMERA_FACING
from ...reconstruct.scene_export import MODEL_TO_BLENDER

A_L = np.pi * np.array([1.0, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25])
ENV_WIDTH = 256  # second-order SH has no detail: 256 x 128 is plenty


def world_radiance_sh(sh_cam: np.ndarray, camera: Camera) -> np.ndarray:
    """(9, 3) radiance SH in Blender's world frame from the photo's irradiance SH (camera-facing)."""
    to_cam = CAMERA_FACING @ np.asarray(camera.rotation, np.float64) @ np.asarray(MODEL_TO_BLENDER, np.float64).T
    return sh_lighting.in_frame(sh_cam, to_cam) * (np.pi / A_L)[:, None]


def directions(width: int = ENV_WIDTH) -> np.ndarray:
    """(H, W, 3) world direction of each pixel of a Blender equirectangular image, first row up."""
    h = width // 2
    u = (np.arange(width) + 0.5) / width
    t = (np.arange(h) + 0.5) / h
    phi = (0.5 - u) * 2 * np.pi
    el = (0.5 - t) * np.pi
    el, phi = np.meshgrid(el, phi, indexing="ij")
    return np.stack([np.cos(el) * np.cos(phi), np.cos(el) * np.sin(phi), np.sin(el)], -1)


def environment(radiance_sh: np.ndarray, width: int = ENV_WIDTH, toward_camera: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) float32 radiance image for a world Environment Texture.

    ``toward_camera`` (world direction from the face to the camera): the light from behind the
    head takes the colour of the light in front (its luminance kept). The photo shows only
    normals that face the camera, so the fit says nothing about the colour of light from behind;
    each channel's coefficients extrapolate there on their own, and on the bundled photo that lit
    the head's silhouette with a blue rim no photo had. (Grey instead of the front's colour made
    the whole face cooler than the photo: blue 0.54 against 0.48 on its skin.)
    """
    d = directions(width)
    rgb = np.clip(sh_lighting.shade(d, radiance_sh), 0.0, None)
    if toward_camera is not None:
        t = np.asarray(toward_camera, np.float64)
        facing = d @ (t / np.linalg.norm(t))
        w = smoothstep(-0.2, 0.3, facing)[..., None]
        lum = rgb @ LUMA
        front = facing > 0.3
        tint = rgb[front].sum(0) / max(float(lum[front].sum()), 1e-9)  # the front light's colour per luminance
        rgb = w * rgb + (1 - w) * lum[..., None] * tint
    return rgb.astype(np.float32)


def toward_camera(camera: Camera, centre_mm: np.ndarray) -> np.ndarray:
    """World (Blender) direction from a point of the face (model frame, mm) to the camera."""
    d = camera.center - np.asarray(centre_mm, np.float64)
    return np.asarray(MODEL_TO_BLENDER, np.float64) @ (d / np.linalg.norm(d))
