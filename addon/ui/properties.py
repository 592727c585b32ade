"""Properties saved in the .blend: what each face object was built from."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from ..scene import displacement


def _relief_changed(self, context):
    obj = self.id_data
    if getattr(obj, "type", None) == "MESH":
        displacement.apply_viewport_relief(obj)


class FACEDET3D_PG_au(bpy.types.PropertyGroup):
    """One Action Unit control's description (``name`` is its key, e.g. "AU12L")."""

    au: IntProperty(name="AU")
    side: StringProperty(name="Side")  # "L", "R" or "" for AUs without sides
    label: StringProperty(name="Action Unit")
    # its value is the face object's custom property ``name`` (scene/au_rig.py says why)


class FACEDET3D_PG_wrinkle_key(bpy.types.PropertyGroup):
    """One keyed expression's exact wrinkle map (``name``: the map's file stem)."""

    frame: IntProperty(name="Frame")
    # its weight is the face object's custom property ``name`` (scene/wrinkle_mix.py)
    values_json: StringProperty(name="AU values", description="The AU values the map was made for (JSON)")


class FACEDET3D_PG_face(bpy.types.PropertyGroup):
    job_dir: StringProperty(name="Job folder", subtype="DIR_PATH", options={"PATH_SUPPORTS_BLEND_RELATIVE"},
                            description="Folder of the reconstruction's files (relative once saved)")
    source_image: StringProperty(name="Photo", subtype="FILE_PATH")
    model: StringProperty(name="Model")
    fit_error_iod: FloatProperty(name="Fit error", description="Mean landmark reprojection error / "
                                 "inter-ocular distance", precision=4)
    aus_json: StringProperty(name="Source AUs", description="The photo's Action Units (JSON)")
    aus: CollectionProperty(type=FACEDET3D_PG_au, name="Action Units")
    presets_json: StringProperty(name="Emotion presets", description="EMFACS presets as AU values (JSON)")
    detail_tag: StringProperty(name="Detail maps", description="Which detail maps are attached "
                               "(the job folder's detail_<tag>.json)")
    detail_model: StringProperty(name="Detail model", description="Which model made the attached detail "
                                 "maps: physical (the wrinkle simulation) or the learned DetH + RCAN nets")
    wrinkle_rig: StringProperty(name="Wrinkle rig", description="Which per-AU wrinkle maps drive the "
                                "wrinkles (the job folder's wrinkles_<tag>.json); empty: none")
    wrinkle_keys: CollectionProperty(type=FACEDET3D_PG_wrinkle_key, name="Wrinkle keys")
    lighting: EnumProperty(
        name="Lighting", default="STUDIO",
        description="What lights the face: the studio world and key light over the photo texture, or the photo's "
                    "own light (its SH lighting as the world) over the albedo with that light divided out",
        items=[("STUDIO", "Studio", "The photo texture, a soft white world and the key light"),
               ("PHOTO", "Photo", "The albedo tiles and the photo's lighting as the world (no key light)")])
    neural: BoolProperty(name="Neural pass", default=False,
                         description="Whether the scene's compositor lays the face's neural images over the render")
    viewport_relief: EnumProperty(
        name="Viewport relief", default="BUMP", update=_relief_changed,
        description="How the viewport shows detail and wrinkles (renders always displace the surface)",
        items=[("BUMP", "Bump", "Shading only, in Material Preview and the rendered viewport: the mesh stays "
                "light and AU sliders stay interactive"),
               ("MESH", "Mesh", "Subdivide and displace the mesh: relief in Solid mode and on the silhouette, "
                "slow to follow the sliders")])

    @property
    def is_face(self) -> bool:
        return bool(self.job_dir)


CLASSES = (FACEDET3D_PG_au, FACEDET3D_PG_wrinkle_key, FACEDET3D_PG_face)


def register_props():
    bpy.types.Object.facedet3d = PointerProperty(type=FACEDET3D_PG_face)


def unregister_props():
    del bpy.types.Object.facedet3d
