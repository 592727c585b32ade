"""Build a Blender scene from a backend job folder (mesh.npz, scene.json, textures).

Only applies what the backend computed: no fitting, projection or frame maths here.
Everything is created into new datablocks and removed again if any step fails, so a
failed build leaves the file as it was.

Extra render passes (the neural-render compositing pass, later) register a callable in
``RENDER_PASS_HOOKS``; each is called with (context, built) after the scene is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import bpy
import numpy as np
from mathutils import Matrix

from ...protocol.job import FaceReconstruction
from ...protocol.scene import MM_TO_M, CameraDesc, LightDesc, MaterialGroup, SceneDescription
from . import au_rig, storage

RENDER_PASS_HOOKS: list[Callable[["bpy.types.Context", "BuiltFace"], None]] = []


@dataclass
class BuiltFace:
    obj: bpy.types.Object
    camera: bpy.types.Object
    light: bpy.types.Object
    collection: bpy.types.Collection
    job_dir: Path
    created: list = field(default_factory=list)  # (collection name in bpy.data, datablock)


class _Tracker:
    """Remembers every datablock made, to remove them all if the build fails."""

    def __init__(self):
        self.items: list[tuple[str, object]] = []

    def add(self, kind: str, block):
        self.items.append((kind, block))
        return block

    def rollback(self):
        for kind, block in reversed(self.items):
            try:
                getattr(bpy.data, kind).remove(block)
            except (ReferenceError, RuntimeError):
                pass
        self.items.clear()


class _SceneState:
    """The scene settings a build changes, to put back if it fails."""

    def __init__(self, scene):
        self.scene = scene
        self.camera = scene.camera
        self.world = scene.world
        r = scene.render
        self.render = (r.engine, r.resolution_x, r.resolution_y, r.resolution_percentage,
                       r.image_settings.file_format, scene.view_settings.view_transform)
        self.cycles = (scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising)

    def restore(self):
        s, r = self.scene, self.scene.render
        s.camera, s.world = self.camera, self.world
        (r.engine, r.resolution_x, r.resolution_y, r.resolution_percentage,
         r.image_settings.file_format, s.view_settings.view_transform) = self.render
        s.cycles.device, s.cycles.samples, s.cycles.use_denoising = self.cycles


def _load_image(path: Path, track: _Tracker, colorspace: str = "sRGB"):
    img = track.add("images", bpy.data.images.load(str(path), check_existing=False))
    if img.size[0] == 0:  # Blender loads lazily and reports an unreadable file as an empty image
        raise RuntimeError(f"{path.name} in {path.parent} is not a readable image; re-run the import.")
    img.colorspace_settings.name = colorspace
    img.filepath = storage.store_path(path)
    return img


def _material(group: MaterialGroup, job_dir: Path, files: dict, track: _Tracker, prefix: str):
    mat = track.add("materials", bpy.data.materials.new(f"{prefix}_{group.name}"))
    if mat.node_tree is None:  # Blender < 5 makes node trees only on request
        mat.use_nodes = True
    nt = mat.node_tree
    out = next(n for n in nt.nodes if n.type == "OUTPUT_MATERIAL")
    bsdf = next((n for n in nt.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if group.transparent:
        if bsdf is not None:
            nt.nodes.remove(bsdf)
        tr = nt.nodes.new("ShaderNodeBsdfTransparent")
        nt.links.new(tr.outputs[0], out.inputs["Surface"])
        mat.diffuse_color = (1, 1, 1, 0)
        return mat
    if group.cornea:
        # Clear, wet cornea: reflection by Fresnel, otherwise see-through to the iris.
        nt.nodes.remove(bsdf)
        tr = nt.nodes.new("ShaderNodeBsdfTransparent")
        gl = nt.nodes.new("ShaderNodeBsdfGlossy")
        gl.inputs["Roughness"].default_value = 0.03
        fr = nt.nodes.new("ShaderNodeFresnel")
        fr.inputs["IOR"].default_value = 1.376
        mix = nt.nodes.new("ShaderNodeMixShader")
        nt.links.new(fr.outputs[0], mix.inputs[0])
        nt.links.new(tr.outputs[0], mix.inputs[1])
        nt.links.new(gl.outputs[0], mix.inputs[2])
        nt.links.new(mix.outputs[0], out.inputs["Surface"])
        mat.diffuse_color = (1, 1, 1, 0.1)
        return mat
    bsdf.inputs["Roughness"].default_value = group.roughness
    bsdf.inputs["Alpha"].default_value = group.alpha
    if group.ior is not None:
        bsdf.inputs["IOR"].default_value = group.ior
    if group.subsurface_radius_mm is not None:
        bsdf.inputs["Subsurface Weight"].default_value = group.subsurface_weight
        bsdf.inputs["Subsurface Radius"].default_value = group.subsurface_radius_mm
        bsdf.inputs["Subsurface Scale"].default_value = MM_TO_M  # the radii are in mm, the scene in metres
    tex_role = group.texture
    if tex_role and tex_role in files:
        tex = nt.nodes.new("ShaderNodeTexImage")
        tex.image = _load_image(job_dir / files[tex_role], track)
        tex.extension = "REPEAT"  # UV tiles beyond 0..1 (head and neck live in tile 1) wrap
        tex.location = (-400, 250)
        nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        if group.surface and group.surface in files:
            # regional roughness and specular (backend.reconstruct.skin_material): linear data
            surf = nt.nodes.new("ShaderNodeTexImage")
            surf.name = surf.label = "Skin surface"
            surf.image = _load_image(job_dir / files[group.surface], track, colorspace="Non-Color")
            surf.extension = "REPEAT"
            surf.location = (-700, -150)
            sep = nt.nodes.new("ShaderNodeSeparateColor")
            sep.location = (-400, -150)
            nt.links.new(surf.outputs["Color"], sep.inputs["Color"])
            nt.links.new(sep.outputs["Red"], bsdf.inputs["Specular IOR Level"])
            nt.links.new(sep.outputs["Green"], bsdf.inputs["Roughness"])
    elif group.vertex_color:
        attr = nt.nodes.new("ShaderNodeAttribute")
        attr.attribute_name = group.vertex_color
        attr.location = (-400, 250)
        nt.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        c = group.color or [0.8, 0.8, 0.8]
        bsdf.inputs["Base Color"].default_value = (*c, 1.0)
        mat.diffuse_color = (*c, 1.0)
    return mat


def _mesh(name: str, mesh_npz: dict, obj_m: np.ndarray, track: _Tracker) -> bpy.types.Mesh:
    verts = mesh_npz["vertices"].astype(np.float64) @ obj_m[:3, :3].T + obj_m[:3, 3]
    sizes = mesh_npz["polygon_sizes"]
    corners = mesh_npz["corner_vertices"]
    me = track.add("meshes", bpy.data.meshes.new(name))
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.astype(np.float32).ravel())
    me.loops.add(len(corners))
    me.loops.foreach_set("vertex_index", corners.astype(np.int32))
    me.polygons.add(len(sizes))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    me.polygons.foreach_set("loop_start", starts)
    me.polygons.foreach_set("material_index", mesh_npz["polygon_materials"].astype(np.int32))
    uv = me.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", mesh_npz["uvs"][mesh_npz["corner_uvs"]].astype(np.float32).ravel())
    if "eye_color" in mesh_npz:
        ca = me.color_attributes.new("eye_color", "FLOAT_COLOR", "POINT")
        ca.data.foreach_set("color", mesh_npz["eye_color"].astype(np.float32).ravel())
    me.update(calc_edges=True)
    me.polygons.foreach_set("use_smooth", np.ones(len(sizes), bool))
    return me


def _shape_keys(obj, mesh_npz: dict, obj_m: np.ndarray, values: dict):
    basis = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", basis)
    basis = basis.reshape(-1, 3)
    obj.shape_key_add(name="Basis", from_mix=False)
    lin = obj_m[:3, :3]
    for name, delta in zip(mesh_npz["expression_names"], mesh_npz["expression_deltas"]):
        sk = obj.shape_key_add(name=str(name), from_mix=False)
        sk.data.foreach_set("co", (basis + delta.astype(np.float64) @ lin.T).astype(np.float32).ravel())
        sk.slider_max = 1.0
        sk.value = float(values.get(str(name), 0.0))
    obj.data.shape_keys.use_relative = True


def _camera(name: str, cam_desc: CameraDesc, track: _Tracker):
    cam = track.add("cameras", bpy.data.cameras.new(name))
    cam.lens = cam_desc.lens_mm
    cam.sensor_width = cam_desc.sensor_width_mm
    cam.sensor_fit = cam_desc.sensor_fit
    cam.clip_start = cam_desc.clip_start_m
    cam.clip_end = cam_desc.clip_end_m
    obj = track.add("objects", bpy.data.objects.new(name, cam))
    obj.matrix_world = Matrix(cam_desc.matrix_world)
    return obj


def _light(name: str, desc: LightDesc, track: _Tracker):
    """The key light scene.json places (a soft area light above and beside the camera, aimed at
    the face: the photo texture already carries the photo's lighting, it only adds shape)."""
    light = track.add("lights", bpy.data.lights.new(name, desc.kind))
    light.size = desc.size_m
    light.energy = desc.energy_w
    obj = track.add("objects", bpy.data.objects.new(name, light))
    obj.matrix_world = Matrix(desc.matrix_world)
    return obj


def configure_render(scene, resolution, samples: int = 64, world_strength: float = 0.75):
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.render.resolution_x, scene.render.resolution_y = int(resolution[0]), int(resolution[1])
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "Standard"  # the texture is a photo: show it as shot
    world = bpy.data.worlds.get("FaceDet3D World") or bpy.data.worlds.new("FaceDet3D World")
    scene.world = world
    # White light from all around shows the photo texture as it was shot; the camera sees a
    # neutral mid-grey backdrop instead of the bright light source.
    light = lit_world_with_backdrop(world)
    light.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    light.inputs["Strength"].default_value = world_strength


BACKDROP = (0.18, 0.18, 0.18, 1.0)  # what the camera sees behind the head


def lit_world_with_backdrop(world):
    """Clear ``world``'s nodes and make: a Background that lights the scene (returned, for the
    caller to feed) and, for camera rays only, the mid-grey backdrop."""
    if world.node_tree is None:
        world.use_nodes = True
    nt = world.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputWorld")
    light = nt.nodes.new("ShaderNodeBackground")
    backdrop = nt.nodes.new("ShaderNodeBackground")
    backdrop.inputs["Color"].default_value = BACKDROP
    path = nt.nodes.new("ShaderNodeLightPath")
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(path.outputs["Is Camera Ray"], mix.inputs[0])
    nt.links.new(light.outputs[0], mix.inputs[1])
    nt.links.new(backdrop.outputs[0], mix.inputs[2])
    nt.links.new(mix.outputs[0], out.inputs["Surface"])
    return light


def build_face(context, job_dir: Path, name: str | None = None, set_active_camera: bool = True,
               view: str = "photo") -> BuiltFace:
    """Create the face object, its materials, camera and light from a finished job folder;
    ``view`` ("photo" or "portrait", ``protocol.scene.VIEWS``) picks the camera and light."""
    job_dir = Path(job_dir)
    face = FaceReconstruction.load(job_dir)
    desc = SceneDescription.load(job_dir / face.files["scene"])
    with np.load(job_dir / face.files["mesh"]) as z:
        mesh_npz = {k: z[k] for k in z.files}
    name = name or job_dir.name
    obj_m = np.asarray(desc.object_matrix, np.float64)
    scene = context.scene
    track = _Tracker()
    saved = _SceneState(scene)
    try:
        coll = track.add("collections", bpy.data.collections.new(f"FaceDet3D {name}"))
        me = _mesh(name, mesh_npz, obj_m, track)
        for group in desc.materials:
            me.materials.append(_material(group, job_dir, face.files, track, name))
        obj = track.add("objects", bpy.data.objects.new(name, me))
        coll.objects.link(obj)
        _shape_keys(obj, mesh_npz, obj_m, desc.shape_keys)
        if desc.au_rig:
            au_rig.install(obj, desc.au_rig, desc.au_values, desc.presets)
        shot = desc.view(view)
        cam = _camera(f"{name} Camera", shot.camera, track)
        coll.objects.link(cam)
        light = _light(f"{name} Key Light", shot.light, track)
        coll.objects.link(light)

        fd = obj.facedet3d
        fd.job_dir = storage.store_path(job_dir)
        fd.source_image = face.image
        fd.model = face.model
        fd.fit_error_iod = face.fit.error_iod
        fd.aus_json = json.dumps(face.aus)

        scene.collection.children.link(coll)
        built = BuiltFace(obj, cam, light, coll, job_dir, list(track.items))
        if set_active_camera:
            scene.camera = cam
            configure_render(scene, shot.resolution, world_strength=shot.world_strength)
        for hook in RENDER_PASS_HOOKS:
            hook(context, built)
    except Exception:
        if "coll" in locals() and coll.name in scene.collection.children:
            scene.collection.children.unlink(coll)
        saved.restore()
        track.rollback()
        raise
    return built
