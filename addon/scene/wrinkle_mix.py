"""Wrinkles that follow the animation (the backend's ``wrinkles`` maps, see backend/detail/rig.py).

    D(t) = B + Σ_c v_c(t) W_c + Σ_k β_k(t) C_k

B is the detail map ``displacement.attach`` wires; this module adds the sum over per-control
maps W_c (RGB packs, weights = the AU controls) and key corrections C_k (weights β_k, keyed
properties that cross-fade between the AU keyframes; both are plain custom properties of the face
object, as the AU controls are: scene/au_rig.py says why). The same sum is built twice from one
description: a shader node group added to B's height in the skin material (Cycles, adaptive
subdivision) and a Geometry Nodes modifier for the viewport (before the Displace modifier,
along the smooth surface's normals). All weights are simple-expression drivers (``v``) reading
the face's own properties: nothing needs the backend or Python at playback or render time.
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy

from ...protocol.details import AUTO_MODEL, WrinkleKey, WrinkleRig, values_key
from ...protocol.methods import WrinklesParams
from ...protocol.scene import MM_TO_M
from . import au_rig, displacement, storage

SHADER_GROUP = "FaceDet3D wrinkles"
GEO_GROUP = "FaceDet3D wrinkles viewport"
MODIFIER = "FaceDet3D Wrinkles"
SUM_NODE = "FaceDet3D detail sum"
GROUP_NODE = "FaceDet3D wrinkle mix"
# Cycles bounds displaced geometry by this (metres); wrinkles peak at ~2.5 mm on top of the
# person's detail (±1-3 mm). Too small clips the displacement, larger only loosens the BVH.
MAX_DISPLACEMENT_M = 0.008
displacement.VIEWPORT_MODIFIERS.append(MODIFIER)  # the viewport's wrinkle mesh: MESH relief only


# ------------------------------------------------------------------ node building

def _image(job_dir: Path, name: str) -> bpy.types.Image:
    path = job_dir / name
    img = bpy.data.images.load(str(path), check_existing=True)
    if img.size[0] == 0:
        raise RuntimeError(f"{name} is not a readable EXR; rebuild the wrinkle maps.")
    img.colorspace_settings.name = "Non-Color"  # heights, not colours
    img.alpha_mode = "NONE"
    img.filepath = storage.store_path(path)
    return img


def _mix(nt, obj, packs, keys, sample) -> bpy.types.NodeSocket:
    """Σ pack·weights + Σ key·β in tree ``nt``; ``sample(image, y)`` makes the tree's image
    lookup and returns its colour socket. Returns the sum's socket (a 0 value if empty)."""
    links = nt.links
    terms = []
    for i, (img, controls) in enumerate(packs):
        col = sample(img, -300 * i)
        w = nt.nodes.new("ShaderNodeCombineXYZ")
        w.name = f"weights {img.name}"
        w.location = (-400, -300 * i - 150)
        for ch, key in enumerate(controls):
            au_rig.drive(w.inputs[ch], "default_value", obj, au_rig.path(key))
        dot = nt.nodes.new("ShaderNodeVectorMath")
        dot.operation = "DOT_PRODUCT"
        dot.location = (-150, -300 * i)
        links.new(col, dot.inputs[0])
        links.new(w.outputs[0], dot.inputs[1])
        terms.append(dot.outputs["Value"])
    for j, (img, key_name) in enumerate(keys):
        y = -300 * (len(packs) + j)
        col = sample(img, y)
        m = nt.nodes.new("ShaderNodeMath")
        m.operation = "MULTIPLY"
        m.name = f"beta {key_name}"
        m.location = (-150, y)
        links.new(col, m.inputs[0])
        au_rig.drive(m.inputs[1], "default_value", obj, au_rig.path(key_name))
        terms.append(m.outputs[0])
    if not terms:
        zero = nt.nodes.new("ShaderNodeValue")
        zero.outputs[0].default_value = 0.0
        return zero.outputs[0]
    total = terms[0]
    for k, t in enumerate(terms[1:]):
        add = nt.nodes.new("ShaderNodeMath")
        add.operation = "ADD"
        add.location = (100 + 40 * k, -150 * k)
        links.new(total, add.inputs[0])
        links.new(t, add.inputs[1])
        total = add.outputs[0]
    return total


