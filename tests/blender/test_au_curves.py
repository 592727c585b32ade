"""AU curves in and out: Live Link Face CSV (written to the app's column layout) and OpenFace 2.x CSV
keyed onto the AU controls through the real operators; the face's animation exported as Live Link
Face CSV and imported onto another face gives the same control values at every frame."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from conftest import PHOTO, REPO, bpy


@pytest.fixture()
def face(animatable_face):
    return animatable_face


def _llf_file(ext, path, rows, head=None):
    """Rows of {ARKit name: value} at 60 fps, as the Live Link Face app writes its CSV; ``head``:
    per row (HeadYaw, HeadPitch, HeadRoll) in the file's units (degrees / 180)."""
    cur = ext.protocol.au_curves
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cur.LLF_HEADER)
        for i, vals in enumerate(rows):
            tc = f"16:04:{10 + i // 60:02d}:{(i % 60):02d}.000"
            turn = list(head[i]) if head else [0.01] * 3
            w.writerow([tc, 61] + [vals.get(n, 0.0) for n in cur.ARKIT] + turn + [0.01] * 6)


def _at(obj, name, frame):
    bpy.context.scene.frame_set(frame)
    return obj[name]


def test_live_link_face_csv_keys_the_controls(face, ext, tmp_path):
    path = tmp_path / "take.csv"
    rows = [{"JawOpen": 0.5, "EyeBlinkLeft": 1.0, "BrowInnerUp": 0.4, "MouthSmileRight": i / 119} for i in range(120)]
    _llf_file(ext, path, rows)
    bpy.context.scene.frame_set(1)
    assert bpy.ops.facedet3d.import_au_curves(filepath=str(path)) == {"FINISHED"}
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 49), "2 s at 60 fps -> 48 frames at 24 fps (rows averaged)"
    assert _at(face, "AU27", 20) == pytest.approx(0.5, abs=1e-4)
    assert _at(face, "AU45L", 20) == pytest.approx(1.0, abs=1e-4) and _at(face, "AU45R", 20) == pytest.approx(0.0)
    assert _at(face, "AU1L", 20) == pytest.approx(0.4, abs=1e-4) == _at(face, "AU1R", 20)
    assert _at(face, "AU12R", 49) > 0.95 and _at(face, "AU12R", 1) < 0.05, "the ramp is in time"
    assert _at(face, "AU12L", 25) == pytest.approx(0.0, abs=1e-6)


def test_export_then_import_gives_the_same_controls(face, ext, job_dir, tmp_path):
    scene = bpy.context.scene
    for frame, emotion in ((1, "neutral"), (11, "surprise"), (21, "happy")):
        scene.frame_set(frame)
        bpy.ops.facedet3d.set_emotion(emotion=emotion, keyframe=True)
    scene.frame_start, scene.frame_end = 1, 21
    want = {f: (scene.frame_set(f), ext.addon.scene.au_rig.values(face))[1] for f in range(1, 22)}
    path = tmp_path / "out.csv"
    assert bpy.ops.facedet3d.export_au_curves(filepath=str(path)) == {"FINISHED"}
    header = next(csv.reader(open(path)))
    assert tuple(header) == ext.protocol.au_curves.LLF_HEADER
    other = ext.addon.scene.builder.build_face(bpy.context, job_dir, name="Other").obj
    bpy.context.view_layer.objects.active = other
    scene.frame_set(1)
    assert bpy.ops.facedet3d.import_au_curves(filepath=str(path)) == {"FINISHED"}
    for f in (1, 6, 11, 16, 21):
        scene.frame_set(f)
        got = ext.addon.scene.au_rig.values(other)
        worst = max(abs(got[k] - v) for k, v in want[f].items())
        assert worst < 1e-5, (f, worst)


def test_openface_csv_keys_aus_and_says_what_it_left_out(face, ext, tmp_path):
    path = tmp_path / "openface.csv"
    aus = ["AU01", "AU12", "AU25", "AU45"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", " face_id", " timestamp", " confidence", " success"] + [f" {a}_r" for a in aus]
                   + [f" {a}_c" for a in aus])
        for i in range(48):
            ok = 0 if 10 <= i < 14 else 1  # the face lost for four frames
            w.writerow([i + 1, 0, f"{i / 24:.3f}", 0.98 if ok else 0.1, ok, 1.0, 2.5, 3.0, 0.0, 1, 1, 1, 0])
    report = []
    bpy.context.scene.frame_set(1)
    assert bpy.ops.facedet3d.import_au_curves(filepath=str(path)) == {"FINISHED"}
    assert _at(face, "AU12L", 5) == pytest.approx(0.5, abs=1e-4) == _at(face, "AU12R", 5)
    assert _at(face, "AU1L", 30) == pytest.approx(0.2, abs=1e-4)
    cur = ext.protocol.au_curves.read_openface(path.read_text(), 24, 1)
    report = cur.skipped
    assert any("4 rows without a tracked face (lines 12, 13, 14, 15)" in s for s in report), report
    _, missing = ext.addon.scene.au_curves.controls_from_aus(face, cur)
    assert missing == ["AU25"]


