"""The backend killed (SIGKILL, as the OOM killer or a crash would) in each stage of a job: the
earlier results on disk and the Blender scene are exactly as they were, and the user is told."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import PHOTO, REPO, bpy, datablock_counts

SMALL = ["--texture-size", "512", "--samples", "2", "--resolution", "64"]


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A finished headless run: what a failed later run into the same folder must not touch."""
    out = tmp_path_factory.mktemp("faults") / "out"
    r = subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(PHOTO), "--out", str(out),
                        "--render", *SMALL], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, _tree(out)


# progress messages of the backend's stages, in the order an `animate --details --wrinkles` meets them
STAGES = ["Fitting the face model", "Projecting the photo onto the face", "Extracting the person's detail",
          "Wrinkles for", "Exact wrinkles for key"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the backend through /proc")
@pytest.mark.parametrize("stage", STAGES)
def test_backend_killed_in_a_stage_of_a_headless_run_leaves_the_earlier_results(earlier, stage):
    out, before = earlier
    p = subprocess.Popen([sys.executable, "-m", "facedet3d", "animate", "--image", str(PHOTO), "--out", str(out),
                          "--key", "1:neutral", "--key", "3:surprise", "--details", "--detail-size", "1024",
                          "--wrinkles", "--wrinkle-aus", "animated", "--wrinkle-size", "512", *SMALL],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []
    for line in p.stdout:
        if stage in line and not killed:
            killed = _children(p.pid)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
    err = p.stderr.read()
    assert p.wait(timeout=300) == 1, err[-2000:]
    assert killed, f"the run never reached '{stage}'"
    assert "stopped unexpectedly" in err and "Traceback" not in err, err[-2000:]
    assert _tree(out) == before, "the earlier .blend, render and job folder, byte for byte"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no staging folder left"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDET3D_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _kill_backend_at(ext, monkeypatch, stage: str) -> list:
    """Kill the add-on's backend process when a job reports ``stage`` (once)."""
    Call = ext.addon.link.client.Call
    original = Call._set_progress
    done: list = []

    def hooked(self, fraction, message):
        original(self, fraction, message)
        if stage in message and not done:
            pid = ext.addon.link.session.get_client().pid
            done.append(pid)
            threading.Thread(target=os.kill, args=(pid, signal.SIGKILL), daemon=True).start()
    monkeypatch.setattr(Call, "_set_progress", hooked)
    return done


def _face_state(obj) -> tuple:
    fd = obj.facedet3d
    return ([m.name for m in obj.modifiers], fd.detail_tag, fd.detail_model, fd.wrinkle_rig,
            [m.name for m in obj.data.materials], {k: obj[k] for k in obj.keys()})


def test_backend_killed_during_import_photo_leaves_the_scene(empty_scene, ext, cache, monkeypatch):
    before = datablock_counts()
    killed = _kill_backend_at(ext, monkeypatch, "Fitting the face model")
    with pytest.raises(RuntimeError, match="stopped unexpectedly"):
        bpy.ops.facedet3d.import_photo(filepath=str(PHOTO))
    assert killed and datablock_counts() == before
    assert not any(cache.glob("**/face.json")), "no half-made job folder"
    monkeypatch.undo()
    monkeypatch.setenv("FACEDET3D_CACHE_DIR", str(cache))
    assert bpy.ops.facedet3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}, "a new backend starts next time"


def test_backend_killed_during_add_details_leaves_the_face(empty_scene, ext, cache, monkeypatch):
    assert bpy.ops.facedet3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    before, state = datablock_counts(), _face_state(obj)
    killed = _kill_backend_at(ext, monkeypatch, "Extracting the person's detail")
    with pytest.raises(RuntimeError, match="stopped unexpectedly"):
        bpy.ops.facedet3d.add_details(size=1024, detail_model="physical")
    assert killed and datablock_counts() == before and _face_state(obj) == state