def _fresh_group(name: str, kind: str):
    ng = bpy.data.node_groups.get(name)
    if ng is not None:
        bpy.data.node_groups.remove(ng)
    return bpy.data.node_groups.new(name, kind)


def _shader_group(obj, uv_name: str, packs, keys):
    ng = _fresh_group(f"{SHADER_GROUP} {obj.name}", "ShaderNodeTree")
    ng.interface.new_socket("Height", in_out="OUTPUT", socket_type="NodeSocketFloat")
    uv = ng.nodes.new("ShaderNodeUVMap")
    uv.uv_map = uv_name
    uv.location = (-900, 0)

    def sample(img, y):
        t = ng.nodes.new("ShaderNodeTexImage")
        t.image = img
        t.interpolation = "Linear"  # the backend's key corrections assume linear sampling
        t.extension = "EXTEND"
        t.location = (-650, y)
        ng.links.new(uv.outputs["UV"], t.inputs["Vector"])
        return t.outputs["Color"]

    total = _mix(ng, obj, packs, keys, sample)
    out = ng.nodes.new("NodeGroupOutput")
    out.location = (600, 0)
    ng.links.new(total, out.inputs["Height"])
    return ng


def _geometry_group(obj, uv_name: str, vg_name: str, packs, keys):
    ng = _fresh_group(f"{GEO_GROUP} {obj.name}", "GeometryNodeTree")
    ng.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    ng.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    n, L = ng.nodes, ng.links
    uv = n.new("GeometryNodeInputNamedAttribute")
    uv.data_type = "FLOAT_VECTOR"
    uv.inputs["Name"].default_value = uv_name
    uv.location = (-900, 0)

    def sample(img, y):
        t = n.new("GeometryNodeImageTexture")
        t.inputs["Image"].default_value = img
        t.interpolation = "Linear"
        t.extension = "EXTEND"
        t.location = (-650, y)
        L.new(uv.outputs["Attribute"], t.inputs["Vector"])
        return t.outputs["Color"]

    total = _mix(ng, obj, packs, keys, sample)
    weight = n.new("GeometryNodeInputNamedAttribute")  # the skin vertex group: 1 on the face skin
    weight.data_type = "FLOAT"
    weight.inputs["Name"].default_value = vg_name
    scale = n.new("ShaderNodeMath")
    scale.operation = "MULTIPLY"
    L.new(total, scale.inputs[0])
    L.new(weight.outputs["Attribute"], scale.inputs[1])
    mm = n.new("ShaderNodeMath")
    mm.operation = "MULTIPLY"
    L.new(scale.outputs[0], mm.inputs[0])
    mm.inputs[1].default_value = MM_TO_M
    normal = n.new("GeometryNodeInputNormal")
    offset = n.new("ShaderNodeVectorMath")
    offset.operation = "SCALE"
    L.new(normal.outputs["Normal"], offset.inputs[0])
    L.new(mm.outputs[0], offset.inputs["Scale"])
    gin, gout = n.new("NodeGroupInput"), n.new("NodeGroupOutput")
    setp = n.new("GeometryNodeSetPosition")
    L.new(gin.outputs[0], setp.inputs["Geometry"])
    L.new(offset.outputs["Vector"], setp.inputs["Offset"])
    L.new(setp.outputs["Geometry"], gout.inputs[0])
    gin.location, setp.location, gout.location = (-300, 300), (800, 200), (1000, 200)
    return ng


# ------------------------------------------------------------------ wiring

def _skin_material(obj, material_name: str):
    return next(m for m in obj.data.materials if m and m.name.endswith(material_name))


