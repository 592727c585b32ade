"""Wire a detail (displacement) map onto a face object.

One image datablock feeds both paths, so viewport and render always show the same map:
  viewport  the object's ``viewport_relief``: BUMP (default) leaves the mesh unsubdivided and the
            skin material's displacement, set to "displacement and bump", shows the relief as
            bump in Material Preview and the Cycles viewport — an AU slider then re-evaluates
            only the shape keys (~6 ms instead of ~380 ms for a level-2 mesh with wrinkles:
            docs/benchmarks.md); MESH subdivides twice and displaces the mesh (Subdivision ->
            Displace modifier: UV, along normals, mid-level 0), which shows the relief in Solid
            mode and on the silhouette;
  render    Cycles material displacement on the skin material, with adaptive subdivision
            on the same Subdivision modifier (the Displace modifier is off in renders, so the
            detail is never applied twice), whatever the viewport shows.
The map holds millimetres (see docs/detail_maps.md); ``strength`` converts to the mesh unit
(metres, ``protocol.scene.MM_TO_M``), so a value of 1.0 in the map moves the surface 1 mm.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ...protocol.scene import MM_TO_M
from . import storage

SUBSURF = "FaceDet3D Subdivision"
DISPLACE = "FaceDet3D Detail"
GROUP = "FaceDet3D detail"
IMAGE_NODE = "FaceDet3D detail map"
DISP_NODE = "FaceDet3D displacement"


def _vertex_group(obj, vertex_range) -> bpy.types.VertexGroup:
    vg = obj.vertex_groups.get(GROUP) or obj.vertex_groups.new(name=GROUP)
    lo, hi = vertex_range
    vg.add(list(range(int(lo), int(hi))), 1.0, "REPLACE")
    return vg


MESH_LEVELS = 2  # viewport subdivision when the relief is shown on the mesh (~422k vertices on ICT)
VIEWPORT_MODIFIERS = [DISPLACE]  # what MESH shows and BUMP hides (wrinkle_mix adds its own)


def apply_viewport_relief(obj) -> None:
    """Follow ``obj.facedet3d.viewport_relief`` (BUMP or MESH); renders are not affected."""
    mesh = obj.facedet3d.viewport_relief == "MESH"
    sub = obj.modifiers.get(SUBSURF)
    if sub is not None:
        sub.levels = MESH_LEVELS if mesh else 0
    for name in VIEWPORT_MODIFIERS:
        m = obj.modifiers.get(name)
        if m is not None:
            m.show_viewport = mesh


def _modifiers(obj, image, strength: float, vg_name: str):
    sub = obj.modifiers.get(SUBSURF) or obj.modifiers.new(SUBSURF, "SUBSURF")
    sub.render_levels = MESH_LEVELS  # unused by adaptive subdivision; kept for other engines
    sub.use_adaptive_subdivision = True  # Cycles dices to ~1 px at render time
    sub.adaptive_pixel_size = 1.0
    tex_name = f"{DISPLACE} {obj.name}"
    tex = bpy.data.textures.get(tex_name) or bpy.data.textures.new(tex_name, "IMAGE")
    tex.image = image
    tex.extension = "EXTEND"
    disp = obj.modifiers.get(DISPLACE) or obj.modifiers.new(DISPLACE, "DISPLACE")
    disp.texture = tex
    disp.texture_coords = "UV"
    disp.uv_layer = obj.data.uv_layers.active.name
    disp.direction = "NORMAL"
    disp.mid_level = 0.0
    disp.strength = strength
    disp.vertex_group = vg_name
    disp.show_render = False  # renders use the material displacement below
    # Order: shape keys -> subdivision -> displacement.
    names = [m.name for m in obj.modifiers]
    if names.index(DISPLACE) < names.index(SUBSURF):
        with bpy.context.temp_override(object=obj):
            bpy.ops.object.modifier_move_to_index(modifier=DISPLACE, index=len(obj.modifiers) - 1)
    return sub, disp


def _material(mat, image, strength: float, max_disp_m: float) -> None:
    nt = mat.node_tree
    out = next(n for n in nt.nodes if n.type == "OUTPUT_MATERIAL" and n.is_active_output)
    img_node = nt.nodes.get(IMAGE_NODE) or nt.nodes.new("ShaderNodeTexImage")
    img_node.name = img_node.label = IMAGE_NODE
    img_node.image = image
    img_node.interpolation = "Cubic"  # smooth dicing between texels
    img_node.extension = "EXTEND"
    img_node.location = (-400, -300)
    d = nt.nodes.get(DISP_NODE) or nt.nodes.new("ShaderNodeDisplacement")
    d.name = d.label = DISP_NODE
    d.space = "OBJECT"
    d.inputs["Midlevel"].default_value = 0.0
    d.inputs["Scale"].default_value = strength
    d.location = (-150, -300)
    nt.links.new(img_node.outputs["Color"], d.inputs["Height"])
    nt.links.new(d.outputs["Displacement"], out.inputs["Displacement"])
    # true displacement in Cycles renders (adaptive dicing ~1 px) plus bump from the same height:
    # finer than the dicing, and what Material Preview shows of the relief (viewport_relief BUMP)
    mat.displacement_method = "BOTH"
    mat.max_vertex_displacement = max_disp_m


def attach(obj, exr_path: Path, *, vertex_range, material_name: str, strength: float = MM_TO_M,
           max_disp_m: float = 0.003) -> bpy.types.Image:
    """Attach (or replace) the detail map of ``obj``; returns the image datablock."""
    old = None
    tex = bpy.data.textures.get(f"{DISPLACE} {obj.name}")
    if tex is not None:
        old = tex.image
    image = bpy.data.images.load(str(exr_path), check_existing=False)
    if image.size[0] == 0:
        bpy.data.images.remove(image)
        raise RuntimeError(f"{Path(exr_path).name} is not a readable EXR; rebuild the details.")
    image.colorspace_settings.name = "Non-Color"  # heights, not colours
    image.filepath = storage.store_path(Path(exr_path))
    vg = _vertex_group(obj, vertex_range)
    _modifiers(obj, image, strength, vg.name)
    mat = next(m for m in obj.data.materials if m and m.name.endswith(material_name))
    _material(mat, image, strength, max_disp_m)
    apply_viewport_relief(obj)
    if old is not None and old != image and old.users == 0:
        bpy.data.images.remove(old)
    return image


def detach(obj) -> None:
    """Remove the detail map's wiring (modifiers, material nodes); the maps stay on disk. With
    animated wrinkles on top, ``details.remove`` takes both off."""
    for name in (DISPLACE, SUBSURF):
        m = obj.modifiers.get(name)
        if m is not None:
            obj.modifiers.remove(m)
    for mat in obj.data.materials:
        if mat is None or mat.node_tree is None:
            continue
        for name in (DISP_NODE, IMAGE_NODE):
            n = mat.node_tree.nodes.get(name)
            if n is not None:
                mat.node_tree.nodes.remove(n)
