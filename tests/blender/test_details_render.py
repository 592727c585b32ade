"""Add Details through the real operator and the backend, then Cycles: the render changes where
the expression wrinkles are and not far from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHIPPED_NETS, bpy

MODELS = ["physical", pytest.param("deth", marks=pytest.mark.skipif(not SHIPPED_NETS, reason="no DetH weights"))]
BROWS = ("AU1L", "AU1R", "AU2L", "AU2R")  # inner and outer brow raisers


@pytest.fixture()
def face(empty_scene, job_dir, ext):
    built = ext.addon.scene.builder.build_face(bpy.context, job_dir, name="Wrinkles")
    obj = built.obj
    for k in obj.data.shape_keys.key_blocks[1:]:
        k.value = 0.0  # shapes outside the AU rig (the rig's drivers override the rest)
    for item in obj.facedet3d.aus:
        item.value = 1.0 if item.name in BROWS else 0.0
    bpy.context.view_layer.objects.active = obj
    return obj


def _render_face_box(job_dir, tmp_path, name: str) -> np.ndarray:
    """Render only the face's box at 2x the photo's resolution; returns luminance, top row first."""
    face = json.loads((job_dir / "face.json").read_text())
    w, h = face["image_size"]
    scale = 2
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = w * scale, h * scale
    x0, y0, x1, y1 = face["detection"]["box"]
    pad = 0.25 * (x1 - x0)
    scene.render.use_border = True
    scene.render.use_crop_to_border = True
    scene.render.border_min_x, scene.render.border_max_x = (x0 - pad) / w, (x1 + pad) / w
    scene.render.border_min_y, scene.render.border_max_y = 1 - (y1 + pad) / h, 1 - (y0 - 2 * pad) / h
    scene.cycles.samples = 16
    scene.cycles.seed = 1
    scene.render.filepath = str(tmp_path / f"{name}.png")
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(scene.render.filepath)
    iw, ih = img.size
    px = np.empty(iw * ih * 4, np.float32)
    img.pixels.foreach_get(px)
    rgb = px.reshape(ih, iw, 4)[::-1, :, :3]
    origin = (x0 - pad) * scale, (y0 - 2 * pad) * scale  # image pixel of the crop's top-left
    return rgb @ np.array([0.2126, 0.7152, 0.0722]), origin, scale


@pytest.mark.parametrize("model", MODELS)
def test_add_details_operator_attaches_maps_for_the_current_expression(face, job_dir, model):
    bpy.ops.facedet3d.add_details(size=1024, detail_model=model)
    assert face.modifiers.get("FaceDet3D Detail") is not None
    side = json.loads((job_dir / f"detail_{face.facedet3d.detail_tag}.json").read_text())
    assert face.facedet3d.detail_model == side["model"] and (side["model"] == "physical") == (model == "physical")
    assert side["aus"].get("AU1") == 1.0 and side["aus"].get("AU2") == 1.0
    assert set(side["files"]) == {"256", "1024"}


@pytest.mark.parametrize("model", MODELS)
def test_render_with_details_differs_in_the_wrinkle_region_only(face, job_dir, ext, tmp_path, model):
    bpy.ops.facedet3d.add_details(size=1024, detail_model=model)
    with_d, origin, scale = _render_face_box(job_dir, tmp_path, "with")
    ext.addon.scene.details.remove(face)
    without, _, _ = _render_face_box(job_dir, tmp_path, "without")
    diff = np.abs(with_d - without)

    lm = (np.asarray(json.loads((job_dir / "face.json").read_text())["detection"]["landmarks"]) * scale
          - np.asarray(origin))
    iod = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
    x0, x1 = int(lm[19, 0]), int(lm[24, 0])  # between the brow peaks
    brow_y = int(min(lm[19, 1], lm[24, 1]))
    forehead = diff[max(brow_y - int(0.6 * iod), 0):brow_y - int(0.1 * iod), x0:x1]
    chin = diff[int(lm[57, 1] + 0.15 * iod):int(lm[8, 1] - 0.1 * iod), int(lm[6, 0]):int(lm[10, 0])]
    assert forehead.size > 50 and chin.size > 50
    assert forehead.mean() > 0.01, f"forehead wrinkles show in the render ({forehead.mean():.4f})"
    assert forehead.mean() > 3 * chin.mean(), (forehead.mean(), chin.mean())