def _wire_material(mat, group) -> None:
    nt = mat.node_tree
    img = nt.nodes[displacement.IMAGE_NODE]
    disp = nt.nodes[displacement.DISP_NODE]
    gnode = nt.nodes.get(GROUP_NODE) or nt.nodes.new("ShaderNodeGroup")
    gnode.name = gnode.label = GROUP_NODE
    gnode.node_tree = group
    gnode.location = (-400, -600)
    add = nt.nodes.get(SUM_NODE) or nt.nodes.new("ShaderNodeMath")
    add.name = add.label = SUM_NODE
    add.operation = "ADD"
    add.location = (-250, -450)
    nt.links.new(img.outputs["Color"], add.inputs[0])
    nt.links.new(gnode.outputs["Height"], add.inputs[1])
    nt.links.new(add.outputs[0], disp.inputs["Height"])
    mat.max_vertex_displacement = MAX_DISPLACEMENT_M


def _wire_modifier(obj, group) -> None:
    mod = obj.modifiers.get(MODIFIER) or obj.modifiers.new(MODIFIER, "NODES")
    mod.node_group = group
    mod.show_render = False  # renders use the material's displacement
    names = [m.name for m in obj.modifiers]
    # shape keys -> subdivision -> wrinkles (smooth normals) -> person's detail
    want = names.index(displacement.DISPLACE)
    if names.index(MODIFIER) > want:
        with bpy.context.temp_override(object=obj):
            bpy.ops.object.modifier_move_to_index(modifier=MODIFIER, index=want)


def _key_weights(obj, keys: list[WrinkleKey]) -> None:
    """β_k keyframes: 1 at key k's frame, 0 at its neighbours' (constant outside), so the
    weights of neighbouring keys always sum to 1 and fade with the same ease."""
    fd = obj.facedet3d
    old = {item.name for item in fd.wrinkle_keys}
    bag = _channelbag(obj)
    if bag is not None:
        for fc in [fc for fc in bag.fcurves if au_rig.key_of(fc.data_path) in old]:
            bag.fcurves.remove(fc)
    for name in old:
        au_rig.remove_value(obj, name)
    fd.wrinkle_keys.clear()
    ordered = sorted(keys, key=lambda k: k.frame)
    frames = [int(k.frame) for k in ordered]
    for i, k in enumerate(ordered):
        item = fd.wrinkle_keys.add()
        item.name = Path(k.file).stem
        item.frame = frames[i]
        item.values_json = json.dumps(k.values, sort_keys=True)
        au_rig.add_value(obj, item.name, 0.0, f"How much of the exact wrinkles of the key at frame {frames[i]} "
                                              "show (keyed: 1 there, cross-fading to the neighbouring keys)")
        for f in {frames[max(i - 1, 0)], frames[i], frames[min(i + 1, len(frames) - 1)]}:
            obj[item.name] = 1.0 if f == frames[i] else 0.0
            obj.keyframe_insert(au_rig.path(item.name), frame=f, group="FaceDet3D wrinkle keys")


def attach(obj, rig: WrinkleRig) -> None:
    """Wire the backend's ``wrinkles`` answer onto ``obj`` (replacing an earlier one). Every
    map is loaded before the object is touched, so an unreadable or missing map raises with
    the object as it was (and the maps loaded for it removed again)."""
    jd = Path(rig.job_dir)
    ordered = sorted(rig.keys, key=lambda k: k.frame)
    before = set(bpy.data.images)
    try:
        packs = [(_image(jd, p.file), p.controls) for p in rig.packs]
        keys = [(_image(jd, k.file), Path(k.file).stem) for k in ordered]
    except Exception:
        for img in set(bpy.data.images) - before:
            bpy.data.images.remove(img)
        raise
    displacement.attach(obj, jd / rig.base.file, vertex_range=rig.vertex_range,
                        material_name=rig.material)  # checks its map before changing anything
    _key_weights(obj, ordered)
    uv_name = obj.data.uv_layers.active.name
    sg = _shader_group(obj, uv_name, packs, keys)
    gg = _geometry_group(obj, uv_name, displacement.GROUP, packs, keys)
    _wire_material(_skin_material(obj, rig.material), sg)
    _wire_modifier(obj, gg)
    displacement.apply_viewport_relief(obj)
    fd = obj.facedet3d
    fd.wrinkle_rig = rig.tag
    fd.detail_tag = rig.base.tag
    fd.detail_model = rig.model
    bpy.context.scene.frame_set(bpy.context.scene.frame_current)


