"""Blender-ready numbers for a reconstruction: object, camera and light matrices, lens, materials,
the AU rig (``scene.json``, :class:`protocol.scene.SceneDescription`).

The Blender side only applies what this module writes; every conversion of frames and units
happens here, once.

Frames: the model frame (mm, +x subject's left, +y up, +z out of the face) maps to
Blender's world (metres, +Z up, the face looking down -Y, so the front view sees it).
"""

from __future__ import annotations

import numpy as np

from protocol.job import FACE_TEXTURE, HEAD_TEXTURE, SKIN_SURFACE, Camera
from protocol.scene import (
    MM_TO_M,
    SKIN_FACE_MATERIAL,
    CameraDesc,
    LightDesc,
    MaterialGroup,
    RenderDesc,
    RigControl,
    SceneDescription,
    ViewDesc,
)

from ..models.emotions import EMFACS, au_rig, controls_from_weights, preset_controls
from ..models.morphable import MorphableModel
from . import skin_material as skin

# Model axes -> Blender axes: x -> X, y -> Z, z -> -Y.
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# OpenCV camera (x right, y down, looks +z) -> Blender camera (x right, y up, looks -z).
CV_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0])
SENSOR_WIDTH_MM = 36.0

# Material groups: which model regions share a material, and how each looks when the photo
# gives no colour. ``texture`` names the job file a group is textured with.
SKIN = {"ior": skin.SKIN_IOR, "subsurface_weight": skin.SUBSURFACE_WEIGHT,
        "subsurface_radius_mm": skin.SUBSURFACE_RADIUS_MM}
