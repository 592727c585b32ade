"""The scene built from a real backend job: mesh, UVs, shape keys, materials, camera, render."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import bpy, datablock_counts

N_VERTICES = 26719  # ICT-FaceKit Light
N_EXPRESSIONS = 57


@pytest.fixture()
def built(empty_scene, job_dir, ext):
    return ext.addon.scene.builder.build_face(bpy.context, job_dir, name="Astronaut")


def test_mesh_has_model_topology_uvs_and_all_shape_keys(built, job_dir):
    me = built.obj.data
    assert len(me.vertices) == N_VERTICES
    assert len(me.polygons) == 26384
    assert me.uv_layers.active is not None
    uv = np.empty(len(me.loops) * 2, np.float32)
    me.uv_layers.active.data.foreach_get("uv", uv)
    assert 0.0 <= uv.min() and uv.max() < 8.0 and np.ptp(uv) > 1.0
    keys = built.obj.data.shape_keys.key_blocks
    assert keys[0].name == "Basis" and len(keys) == 1 + N_EXPRESSIONS
    face = json.loads((job_dir / "face.json").read_text())
    # The shape key values are the fitted expression weights.
    fitted = dict(zip(face["fit"]["expression_names"], face["fit"]["expression"]))
    for k in keys[1:]:
        assert k.value == pytest.approx(fitted[k.name], abs=1e-3)


def test_mesh_is_metric_upright_and_faces_front(built):
    me = built.obj.data
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    face = co[:9409]
    height = np.ptp(face[:, 2])
    assert 0.15 < height < 0.35, height  # a face is ~20-25 cm tall, in metres
    nose_tip = co[4857]  # ICT's landmark 30 (Multi-PIE nose tip)
    assert abs(nose_tip[0] - np.median(face[:, 0])) < 0.01, "the midline is at the face's centre"
    assert nose_tip[1] < np.percentile(face[:, 1], 2), "the nose points to -Y, towards the front view"
    cam = built.camera.matrix_world.translation
    assert cam.y < -0.2, "the camera sees the face from the front (-Y)"


def test_camera_reprojects_landmarks(built, job_dir):
    """Blender's camera projects the posed landmark vertices onto the detected landmarks."""
    from bpy_extras.object_utils import world_to_camera_view

    face = json.loads((job_dir / "face.json").read_text())
    scene = bpy.context.scene
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ev = built.obj.evaluated_get(depsgraph)
    me = ev.to_mesh()
    w, h = face["image_size"]
    idx = face["fit"]["landmark_vertices"]
    proj = []
    for i in idx:
        p = world_to_camera_view(scene, built.camera, built.obj.matrix_world @ me.vertices[i].co)
        proj.append((p.x * w, (1 - p.y) * h))
    ev.to_mesh_clear()
    proj = np.asarray(proj)
    det = np.asarray(face["detection"]["landmarks"])
    iod = np.linalg.norm(det[42:48].mean(0) - det[36:42].mean(0))
    err = np.linalg.norm(proj - det, axis=1).mean() / iod
    # Same figure as the backend's fit error, up to the render's pixel-centre convention.
    assert err == pytest.approx(face["fit"]["error_iod"], abs=0.01)
    assert err < 0.08


def test_materials_and_texture(built):
    mats = [m.name.split("_", 1)[1] for m in built.obj.data.materials]
    assert {"skin_face", "skin_head", "teeth", "cornea", "eyeball", "eye_socket", "eyelashes", "eye_helpers"} <= set(mats)
    skin = built.obj.data.materials[0]
    tex = next(n for n in skin.node_tree.nodes if n.type == "TEX_IMAGE")
    assert tex.image.size[0] == 512 and tex.image.has_data


