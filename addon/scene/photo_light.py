"""The photo's own lighting on a built face: the skin's albedo tiles and a world made from the
photo's SH lighting (the backend's ``photo_lighting`` files), instead of the photo texture under the
studio world and key light. ``studio`` puts the photo texture, the studio world and the key light
back. Which one is on is the face's ``lighting`` property; the .blend keeps both sets of files.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ...protocol import job as job_files
from . import builder, storage

WORLD = "FaceDet3D Photo World"
SWAP = {f"{job_files.FACE_TEXTURE}.png": job_files.ALBEDO_FILE,
        f"{job_files.HEAD_TEXTURE}.png": job_files.HEAD_ALBEDO_FILE}


def _skin_image_nodes(obj):
    """(node, file name) of every image node of the face's materials showing a texture or albedo tile."""
    names = set(SWAP) | set(SWAP.values())
    for mat in obj.data.materials:
        if mat is None or mat.node_tree is None:
            continue
        for node in mat.node_tree.nodes:
            if node.type == "TEX_IMAGE" and node.image is not None:
                name = Path(bpy.path.abspath(node.image.filepath)).name
                if name in names:
                    yield node, name


def _image(path: Path, colorspace: str = "sRGB"):
    img = bpy.data.images.load(str(path), check_existing=True)
    if img.size[0] == 0:
        raise RuntimeError(f"{path.name} in {path.parent} is not a readable image; make the photo lighting again.")
    img.colorspace_settings.name = colorspace
    img.filepath = storage.store_path(path)
    return img


def _key_lights(obj):
    for coll in obj.users_collection:
        for o in coll.objects:
            if o.type == "LIGHT":
                yield o


def _world(env_path: Path):
    world = bpy.data.worlds.get(WORLD) or bpy.data.worlds.new(WORLD)
    light = builder.lit_world_with_backdrop(world)
    light.inputs["Strength"].default_value = 1.0  # the image holds the radiance that gives the photo's light
    env = world.node_tree.nodes.new("ShaderNodeTexEnvironment")
    env.image = _image(env_path, "Non-Color")  # radiance, linear
    world.node_tree.links.new(env.outputs["Color"], light.inputs["Color"])
    return world


def apply(context, obj, job_dir: Path) -> None:
    """Albedo tiles on the skin, the photo's world on the scene, the key light off in renders."""
    missing = [f for f in (*SWAP.values(), job_files.LIGHTING_ENV) if not (job_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"the photo lighting files {', '.join(missing)} are missing from {job_dir}")
    images = {name: _image(job_dir / SWAP.get(name, name)) for _, name in _skin_image_nodes(obj)}
    world = _world(job_dir / job_files.LIGHTING_ENV)
    for node, name in list(_skin_image_nodes(obj)):
        node.image = images[name]
    context.scene.world = world
    for light in _key_lights(obj):
        light.hide_render = True
    obj.facedet3d.lighting = "PHOTO"


def studio(context, obj, job_dir: Path) -> None:
    """The photo texture, the studio world and the key light back."""
    back = {v: k for k, v in SWAP.items()}
    for node, name in list(_skin_image_nodes(obj)):
        if name in back:
            node.image = _image(job_dir / back[name])
    studio_world = bpy.data.worlds.get("FaceDet3D World")
    if studio_world is not None:
        context.scene.world = studio_world
    for light in _key_lights(obj):
        light.hide_render = False
    obj.facedet3d.lighting = "STUDIO"
