"""Blender-ready numbers for a reconstruction: object and camera matrices, lens, materials.

The Blender side only applies what this module writes to ``scene.json``; every
conversion of frames and units happens here, once.

Frames: the model frame (mm, +x subject's left, +y up, +z out of the face) maps to
Blender's world (metres, +Z up, the face looking down -Y, so the front view sees it).
"""

from __future__ import annotations

import numpy as np

from .face_data import Camera
from .face_model import MorphableModel

MM_TO_M = 1e-3
# Model axes -> Blender axes: x -> X, y -> Z, z -> -Y.
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# OpenCV camera (x right, y down, looks +z) -> Blender camera (x right, y up, looks -z).
CV_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0])
SENSOR_WIDTH_MM = 36.0

# Material groups: which model regions share a material, and how each looks when the photo
# gives no colour. ``texture`` names the job file a group is textured with.
MATERIAL_GROUPS = [
    {"name": "skin_face", "regions": ["face"], "texture": "texture", "roughness": 0.55},
    {"name": "skin_head", "regions": ["head_neck"], "texture": "head_texture", "roughness": 0.6},
    {"name": "mouth", "regions": ["mouth_socket", "gums_tongue"], "color": [0.35, 0.08, 0.08], "roughness": 0.4},
    {"name": "teeth", "regions": ["teeth"], "color": [0.85, 0.82, 0.72], "roughness": 0.3},
    # The release's eyeball is two spheres: an outer shell with the corneal bulge ("sclera"
    # in its README) and an inner ball ("iris"). The shell renders as a clear glossy cornea;
    # the inner ball is coloured per vertex (pupil, iris from the photo, sclera).
    {"name": "cornea", "regions": ["eye_outer_left", "eye_outer_right"], "cornea": True},
    {"name": "eyeball", "regions": ["eye_inner_left", "eye_inner_right"], "vertex_color": "eye_color",
     "roughness": 0.25},
    {"name": "eye_socket", "regions": ["eye_socket_left", "eye_socket_right"], "color": [0.45, 0.2, 0.18],
     "roughness": 0.3},
    # Lash cards are made for an alpha texture of strands that the release does not ship;
    # any opaque or half-transparent shading reads as dark bands around the eyes, so they
    # render transparent (they stay in the mesh for a lash texture later).
    {"name": "eyelashes", "regions": ["eyelashes_left", "eyelashes_right"], "transparent": True},
    # Wet-eye helper meshes made for Unreal's eye shaders; in Cycles they would cover the
    # eyes with opaque shells, so they render fully transparent.
    {"name": "eye_helpers", "regions": ["lacrimal_left", "lacrimal_right", "eye_blend_left", "eye_blend_right",
                                        "eye_occlusion_left", "eye_occlusion_right"], "transparent": True},
]

# ICT eyeball sub-ranges (release README, "Eyeball Details"): polygon ranges, end-exclusive.
ICT_EYE_SPLIT = {
    "eyeball_left": {"eye_outer_left": (21496, 22296), "eye_inner_left": (22296, 23094)},
    "eyeball_right": {"eye_outer_right": (23094, 23894), "eye_inner_right": (23894, 24692)},
}
# Vertex ranges of the inner balls, end-exclusive (release README, "Eyeball Details": Iris).
ICT_EYE_INNER_VERTICES = [(22221, 23021), (23791, 24591)]
# Angular radii on the ball, from the gaze axis: iris 11.7 mm and pupil ~3.5 mm across on
# this model's 14.3 mm-radius ball.
IRIS_HALF_ANGLE = np.radians(24.0)
PUPIL_HALF_ANGLE = np.radians(7.0)
SCLERA_RGB = (0.78, 0.74, 0.70)