MATERIAL_GROUPS = [
    {"name": SKIN_FACE_MATERIAL, "regions": ["face"], "texture": FACE_TEXTURE, "roughness": skin.CHEEK_ROUGHNESS,
     "surface": SKIN_SURFACE, **SKIN},
    {"name": "skin_head", "regions": ["head_neck"], "texture": HEAD_TEXTURE, "roughness": 0.6, **SKIN},
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


def to_blender(points_mm: np.ndarray) -> np.ndarray:
    """Model-frame points (mm) -> Blender world (m)."""
    return np.asarray(points_mm, np.float64) @ (MODEL_TO_BLENDER * MM_TO_M).T


# The key light, relative to the camera (distance d to the face): above by 0.5 d and to the
# camera's left by 0.6 d, as wide as 0.6 d, 12 W per m² of d² (soft, the photo texture already
# carries the photo's light: it only adds shape).
KEY_LIGHT_UP, KEY_LIGHT_LEFT, KEY_LIGHT_SIZE, KEY_LIGHT_POWER = 0.5, 0.6, 0.6, 12.0


def aimed(location: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 world matrix at ``location`` whose −Z axis aims at ``target`` and whose +Y leans
    towards world +Z (Blender's ``to_track_quat("-Z", "Y")``: cameras and lights)."""
    z = np.asarray(location, np.float64) - np.asarray(target, np.float64)
    z /= np.linalg.norm(z)
    world_up = np.array([0.0, 0.0, 1.0])
    y = world_up - z * (world_up @ z)
    y /= np.linalg.norm(y)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = np.cross(y, z), y, z, location
    return m


def key_light(camera_world: np.ndarray, target: np.ndarray, distance_m: float) -> LightDesc:
    """An area light above and beside the camera, aimed at ``target``."""
    cm = np.asarray(camera_world, np.float64)
    right = cm[:3, 0] / np.linalg.norm(cm[:3, 0])
    up = cm[:3, 1] / np.linalg.norm(cm[:3, 1])
    loc = cm[:3, 3] + (up * KEY_LIGHT_UP - right * KEY_LIGHT_LEFT) * distance_m
    return LightDesc(matrix_world=aimed(loc, target).tolist(), size_m=KEY_LIGHT_SIZE * distance_m,
                     energy_w=KEY_LIGHT_POWER * distance_m ** 2)


# The portrait view: a three-quarter close-up, as a portrait photographer or a look-dev artist
# frames a face: 30° round to the subject's left, 6° from above, an 85 mm lens (full-frame
# equivalent) aimed 2 cm above and 3 cm behind the landmarks' centre (so the whole head, not
# just the face, sits in the frame at three-quarters), the frame's height 2.2 times the
# brows-to-chin height (forehead, hair line and chin in, with a margin), 4:5 upright. Its key light comes from
# the other side of the face and from high up (35° round to the subject's right, 45° up): every
# crease that runs across the face (forehead, glabella, crow's feet, nasolabial) then has one lit
# and one shaded wall. It is small (15 % of its distance) so relief casts crisp shading, and the
# world is dimmed to a fill. Chosen by looking at renders of the bundled photo (docs/detail_maps.md).
PORTRAIT_YAW_DEG, PORTRAIT_PITCH_DEG, PORTRAIT_LENS_MM, PORTRAIT_FILL, PORTRAIT_AIM_M = 30.0, 6.0, 85.0, 2.2, (0.0, 0.03, 0.02)
RAKE_YAW_DEG, RAKE_ELEVATION_DEG, RAKE_SIZE, RAKE_POWER, RAKE_WORLD = -35.0, 45.0, 0.15, 15.0, 0.3


def _around(yaw_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector from the face towards a viewer ``yaw_deg`` round to the subject's left (+X) and
    ``elevation_deg`` up, in Blender's frame (the face looks down −Y)."""
    a, e = np.radians(yaw_deg), np.radians(elevation_deg)
    return np.array([np.sin(a) * np.cos(e), -np.cos(a) * np.cos(e), np.sin(e)])


def portrait_view(model: MorphableModel, neutral: np.ndarray, long_side: int = 1024) -> ViewDesc:
    """The three-quarter close-up of the face and its raking key light (Blender frame, metres)."""
    lm = to_blender(np.asarray(neutral, np.float64)[model.landmark_vertices])
    target = lm.mean(0) + np.array(PORTRAIT_AIM_M)  # +Y: behind the face
    face_h = (lm[:, 2].max() - lm[:, 2].min()) * PORTRAIT_FILL
    sensor = 36.0
    distance = face_h * PORTRAIT_LENS_MM / sensor  # the longer (upright) side spans the sensor width
    cam_loc = target + _around(PORTRAIT_YAW_DEG, PORTRAIT_PITCH_DEG) * distance
    light_loc = target + _around(RAKE_YAW_DEG, RAKE_ELEVATION_DEG) * distance
    camera = CameraDesc(matrix_world=aimed(cam_loc, target).tolist(), lens_mm=PORTRAIT_LENS_MM, sensor_width_mm=sensor,
                        sensor_fit="AUTO", clip_start_m=0.01, clip_end_m=100.0, distance_m=float(distance))
    light = LightDesc(matrix_world=aimed(light_loc, target).tolist(), size_m=RAKE_SIZE * distance,
                      energy_w=RAKE_POWER * distance ** 2)
    return ViewDesc(camera, light, [int(round(0.8 * long_side)), int(long_side)], world_strength=RAKE_WORLD)


def render_size(width: int, height: int, long_side: int) -> list[int]:
    s = min(1.0, long_side / max(width, height))
    return [max(16, int(round(width * s))), max(16, int(round(height * s)))]


def scene_description(model: MorphableModel, camera: Camera, expression: np.ndarray, neutral: np.ndarray,
                      render_long_side: int = 1024) -> SceneDescription:
    """Everything the scene builder needs, in Blender's units and frames. ``neutral``: the
    identity-shaped mesh (mm) the scene is built from; the light aims at its landmarks' centre."""
    rig = au_rig(model)
    distance_m = float(np.linalg.norm(camera.translation)) * MM_TO_M
    cam_world = camera_matrix_world(camera)
    focus = to_blender(np.asarray(neutral, np.float64)[model.landmark_vertices].mean(0))
    return SceneDescription(
        au_rig=[RigControl(**c) for c in rig],
        au_values=controls_from_weights(rig, model.expression_names, expression),
        presets=preset_controls(model, rig),
        preset_notes={k: v[1] for k, v in EMFACS.items() if v[1]},
        object_matrix=object_matrix(),
        camera=CameraDesc(
            matrix_world=cam_world,
            lens_mm=camera.focal * SENSOR_WIDTH_MM / max(camera.width, camera.height),
            sensor_width_mm=SENSOR_WIDTH_MM,
            sensor_fit="AUTO",  # the sensor width spans the longer image side
            clip_start_m=0.01,
            clip_end_m=100.0,
            distance_m=distance_m,
        ),
        light=key_light(np.asarray(cam_world), focus, distance_m),
        focus_point=focus.tolist(),
        portrait=portrait_view(model, neutral, render_long_side),
        render=RenderDesc(render_size(camera.width, camera.height, render_long_side)),
        shape_keys={name: round(float(w), 4) for name, w in zip(model.expression_names, expression)},
        materials=[MaterialGroup(**g) for g in MATERIAL_GROUPS],
    )