def test_build_failure_leaves_scene_unchanged(empty_scene, job_dir, ext, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(job_dir, broken)
    (broken / "texture.png").write_bytes(b"not a png")
    before = datablock_counts()
    cam_before = bpy.context.scene.camera
    with pytest.raises(Exception):
        ext.addon.scene.builder.build_face(bpy.context, broken)
    assert datablock_counts() == before
    assert bpy.context.scene.camera == cam_before


def test_render_looks_like_the_photo(built, job_dir, tmp_path):
    """Rendered through the fitted camera, the face lands where it is in the photo and has
    its colours: skin-coloured, different from the backdrop, correlated with the photo."""
    face = json.loads((job_dir / "face.json").read_text())
    w, h = face["image_size"]
    size = 128
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size  # the photo is square
    scene.cycles.samples = 16
    scene.render.filepath = str(tmp_path / "r.png")
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(tmp_path / "r.png"))
    px = np.empty(size * size * 4, np.float32)
    img.pixels.foreach_get(px)
    render = px.reshape(size, size, 4)[::-1, :, :3]  # top row first
    photo_img = bpy.data.images.load(face["image"])
    photo_img.scale(size, size)
    px = np.empty(size * size * 4, np.float32)
    photo_img.pixels.foreach_get(px)
    photo = px.reshape(size, size, 4)[::-1, :, :3]

    lm = np.asarray(face["detection"]["landmarks"]) * size / w
    x0, x1 = int(lm[36, 0]), int(np.ceil(lm[45, 0]))
    y0, y1 = int(lm[19, 1]), int(np.ceil(lm[57, 1]))  # brows to lower lip, outer eye corners
    r, p = render[y0:y1, x0:x1].reshape(-1, 3), photo[y0:y1, x0:x1].reshape(-1, 3)
    backdrop = np.concatenate([render[:8, -8:].reshape(-1, 3), render[-8:, -8:].reshape(-1, 3)])
    assert np.abs(r.mean(0) - backdrop.mean(0)).max() > 0.15, "the face differs from the backdrop"
    red, green, blue = np.median(r, axis=0)
    assert red > green > blue and red > 0.3, f"skin-coloured (R > G > B): {red:.2f} {green:.2f} {blue:.2f}"
    assert np.abs(r.mean(0) - p.mean(0)).max() < 0.12, "the face keeps the photo's colour and brightness"
    lum_r, lum_p = r @ [0.2126, 0.7152, 0.0722], p @ [0.2126, 0.7152, 0.0722]
    assert np.corrcoef(lum_r, lum_p)[0, 1] > 0.6, "and its features, in place"


def test_skin_material_takes_regional_roughness_and_specular_and_skin_scattering(built, job_dir):
    """The face skin's Roughness and Specular IOR Level come from the backend's surface map (green,
    red), read by Blender as linear data with the backend's values (where they lie: the backend's
    test); subsurface radii in metres from the backend's millimetres; the measured IOR."""
    import numpy as np

    skin = next(m for m in built.obj.data.materials if m.name.endswith("skin_face"))
    nt = skin.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    rough, spec = bsdf.inputs["Roughness"].links[0], bsdf.inputs["Specular IOR Level"].links[0]
    assert (rough.from_socket.name, spec.from_socket.name) == ("Green", "Red")
    surf = rough.from_node.inputs["Color"].links[0].from_node
    assert surf.image.colorspace_settings.name == "Non-Color"
    w, h = surf.image.size
    px = np.asarray(surf.image.pixels[:], np.float32).reshape(h, w, 4)
    # read as linear data (as sRGB the cheeks' 0.55 would read 0.26): the backend's values, cheeks
    # the most common, the lips the smoothest
    g = np.round(px[..., 1] * 255).astype(int)
    assert np.bincount(g.ravel()).argmax() == round(0.55 * 255)
    assert g.min() == round(0.36 * 255) and np.round(px[..., 0] * 255).max() == round(0.6 * 255)
    radius = np.array(bsdf.inputs["Subsurface Radius"].default_value) * bsdf.inputs["Subsurface Scale"].default_value
    assert np.allclose(radius, [3.673e-3, 1.367e-3, 0.683e-3], atol=1e-6)
    assert bsdf.inputs["IOR"].default_value == pytest.approx(1.52)
    head = next(m for m in built.obj.data.materials if m.name.endswith("skin_head"))
    hb = next(n for n in head.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    assert not hb.inputs["Roughness"].links, "the head tile keeps one roughness (the map covers the face tile)"