def polygon_materials(model: MorphableModel) -> np.ndarray:
    """Material index (into MATERIAL_GROUPS) for every polygon."""
    ranges = {name: r[1] for name, r in model.regions.items()}
    for eyeball, parts in ICT_EYE_SPLIT.items():
        if eyeball in ranges:
            ranges.pop(eyeball)
            ranges.update(parts)
    out = np.zeros(len(model.polygon_sizes), np.int16)
    for gi, group in enumerate(MATERIAL_GROUPS):
        for region in group["regions"]:
            if region in ranges:
                lo, hi = ranges[region]
                out[lo:hi] = gi
    return out


def eye_colors(model: MorphableModel, vertices: np.ndarray, iris_rgb) -> np.ndarray:
    """Per-vertex linear RGBA for the inner eyeballs: pupil, iris (soft limbus), sclera.

    Computed on the neutral-gaze mesh, so the colours ride along when gaze shapes turn the eye.
    """
    out = np.ones((model.n_vertices, 4), np.float32)
    iris = np.asarray(iris_rgb if iris_rgb is not None else (0.12, 0.07, 0.04), np.float64)
    for lo, hi in ICT_EYE_INNER_VERTICES:
        if hi > model.n_vertices:
            continue
        v = vertices[lo:hi].astype(np.float64)
        d = v - v.mean(0)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        ang = np.arccos(np.clip(d[:, 2], -1, 1))  # from the gaze axis (+z)
        limbus = np.clip((ang - IRIS_HALF_ANGLE) / np.radians(4.0) + 0.5, 0, 1)[:, None]
        pupil = np.clip((ang - PUPIL_HALF_ANGLE) / np.radians(2.0) + 0.5, 0, 1)[:, None]
        col = (1 - limbus) * (pupil * iris + (1 - pupil) * 0.01) + limbus * np.asarray(SCLERA_RGB)
        out[lo:hi, :3] = col
    return out


def object_matrix() -> list[list[float]]:
    m = np.eye(4)
    m[:3, :3] = MODEL_TO_BLENDER * MM_TO_M
    return m.tolist()


def camera_matrix_world(camera: Camera) -> list[list[float]]:
    r = np.asarray(camera.rotation, np.float64)
    t = np.asarray(camera.translation, np.float64)
    m = np.eye(4)
    m[:3, :3] = MODEL_TO_BLENDER @ r.T @ CV_TO_BLENDER_CAM
    m[:3, 3] = MODEL_TO_BLENDER @ (-r.T @ t) * MM_TO_M
    return m.tolist()


def render_size(width: int, height: int, long_side: int) -> list[int]:
    s = min(1.0, long_side / max(width, height))
    return [max(16, int(round(width * s))), max(16, int(round(height * s)))]


def scene_description(model: MorphableModel, camera: Camera, expression: np.ndarray,
                      render_long_side: int = 1024) -> dict:
    """Everything the scene builder needs, in Blender's units and frames."""
    from .emotions import EMFACS, au_rig, controls_from_weights, preset_controls

    groups = [dict(g) for g in MATERIAL_GROUPS]
    rig = au_rig(model)
    return {
        "au_rig": rig,
        "au_values": controls_from_weights(rig, model.expression_names, expression),
        "presets": preset_controls(model, rig),
        "preset_notes": {k: v[1] for k, v in EMFACS.items() if v[1]},
        "object_matrix": object_matrix(),
        "camera": {
            "matrix_world": camera_matrix_world(camera),
            "lens_mm": camera.focal * SENSOR_WIDTH_MM / max(camera.width, camera.height),
            "sensor_width_mm": SENSOR_WIDTH_MM,
            "sensor_fit": "AUTO",  # the sensor width spans the longer image side
            "clip_start_m": 0.01,
            "clip_end_m": 100.0,
            "distance_m": float(np.linalg.norm(camera.translation)) * MM_TO_M,
        },
        "render": {"resolution": render_size(camera.width, camera.height, render_long_side)},
        "shape_keys": {name: round(float(w), 4) for name, w in zip(model.expression_names, expression)},
        "materials": groups,
    }
