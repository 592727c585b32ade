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
    {"name": "sclera", "regions": ["sclera_left", "sclera_right", "eye_socket_left", "eye_socket_right"],
     "color": [0.85, 0.82, 0.8], "roughness": 0.15},
    {"name": "iris", "regions": ["iris_left", "iris_right"], "color": [0.15, 0.09, 0.05], "roughness": 0.1},
    {"name": "eyelashes", "regions": ["eyelashes_left", "eyelashes_right"], "color": [0.02, 0.015, 0.01],
     "roughness": 0.7},
    # Wet-eye helper meshes made for Unreal's eye shaders; in Cycles they would cover the
    # eyes with opaque shells, so they render fully transparent.
    {"name": "eye_helpers", "regions": ["lacrimal_left", "lacrimal_right", "eye_blend_left", "eye_blend_right",
                                        "eye_occlusion_left", "eye_occlusion_right"], "transparent": True},
]

# ICT eyeball sub-ranges (release README, "Eyeball Details"): polygon ranges, end-exclusive.
ICT_EYE_SPLIT = {
    "eyeball_left": {"sclera_left": (21496, 22296), "iris_left": (22296, 23094)},
    "eyeball_right": {"sclera_right": (23094, 23894), "iris_right": (23894, 24692)},
}


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
                      iris_color: list[float] | None, render_long_side: int = 1024) -> dict:
    """Everything the scene builder needs, in Blender's units and frames."""
    groups = [dict(g) for g in MATERIAL_GROUPS]
    if iris_color is not None:
        for g in groups:
            if g["name"] == "iris":
                g["color"] = [round(float(c), 4) for c in iris_color]
    return {
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
