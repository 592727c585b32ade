"""Detail maps in Blender: exact EXR round trip, and the displacement wiring on a real face."""

from __future__ import annotations

import numpy as np
from conftest import backend_run, bpy

PATTERN = """
import sys, numpy as np
from backend.core.exr_io import write_map
n = int(sys.argv[2])
i, j = np.mgrid[0:n, 0:n]
# Distinct, exactly representable half values; row 0 is v = 1 (the top of the UV tile).
m = ((i * 7 + j * 3) % 509 - 254) / 128.0
write_map(sys.argv[1], m.astype(np.float32))
"""


def expected(n: int) -> np.ndarray:
    i, j = np.mgrid[0:n, 0:n]
    return (((i * 7 + j * 3) % 509 - 254) / 128.0).astype(np.float16).astype(np.float32)


def blender_pixels(path) -> np.ndarray:
    """The image as Blender samples it, rows turned back to row 0 = v=1."""
    img = bpy.data.images.load(str(path))
    img.colorspace_settings.name = "Non-Color"
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    return px.reshape(h, w, 4)[::-1]


def test_exr_written_by_the_backend_reads_back_exactly_in_blender(tmp_path, ext):
    path = tmp_path / "pattern.exr"
    backend_run(PATTERN, str(path), "256")
    px = blender_pixels(path)
    want = expected(256)
    assert px.shape == (256, 256, 4)
    for c in range(3):  # one channel, shown as grey
        np.testing.assert_array_equal(px[..., c], want)
    assert want.min() < 0 < want.max(), "signed values survive"


def _evaluated(obj) -> np.ndarray:
    dg = bpy.context.evaluated_depsgraph_get()
    me = obj.evaluated_get(dg).to_mesh()
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    obj.evaluated_get(dg).to_mesh_clear()
    return co.reshape(-1, 3)


def test_attached_map_displaces_the_skin_along_normals_in_mm(empty_scene, job_dir, ext, tmp_path):
    path = tmp_path / "pattern.exr"
    backend_run(PATTERN, str(path), "512")
    built = ext.addon.scene.builder.build_face(bpy.context, job_dir, name="Detail")
    obj = built.obj
    base = _evaluated(obj)
    image = ext.addon.scene.displacement.attach(obj, path, vertex_range=(0, 9409), material_name="skin_face")
    assert len(_evaluated(obj)) == len(base), "viewport relief BUMP (default): the mesh is not subdivided"
    assert np.abs(_evaluated(obj) - base).max() < 1e-7, "... nor displaced (the material shows the relief)"
    obj.facedet3d.viewport_relief = "MESH"
    obj.modifiers["FaceDet3D Subdivision"].levels = 0  # vertex by vertex against the base below
    names = [m.name for m in obj.modifiers]
    assert names.index("FaceDet3D Subdivision") < names.index("FaceDet3D Detail")
    disp = obj.modifiers["FaceDet3D Detail"]
    assert not disp.show_render, "renders use the material displacement, never both"
    assert obj.modifiers["FaceDet3D Subdivision"].use_adaptive_subdivision
    skin = next(m for m in obj.data.materials if m.name.endswith("skin_face"))
    out = next(n for n in skin.node_tree.nodes if n.type == "OUTPUT_MATERIAL")
    assert out.inputs["Displacement"].is_linked and skin.displacement_method == "BOTH"
    img_nodes = [n for n in skin.node_tree.nodes if n.type == "TEX_IMAGE" and n.image == image]
    assert img_nodes and disp.texture.image == image, "one image feeds viewport and render"

    moved = _evaluated(obj)
    d = np.linalg.norm(moved - base, axis=1)
    assert d[9409:].max() < 1e-7, "only the face skin (vertex group) moves"
    # Every face vertex moves by |map value| mm: the pattern is within ±2 mm.
    assert 0.0005 < d[:9409].max() <= 0.002 + 1e-5
    assert np.median(d[:9409]) > 0.0002

    # Re-attaching replaces the map rather than stacking modifiers.
    ext.addon.scene.displacement.attach(obj, path, vertex_range=(0, 9409), material_name="skin_face")
    assert [m.name for m in obj.modifiers].count("FaceDet3D Detail") == 1
    ext.addon.scene.details.remove(obj)
    assert np.abs(_evaluated(obj) - base).max() < 1e-7


def test_viewport_relief_changes_the_viewport_only(empty_scene, job_dir, ext, tmp_path):
    """BUMP: the viewport mesh stays the face's own (sliders re-evaluate shape keys only); MESH:
    subdivided twice and displaced. A Cycles render is the same in both."""
    path = tmp_path / "pattern.exr"
    backend_run(PATTERN, str(path), "512")
    obj = ext.addon.scene.builder.build_face(bpy.context, job_dir, name="Relief").obj
    n = len(obj.data.vertices)
    ext.addon.scene.displacement.attach(obj, path, vertex_range=(0, 9409), material_name="skin_face")
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.cycles.samples, scene.cycles.seed = 4, 1
    shots = {}
    for mode in ("BUMP", "MESH"):
        obj.facedet3d.viewport_relief = mode
        count = len(_evaluated(obj))
        assert (count == n) if mode == "BUMP" else (count > 10 * n), (mode, count)
        scene.render.filepath = str(tmp_path / f"{mode}.png")
        bpy.ops.render.render(write_still=True)
        img = bpy.data.images.load(scene.render.filepath)
        px = np.empty(64 * 64 * 4, np.float32)
        img.pixels.foreach_get(px)
        shots[mode] = px
    assert np.abs(shots["BUMP"] - shots["MESH"]).max() < 1e-6, "renders do not depend on the viewport relief"