def detach(obj) -> None:
    """Remove the animated wrinkles (the person's detail map stays attached)."""
    m = obj.modifiers.get(MODIFIER)
    if m is not None:
        obj.modifiers.remove(m)
    for mat in obj.data.materials:
        nt = mat.node_tree if mat else None
        if nt is None or nt.nodes.get(SUM_NODE) is None:
            continue
        nt.links.new(nt.nodes[displacement.IMAGE_NODE].outputs["Color"],
                     nt.nodes[displacement.DISP_NODE].inputs["Height"])
        for name in (SUM_NODE, GROUP_NODE):
            nt.nodes.remove(nt.nodes[name])
    for name in (f"{SHADER_GROUP} {obj.name}", f"{GEO_GROUP} {obj.name}"):
        ng = bpy.data.node_groups.get(name)
        if ng is not None:
            bpy.data.node_groups.remove(ng)
    _key_weights(obj, [])
    obj.facedet3d.wrinkle_rig = ""


# ------------------------------------------------------------------ keys from the animation

def _channelbag(obj):
    """The F-curves of the object's action slot (Blender 5 keeps them in channelbags)."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        return None
    from bpy_extras import anim_utils

    return anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)


def _au_fcurves(obj) -> dict[str, bpy.types.FCurve]:
    """AU control name -> its F-curve."""
    bag = _channelbag(obj)
    if bag is None:
        return {}
    names = {item.name for item in obj.facedet3d.aus}
    return {au_rig.key_of(fc.data_path): fc for fc in bag.fcurves if au_rig.key_of(fc.data_path) in names}


def animation_keys(obj) -> list[dict]:
    """The keyed expressions: every frame with an AU keyframe, with all control values there
    (animated controls from their curves, the others at their current value), rounded to 3
    decimals and zeros dropped: the backend names key maps by exactly these values."""
    curves = _au_fcurves(obj)
    frames = sorted({int(round(kp.co[0])) for fc in curves.values() for kp in fc.keyframe_points})
    keys = []
    for f in frames:
        values = {item.name: float(curves[item.name].evaluate(f)) if item.name in curves
                  else au_rig.value(obj, item.name) for item in obj.facedet3d.aus}
        keys.append({"frame": f, "values": values_key(values)})
    return keys


def stale_keys(obj) -> bool:
    """True when the baked key maps no longer match the AU keyframes (keys added, moved or
    changed since): the wrinkles at keys are then no longer exact."""
    have = [(k.frame, json.loads(k.values_json or "{}")) for k in obj.facedet3d.wrinkle_keys]
    return have != [(k["frame"], k["values"]) for k in animation_keys(obj)]


def animated_controls(obj, keys: list[dict] | None = None) -> list[str]:
    """Controls that are non-zero now or at any keyed expression."""
    keys = animation_keys(obj) if keys is None else keys
    used = {item.name for item in obj.facedet3d.aus if au_rig.value(obj, item.name) > 0}
    for k in keys:
        used |= {n for n, v in k["values"].items() if v > 0}
    return [item.name for item in obj.facedet3d.aus if item.name in used]


def request(obj, size: int, base_size: int, seed: int = 0, model: str = AUTO_MODEL, age: float = 0.0,
            animated_only: bool = False) -> WrinklesParams:
    """The ``wrinkles`` request for ``obj``: its job folder, its keyed expressions, and every AU
    control or (``animated_only``) those keyed or set now. ``age`` 0: the face's estimate."""
    keys = animation_keys(obj)
    return WrinklesParams(job_dir=bpy.path.abspath(obj.facedet3d.job_dir), size=int(size), base_size=int(base_size),
                          seed=int(seed), keys=keys, model=model, age=age if age > 0 else None,
                          controls=animated_controls(obj, keys) if animated_only else None)
