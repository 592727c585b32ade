"""``scene.json``: everything the Blender side applies to build a face, already in Blender's
frames and units (the backend's ``reconstruct.scene_export`` computes it; the scene builder only
applies it).

Units: Blender scenes are in metres; every map and the backend's geometry in millimetres
(:data:`MM_TO_M`). Frames: Blender world, +Z up, the face looking down −Y.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from . import jsonfile
from ._typed import from_json, to_json

MM_TO_M = 1e-3  # metres per millimetre: detail maps hold mm, Blender's scene unit is the metre
SKIN_FACE_MATERIAL = "skin_face"  # the material of the face tile's skin: detail maps displace it


@dataclass
class CameraDesc:
    matrix_world: list[list[float]]  # 4x4, Blender camera convention (looks down its −Z, +Y up)
    lens_mm: float
    sensor_width_mm: float
    sensor_fit: str  # Blender's sensor_fit ("AUTO": the width spans the longer image side)
    clip_start_m: float
    clip_end_m: float
    distance_m: float  # camera to the model's origin


@dataclass
class LightDesc:
    """The key light: a soft area light above and beside the camera, aimed at the face."""

    matrix_world: list[list[float]]  # 4x4, Blender light convention (shines down its −Z)
    size_m: float
    energy_w: float
    kind: str = "AREA"


@dataclass
class MaterialGroup:
    """One material: which model regions it covers and how it looks (``texture``: the job-file
    role it is textured with; otherwise ``vertex_color``, ``color``, or a special look)."""

    name: str
    regions: list[str]
    texture: Optional[str] = None
    roughness: float = 0.5
    alpha: float = 1.0
    color: Optional[list[float]] = None
    vertex_color: Optional[str] = None
    transparent: bool = False  # renders fully transparent (lash cards, wet-eye helper shells)
    cornea: bool = False  # clear glossy cornea over the iris
    # the job-file role of a linear map of Specular IOR Level (red) and Roughness (green) over the
    # texture's tile; replaces ``roughness`` where given
    surface: Optional[str] = None
    ior: Optional[float] = None
    subsurface_weight: float = 0.0
    subsurface_radius_mm: Optional[list[float]] = None  # red, green, blue


@dataclass
class RigControl:
    """One AU control: ``key`` ("AU12L"), its AU number and side ("L", "R" or ""), the AU's
    name, and the expression shape keys it drives."""

    key: str
    au: int
    side: str
    name: str
    shapes: list[str]


@dataclass
class FaceRig:
    """A model's AU controls and emotion presets (the ``rig`` method's answer, and what
    scene.json holds of them): enough to check an expression before any work."""

    controls: list[RigControl] = field(default_factory=list)
    presets: dict[str, dict[str, float]] = field(default_factory=dict)  # emotion -> control values

    def values(self, what: "str | dict[str, float]", where: str = "--expression") -> dict[str, float]:
        """Every control's value for a preset name ('neutral': all 0) or {AU: value} (AU12L sets
        one side, AU12 both); an unknown name raises ValueError naming ``where`` and the choices."""
        if isinstance(what, str):
            if what != "neutral" and what not in self.presets:
                raise ValueError(f"{where}: no preset '{what}'; this face has {', '.join(sorted(self.presets))}"
                                 " and neutral")
            return dict(self.presets.get(what, {}))
        known = {c.key for c in self.controls} | {f"AU{c.au}" for c in self.controls}
        unknown = sorted(set(what) - known)
        if unknown:
            raise ValueError(f"{where}: this face has no control {', '.join(unknown)}; it has "
                             f"{', '.join(sorted(known, key=lambda k: (len(k), k)))}")
        # a sided control takes its own value, else its AU's (AU1=1 sets AU1L and AU1R)
        return {c.key: float(what.get(c.key, what.get(f"AU{c.au}", 0.0))) for c in self.controls}


@dataclass
class RenderDesc:
    resolution: list[int]  # width, height in pixels


@dataclass
class ViewDesc:
    """A way to look at the face: its camera, key light, render size and how bright the world
    (the even light all around) is."""

    camera: CameraDesc
    light: LightDesc
    resolution: list[int]
    world_strength: float = 0.75


VIEWS = ("photo", "portrait")  # the photo's own camera; a three-quarter close-up with raking light


@dataclass
class SceneDescription:
    object_matrix: list[list[float]]  # 4x4: model frame (mm) -> Blender world (m)
    camera: CameraDesc
    render: RenderDesc
    shape_keys: dict[str, float]  # the photo's expression, by shape-key name
    materials: list[MaterialGroup]
    au_rig: list[RigControl] = field(default_factory=list)
    au_values: dict[str, float] = field(default_factory=dict)  # the photo's expression, by control
    presets: dict[str, dict[str, float]] = field(default_factory=dict)  # emotion -> control values
    preset_notes: dict[str, str] = field(default_factory=dict)
    light: Optional[LightDesc] = None
    focus_point: Optional[list[float]] = None  # Blender world (m): the face's centre, what the light aims at
    portrait: Optional[ViewDesc] = None  # a three-quarter close-up with a raking key light

    def view(self, name: str) -> ViewDesc:
        """The named view (:data:`VIEWS`); "photo" is the photo's camera, light and size."""
        if name == "portrait" and self.portrait is not None:
            return self.portrait
        if name not in VIEWS:
            raise ValueError(f"unknown view {name!r}; one of {', '.join(VIEWS)}")
        return ViewDesc(self.camera, self.light, self.render.resolution)

    def save(self, path: str | os.PathLike) -> None:
        jsonfile.write_atomic(path, to_json(self))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SceneDescription":
        return from_json(cls, jsonfile.read(path))
