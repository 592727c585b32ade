"""AU curves in and out: Live Link Face CSV (written to the app's column layout) and OpenFace 2.x CSV
keyed onto the AU controls through the real operators; the face's animation exported as Live Link
Face CSV and imported onto another face gives the same control values at every frame."""

from __future__ import annotations

import csv

import pytest
from conftest import bpy


@pytest.fixture()
def face(animatable_face):
    return animatable_face


def _llf_file(ext, path, rows):
    """Rows of {ARKit name: value} at 60 fps, as the Live Link Face app writes its CSV."""
    cur = ext.protocol.au_curves
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cur.LLF_HEADER)
        for i, vals in enumerate(rows):
            tc = f"16:04:{10 + i // 60:02d}:{(i % 60):02d}.000"
            w.writerow([tc, 61] + [vals.get(n, 0.0) for n in cur.ARKIT] + [0.01] * 9)


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
