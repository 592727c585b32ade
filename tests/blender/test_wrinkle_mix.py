"""Wrinkles that follow the animation, in Blender: the viewport sum matches the formula, sliders
act live, Cycles frames show wrinkles only where AUs are active, a moved .blend renders the same,
and the glTF export carries the maps."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
from conftest import backend_run, bpy
from test_details_render import _landmark_pixels, _render

CONTROLS = ["AU1L", "AU1R", "AU2L", "AU2R", "AU12L", "AU12R"]
BROWS = {"AU1L": 1.0, "AU1R": 1.0, "AU2L": 1.0, "AU2R": 1.0}
SMILE = {"AU12L": 1.0, "AU12R": 1.0}
BUILD = """
import json, sys
from dataclasses import asdict
from backend.detail.rig import build_animation
a = json.loads(sys.argv[1])
print(json.dumps(asdict(build_animation(a["job_dir"], size=512, age=70.0, controls=a["controls"], keys=a["keys"],
                                        base_size=1024, detail_model="physical"))))
"""


@pytest.fixture(scope="module")
def shared_job(job_dir, tmp_path_factory):
    """A private copy of the job (maps are written into it) inside a folder that can move."""
    root = tmp_path_factory.mktemp("wrinkle_anim") / "a"
    shutil.copytree(job_dir, root / "astronaut_job")
    return root / "astronaut_job"


@pytest.fixture()
def face(empty_scene, shared_job, ext):
    # the portrait view and wrinkles at 70 (BUILD): creases a few pixels wide that a render shows
    obj = ext.addon.scene.builder.build_face(bpy.context, shared_job, name="Anim", view="portrait").obj
    for k in obj.data.shape_keys.key_blocks[1:]:
        k.value = 0.0  # shapes outside the rig stay neutral
    bpy.context.view_layer.objects.active = obj
    rig = ext.addon.scene.au_rig
    rig.apply_values(obj, BROWS)
    rig.keyframe(obj, 1)
    rig.apply_values(obj, SMILE)
    rig.keyframe(obj, 11)
    return obj


def wire(ext, obj, job):
    keys = ext.addon.scene.wrinkle_mix.animation_keys(obj)
    out = backend_run(BUILD, json.dumps({"job_dir": str(job), "controls": CONTROLS, "keys": keys}))
    res = json.loads(out.strip().splitlines()[-1])
    ext.addon.scene.wrinkle_mix.attach(obj, ext.protocol.details.WrinkleRig.from_dict(res))
    # the default viewport relief (BUMP) leaves the wrinkle mesh off in the viewport; these tests
    # check that mesh, so show it (MESH: what a user picks for Solid mode and silhouettes)
    assert obj.facedet3d.viewport_relief == "BUMP" and not obj.modifiers["FaceDet3D Wrinkles"].show_viewport
    obj.facedet3d.viewport_relief = "MESH"
    return res


def _mesh(obj):
    bpy.context.view_layer.update()
    dg = bpy.context.evaluated_depsgraph_get()
    me = obj.evaluated_get(dg).to_mesh()
    n = len(me.vertices)
    co, nor = np.empty(n * 3, np.float32), np.empty(n * 3, np.float32)
    me.vertices.foreach_get("co", co)
    me.vertex_normals.foreach_get("vector", nor)
    uv = np.empty(len(me.loops) * 2, np.float32)
    me.uv_layers.active.data.foreach_get("uv", uv)
    vi = np.empty(len(me.loops), np.int64)
    me.loops.foreach_get("vertex_index", vi)
    obj.evaluated_get(dg).to_mesh_clear()
    return co.reshape(-1, 3), nor.reshape(-1, 3), uv.reshape(-1, 2), vi


def _wrinkle_offset(obj):
    """Signed offset (mm) the wrinkle modifier adds along the normal, per vertex; and UVs."""
    mod = obj.modifiers["FaceDet3D Wrinkles"]
    disp = obj.modifiers["FaceDet3D Detail"]
    disp.show_viewport = False  # isolate the wrinkles from the person's detail
    a, _, uv, vi = _mesh(obj)
    mod.show_viewport = False
    b, nor, _, _ = _mesh(obj)
    mod.show_viewport = disp.show_viewport = True
    return np.einsum("ij,ij->i", a - b, nor) * 1000.0, uv, vi


def _pixels(img) -> np.ndarray:
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    return px.reshape(h, w, 4)  # row 0 = v = 0, as Blender samples


def _bilinear(px, uv):
    h, w = px.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip(uv[:, 1] * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    return ((px[y0, x0] * (1 - fx) + px[y0, x1] * fx) * (1 - fy)
            + (px[y1, x0] * (1 - fx) + px[y1, x1] * fx) * fy)


def _expected(ext, obj, res, uv, frame_values, betas):
    """D_w(uv) = Σ_c v_c W_c + Σ_k β_k C_k, sampled like the node tree (bilinear)."""
    out = np.zeros(len(uv))
    for p in res["packs"]:
        img = bpy.data.images[p["file"]]
        s = _bilinear(_pixels(img), uv)
        for ch, k in enumerate(p["controls"]):
            out += frame_values.get(k, 0.0) * s[:, ch]
    for k, beta in zip(res["keys"], betas):
        out += beta * _bilinear(_pixels(bpy.data.images[k["file"]]), uv)[:, 0]
    return out


def test_viewport_sum_is_the_formula_at_keys_and_between(face, shared_job, ext):
    res = wire(ext, face, shared_job)
    face.modifiers["FaceDet3D Subdivision"].levels = 0  # vertices = the mesh's, for exact UVs
    assert [m.name for m in face.modifiers] == ["FaceDet3D Subdivision", "FaceDet3D Wrinkles", "FaceDet3D Detail"]
    assert not face.modifiers["FaceDet3D Wrinkles"].show_render, "renders use the material"
    assert [k.frame for k in face.facedet3d.wrinkle_keys] == [1, 11]
    assert not ext.addon.scene.wrinkle_mix.stale_keys(face)
    for frame, betas in ((1, (1.0, 0.0)), (6, None), (11, (0.0, 1.0))):
        bpy.context.scene.frame_set(frame)
        got_b = [face[k.name] for k in face.facedet3d.wrinkle_keys]
        if betas is not None:
            assert got_b == pytest.approx(betas)
        assert sum(got_b) == pytest.approx(1.0, abs=1e-6), "key weights are a partition of unity"
        values = ext.addon.scene.au_rig.values(face)
        off, uv, vi = _wrinkle_offset(face)
        # one UV per vertex where all its corners agree (GN averages corners at UV seams)
        vuv = np.zeros((len(off), 2))
        vuv[vi] = uv
        spread = np.zeros(len(off))
        np.maximum.at(spread, vi, np.abs(uv - vuv[vi]).max(1))
        face_v = np.arange(9409)
        ok = face_v[spread[face_v] < 1e-6]
        want = _expected(ext, face, res, vuv[ok], values, got_b)
        assert np.abs(want).max() > 0.3, f"frame {frame}: wrinkles of a few tenths of a mm"
        err = np.abs(off[ok] - want)
        assert np.percentile(err, 99) < 0.01 and err.max() < 0.05, (frame, err.max())
        assert np.abs(off[9409:]).max() < 1e-5, "only the face skin moves"


def test_sliders_move_the_wrinkles_live(face, shared_job, ext):
    wire(ext, face, shared_job)
    face.modifiers["FaceDet3D Subdivision"].levels = 0
    bpy.context.scene.frame_set(1)
    before, _, _ = _wrinkle_offset(face)
    ext.addon.scene.au_rig.set_values(face, {"AU12L": 1.0})  # no frame change: a user dragging the slider
    after, _, _ = _wrinkle_offset(face)
    assert np.abs(after - before).max() > 0.1, "the smile's wrinkles appear at once"


def test_frames_render_wrinkles_only_where_aus_are_active(face, shared_job, ext, job_dir, tmp_path):
    wire(ext, face, shared_job)
    shots, marks = {}, {}
    for frame in (1, 11):
        bpy.context.scene.frame_set(frame)
        shots[frame] = _render(tmp_path, f"with_{frame}")
        marks[frame] = _landmark_pixels(face, shared_job)
    ext.addon.scene.wrinkle_mix.detach(face)
    for frame in (1, 11):
        bpy.context.scene.frame_set(frame)
        shots[frame] = np.abs(shots[frame] - _render(tmp_path, f"without_{frame}"))

    def boxes(lm):
        iod = np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0))
        brow_y = int(min(lm[19, 1], lm[24, 1]))
        forehead = np.s_[max(brow_y - int(1.0 * iod), 0):brow_y - int(0.1 * iod), int(lm[19, 0]):int(lm[24, 0])]
        # beside the nose wings down to the mouth corners: where AU12 folds the skin
        cheeks = np.s_[int(lm[33, 1]):int(lm[51, 1] + 0.1 * iod),
                       int(lm[48, 0] - 0.25 * iod):int(lm[54, 0] + 0.25 * iod)]
        return forehead, cheeks

    # creases are a few pixels wide: the brightest changes (99th percentile), not means
    (fb1, cb1), (fb11, cb11) = boxes(marks[1]), boxes(marks[11])
    f1, c1 = np.percentile(shots[1][fb1], 99), np.percentile(shots[1][cb1], 99)
    f11, c11 = np.percentile(shots[11][fb11], 99), np.percentile(shots[11][cb11], 99)
    assert f1 > 0.05 and f1 > 2 * c1, ("brows frame: forehead lines", f1, c1)
    # measured: brows frame forehead 0.107, cheeks 0.0; smile frame cheeks 0.055, forehead 0.0
    assert c11 > 0.03 and c11 > 2 * f11, ("smile frame: cheeks, not forehead", f11, c11)


def test_moved_blend_renders_the_same_frame(face, shared_job, ext, tmp_path):
    wire(ext, face, shared_job)
    bpy.context.scene.frame_set(6)
    before = _render(tmp_path, "before")
    root = shared_job.parent
    blend = root / "anim.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    ours = [i for i in bpy.data.images if "wrinkles_" in i.filepath or "detail_" in i.filepath]
    assert len(ours) >= 4 and all(i.filepath.startswith("//") for i in ours), [i.filepath for i in ours]
    moved = root.parent / "moved"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    shutil.move(str(root), str(moved))
    try:
        bpy.ops.wm.open_mainfile(filepath=str(moved / "anim.blend"))
        bpy.context.scene.frame_set(6)
        assert bpy.data.objects["Anim"].facedet3d.wrinkle_rig
        after = _render(tmp_path, "after")
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        shutil.move(str(moved), str(root))
    assert before.shape == after.shape
    assert np.abs(after - before).mean() < 0.002, np.abs(after - before).mean()


def test_gltf_export_carries_morph_targets_and_maps(face, shared_job, ext, tmp_path):
    wire(ext, face, shared_job)
    face.select_set(False)
    info = ext.addon.scene.gltf_export.export(face, tmp_path / "out" / "anim.glb")
    assert not face.select_get() and bpy.context.view_layer.objects.active == face, "selection restored"
    data = (tmp_path / "out" / "anim.glb").read_bytes()
    length = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + length])
    mesh = gltf["meshes"][0]
    names = mesh["extras"]["targetNames"]
    assert len(names) == 57 and "mouthSmile_L" in names, "the expression shapes go out as named morph targets"
    maps = tmp_path / "out" / "anim_maps"
    side = json.loads((maps / "facedet3d_maps.json").read_text())
    assert side == json.loads(json.dumps(info))
    files = [side["base"]] + [p["file"] for p in side["packs"]] + [k["file"] for k in side["keys"]]
    assert all((maps / f).is_file() for f in files) and len(side["packs"]) == 2
    assert [k["frame"] for k in side["keys"]] == [1, 11]
    assert side["au_controls"]["AU12L"]["morph_targets"] == ["mouthSmile_L"]
    assert side["au_keyframes"]["11"] == {"AU12L": 1.0, "AU12R": 1.0}


def test_operator_builds_the_rig_and_flags_changed_keys(face, shared_job, ext):
    ok = bpy.ops.facedet3d.animate_wrinkles(which="ANIMATED", size="512", base_size="1024", detail_model="physical")
    assert ok == {"FINISHED"}
    fd = face.facedet3d
    side = json.loads((shared_job / f"wrinkles_{fd.wrinkle_rig}.json").read_text())
    assert sorted(c for p in side["packs"] for c in p["controls"]) == sorted(CONTROLS)
    assert not ext.addon.scene.wrinkle_mix.stale_keys(face)
    bpy.context.scene.frame_set(11)
    ext.addon.scene.au_rig.set_values(face, {"AU1L": 0.5})
    ext.addon.scene.au_rig.keyframe(face, 11)
    assert ext.addon.scene.wrinkle_mix.stale_keys(face), "a changed key is flagged"
    ok = bpy.ops.facedet3d.animate_wrinkles(which="ANIMATED", size="512", base_size="1024", detail_model="physical")
    assert ok == {"FINISHED"}
    assert not ext.addon.scene.wrinkle_mix.stale_keys(face)
    assert json.loads(fd.wrinkle_keys[1].values_json)["AU1L"] == 0.5
    bpy.ops.facedet3d.remove_wrinkles()
    assert face.modifiers.get("FaceDet3D Wrinkles") is None and not fd.wrinkle_rig and not len(fd.wrinkle_keys)
    assert face.modifiers.get("FaceDet3D Detail") is not None, "the person's detail stays"
    skin = next(m for m in face.data.materials if m.name.endswith("skin_face"))
    assert skin.node_tree.nodes.get("FaceDet3D detail sum") is None


def test_operator_on_a_face_whose_files_are_gone_changes_nothing(face, tmp_path, ext):
    face.facedet3d.job_dir = str(tmp_path / "gone")
    mods = [m.name for m in face.modifiers]
    with pytest.raises(RuntimeError, match="files are missing"):
        bpy.ops.facedet3d.animate_wrinkles()
    assert [m.name for m in face.modifiers] == mods and not face.facedet3d.wrinkle_rig


def test_an_unreadable_map_leaves_the_face_as_it_was(face, shared_job, ext):
    res = wire(ext, face, shared_job)
    skin = next(m for m in face.data.materials if m.name.endswith("skin_face"))
    before = (face.facedet3d.wrinkle_rig, [k.name for k in face.facedet3d.wrinkle_keys], len(bpy.data.images),
              [m.name for m in face.modifiers], sorted(n.name for n in skin.node_tree.nodes))
    (shared_job / "wrinkles_broken_pack0.exr").write_bytes(b"not an EXR at all")
    bad = {**res, "tag": "broken", "keys": [], "packs": res["packs"] + [{"file": "wrinkles_broken_pack0.exr",
                                                                          "controls": ["AU4L"]}]}
    with pytest.raises(RuntimeError, match="wrinkles_broken_pack0.exr is not a readable EXR"):
        ext.addon.scene.wrinkle_mix.attach(face, ext.protocol.details.WrinkleRig.from_dict(bad))
    after = (face.facedet3d.wrinkle_rig, [k.name for k in face.facedet3d.wrinkle_keys], len(bpy.data.images),
             [m.name for m in face.modifiers], sorted(n.name for n in skin.node_tree.nodes))
    assert after == before
