"""The neural-render pass in the scene: rasters from Cycles, the backend's neural image, and a
compositor that lays it on the Cycles render.

Rasters: Blender's own passes, not the backend's ray caster. The neural image must land on the
pixels Cycles renders, at the frame's shape keys, drivers, head rotation, adaptive displacement
and camera, and only Blender knows all of those; sending them to the backend would mean
re-deriving the scene there. So for a frame a temporary scene holding only the face and the
camera renders, at a few samples per pixel and a transparent film, two view layers with the UV
and Normal passes: ``detailed`` (the face's own materials, displacement and all; with the material
index pass, the face skin's material at :data:`FACE_PASS_INDEX` for the render) and ``proxy``
(every material overridden by a plain one: no displacement, the smooth mesh). The samples
average the normals over each pixel, as the backend's training views do. The EXR goes to the
backend (``neural_frame``), which writes the neural image (RGBA, straight alpha) beside the
.blend: ``<job>/neural/frames/neural_<frame>.png``.

Compositor: the scene's compositing node group ``FaceDet3D Neural Composite`` (Blender 5:
a node group with a Group Output) is Render Layers -> Alpha Over (the neural image sequence,
straight alpha) -> output. It reads only the files, so the .blend reopens and re-composites
without the add-on or the backend; a frame with no neural image shows the plain render.
``use_compositing`` off gives the plain render back.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ...protocol import job as job_files
from ...protocol.scene import SKIN_FACE_MATERIAL
from . import storage

RASTER_SCENE = "FaceDet3D Neural Rasters"
PROXY_MATERIAL = "FaceDet3D Neural Proxy"
COMPOSITE = "FaceDet3D Neural Composite"
IMAGE_NODE = "FaceDet3D neural image"
DETAILED_LAYER, PROXY_LAYER = job_files.NEURAL_DETAILED_LAYER, job_files.NEURAL_PROXY_LAYER
FACE_PASS_INDEX = job_files.NEURAL_FACE_PASS_INDEX
RASTER_SAMPLES = 9  # per pixel: the normal pass averaged over the pixel, the UV near its centre
CYCLES_COPY = ("feature_set", "dicing_rate", "max_subdivisions", "offscreen_dicing_scale", "dicing_camera")


def frames_dir(job_dir: Path) -> Path:
    return job_dir / job_files.NEURAL_DIR / job_files.NEURAL_FRAMES_DIR


def frame_image(job_dir: Path, frame: int) -> Path:
    return frames_dir(job_dir) / job_files.NEURAL_FRAME.format(frame=frame)


def raster_path(job_dir: Path, frame: int) -> Path:
    return job_dir / job_files.NEURAL_DIR / job_files.NEURAL_RASTERS.format(frame=frame)


def _proxy_material():
    mat = bpy.data.materials.get(PROXY_MATERIAL) or bpy.data.materials.new(PROXY_MATERIAL)
    mat.use_fake_user = False
    return mat


def render_rasters(context, obj, frame: int, path: Path) -> Path:
    """Render the rasters of ``obj`` at ``frame`` through the scene's camera into ``path``
    (multilayer EXR); the temporary scene is removed whatever happens."""
    main = context.scene
    if main.camera is None:
        raise RuntimeError(f"the scene {main.name!r} has no camera to render the neural pass through")
    # Which pixels are the face's skin: its material's index pass. UVs alone cannot say: the
    # eyeballs' and the mouth's UVs lie in the face tile's range too. The indices are put back.
    indices = {m.name: m.pass_index for m in obj.data.materials if m is not None}
    sc = bpy.data.scenes.new(RASTER_SCENE)
    try:
        for m in obj.data.materials:
            if m is not None:
                m.pass_index = FACE_PASS_INDEX if m.name.endswith(SKIN_FACE_MATERIAL) else 0
        sc.collection.objects.link(obj)
        if main.camera.name not in sc.collection.objects:
            sc.collection.objects.link(main.camera)
        sc.camera = main.camera
        r, m = sc.render, main.render
        r.resolution_x, r.resolution_y, r.resolution_percentage = m.resolution_x, m.resolution_y, m.resolution_percentage
        r.pixel_aspect_x, r.pixel_aspect_y = m.pixel_aspect_x, m.pixel_aspect_y
        r.engine = "CYCLES"
        for name in CYCLES_COPY:  # the same dicing, so the same displaced surface
            if hasattr(main.cycles, name) and getattr(main.cycles, name) is not None:
                setattr(sc.cycles, name, getattr(main.cycles, name))
        sc.cycles.samples = RASTER_SAMPLES
        sc.cycles.use_adaptive_sampling = False
        sc.cycles.use_denoising = False
        r.film_transparent = True
        r.filter_size = 1.0  # about one pixel: the passes average what the pixel covers
        r.use_compositing = False
        detailed = sc.view_layers[0]
        detailed.name = DETAILED_LAYER
        proxy = sc.view_layers.new(PROXY_LAYER)
        proxy.material_override = _proxy_material()
        for vl in (detailed, proxy):
            vl.use_pass_uv = True
            vl.use_pass_normal = True
        detailed.use_pass_material_index = True
        s = r.image_settings
        s.media_type = "MULTI_LAYER_IMAGE"
        s.color_depth = "32"
        s.exr_codec = "ZIP"
        path.parent.mkdir(parents=True, exist_ok=True)
        r.filepath = str(path)
        r.use_file_extension = False
        sc.frame_set(frame)
        bpy.ops.render.render(write_still=True, scene=sc.name)
    finally:
        bpy.data.scenes.remove(sc)
        for m in obj.data.materials:
            if m is not None and m.name in indices:
                m.pass_index = indices[m.name]
    if not path.is_file():
        raise RuntimeError(f"Blender did not write the raster render {path}")
    return path


def _ours(ng) -> bool:
    return ng is not None and ng.get("facedet3d_neural") is not None


def composite(scene, job_dir: Path) -> None:
    """The scene's compositor lays the neural image sequence over the render. A compositing
    node group of the user's own is never replaced: the message says what to do."""
    ng = scene.compositing_node_group
    if ng is not None and not _ours(ng):
        raise RuntimeError(f"the scene already composites through its own node group {ng.name!r}; add the "
                           f"neural images ({frames_dir(job_dir)}) to it with an Alpha Over, or remove it first")
    if ng is None:
        ng = bpy.data.node_groups.new(COMPOSITE, "CompositorNodeTree")
        ng["facedet3d_neural"] = 1
        ng.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    ng.nodes.clear()
    rl = ng.nodes.new("CompositorNodeRLayers")
    rl.scene = scene
    img_node = ng.nodes.new("CompositorNodeImage")
    img_node.name = img_node.label = IMAGE_NODE
    first = sorted(frames_dir(job_dir).glob("neural_*.png"))
    if not first:
        raise RuntimeError(f"no neural images in {frames_dir(job_dir)}")
    img = bpy.data.images.load(str(first[0]), check_existing=True)
    img.source = "SEQUENCE"
    img.colorspace_settings.name = "sRGB"
    img.alpha_mode = "STRAIGHT"
    img.filepath = storage.store_path(first[0])
    img_node.image = img
    # files are named by scene frame: the sequence's frame n is the file numbered n
    img_node.frame_start = 1
    img_node.frame_offset = 0
    img_node.frame_duration = max(scene.frame_end, 1)
    img_node.use_auto_refresh = True
    over = ng.nodes.new("CompositorNodeAlphaOver")
    over.inputs["Straight Alpha"].default_value = True
    out = ng.nodes.new("NodeGroupOutput")
    ng.links.new(rl.outputs["Image"], over.inputs["Background"])
    ng.links.new(img_node.outputs["Image"], over.inputs["Foreground"])
    ng.links.new(over.outputs[0], out.inputs[0])
    rl.location, img_node.location, over.location, out.location = (-400, 100), (-400, -250), (0, 0), (250, 0)
    scene.compositing_node_group = ng
    scene.render.use_compositing = True


def plain(scene) -> None:
    """The plain Cycles render: our compositor off (kept, with its files, to turn back on)."""
    if _ours(scene.compositing_node_group):
        scene.render.use_compositing = False