@pytest.mark.parametrize("kind", ["llf_no_jaw", "openface_no_timestamp", "not_csv"])
def test_files_that_are_not_the_layout_are_named(face, ext, tmp_path, kind):
    path = tmp_path / "bad.csv"
    cur = ext.protocol.au_curves
    if kind == "llf_no_jaw":
        path.write_text(",".join(c for c in cur.LLF_HEADER if c != "JawOpen") + "\n" + "00:00:00:00.000,60" + ",0" * 59)
        words = "no column JawOpen"
    elif kind == "openface_no_timestamp":
        path.write_text("frame, confidence, success, AU12_r\n1,0.9,1,2\n")
        words = "no column timestamp"
    else:
        path.write_text("hello\n")
        words = "no data rows"
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.facedet3d.import_au_curves(filepath=str(path))


def _forward(obj):
    """Where the face looks in Blender's world (down -Y at rest, the builder's frame)."""
    import numpy as np

    return np.array(obj.matrix_world.to_3x3()) @ np.array([0.0, -1.0, 0.0])


def test_live_link_face_head_turn_is_keyed_and_exported_back(face, ext, tmp_path):
    """A take turning the head 0 -> 36 deg to the subject's left (HeadYaw 0 -> 0.2) with the chin up
    9 deg (HeadPitch 0.05): the face object turns so, and Export writes the same columns back."""
    import math

    import numpy as np

    path = tmp_path / "turn.csv"
    n = 120
    _llf_file(ext, path, [{"JawOpen": 0.3}] * n, head=[(0.2 * i / (n - 1), 0.05, 0.0) for i in range(n)])
    scene = bpy.context.scene
    scene.frame_set(1)
    assert face.matrix_world.to_3x3().is_identity, "the builder bakes the model's turn into the mesh"
    assert bpy.ops.facedet3d.import_au_curves(filepath=str(path)) == {"FINISHED"}
    for frame in (1, 25, 49):
        scene.frame_set(frame)
        f = _forward(face)
        yaw = math.degrees(math.atan2(f[0], -f[1]))  # towards +X: the subject's left
        pitch = math.degrees(math.asin(f[2]))  # chin up: the face looks up
        want = 36.0 * (frame - 1) / 48
        assert abs(yaw - want) < 1.0 and abs(pitch - 9.0) < 0.5, (frame, yaw, pitch)
    out = tmp_path / "out.csv"
    assert bpy.ops.facedet3d.export_au_curves(filepath=str(out)) == {"FINISHED"}
    back = ext.protocol.au_curves.read_live_link_face(out.read_text(), 24, 1)
    assert np.allclose(back.head["yaw"], [36.0 * i / 48 for i in range(49)], atol=0.8)
    assert np.allclose(back.head["pitch"], 9.0, atol=1e-3) and np.allclose(back.head["roll"], 0.0, atol=1e-3)
    assert np.allclose(back.values["JawOpen"], 0.3, atol=1e-4)


def test_head_rotation_off_keys_no_turn_and_a_later_take_replaces_the_turn(face, ext, tmp_path):
    import numpy as np

    path = tmp_path / "turn.csv"
    _llf_file(ext, path, [{}] * 48, head=[(0.1, 0.0, 0.0)] * 48)
    bpy.context.scene.frame_set(1)
    assert bpy.ops.facedet3d.import_au_curves(filepath=str(path), head_rotation=False) == {"FINISHED"}
    assert np.allclose(_forward(face), [0.0, -1.0, 0.0], atol=1e-6)
    assert bpy.ops.facedet3d.import_au_curves(filepath=str(path)) == {"FINISHED"}
    _llf_file(ext, path, [{}] * 48, head=[(-0.1, 0.0, 0.0)] * 48)
    assert bpy.ops.facedet3d.import_au_curves(filepath=str(path)) == {"FINISHED"}
    bpy.context.scene.frame_set(10)
    assert _forward(face)[0] < -0.2, "the second take's turn (18 deg to the subject's right), not a mix"


def test_headless_animate_keys_a_live_link_face_take_with_its_head_turn(ext, tmp_path):
    """`animate --curves take.csv --head-rotation`: the take's blendshapes and head turn keyed
    into the saved .blend, at the scene rate asked for."""
    import math

    path = tmp_path / "take.csv"
    n = 60  # 1 s at 60 fps -> 24 frames
    _llf_file(ext, path, [{"MouthSmileLeft": i / (n - 1), "MouthSmileRight": i / (n - 1)} for i in range(n)],
              head=[(0.1 * i / (n - 1), 0.0, 0.0) for i in range(n)])
    out = tmp_path / "anim"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "animate", "--image", str(PHOTO), "--out", str(out),
                        "--curves", str(path), "--head-rotation", "--no-render", "--resolution", "128",
                        "--texture-size", "512"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "Live Link Face: 25 frames keyed" in r.stdout and "head's turn" in r.stdout, r.stdout[-1500:]
    bpy.ops.wm.open_mainfile(filepath=str(out / "astronaut.blend"))
    scene = bpy.context.scene
    assert scene.render.fps == 24 and (scene.frame_start, scene.frame_end) == (1, 25)
    obj = next(o for o in bpy.data.objects if o.type == "MESH" and "AU12L" in o.keys())
    scene.frame_set(1)
    assert obj["AU12L"] < 0.05
    scene.frame_set(25)
    assert obj["AU12L"] > 0.95 and obj["AU12R"] > 0.95
    f = _forward(obj)
    assert abs(math.degrees(math.atan2(f[0], -f[1])) - 18.0) < 1.0
