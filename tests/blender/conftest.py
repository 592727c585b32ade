"""Blender-side test fixtures: the real bpy module, a real backend job on the bundled photo."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BACKEND_PY = Path(os.environ.get("FACEDET3D_BACKEND_PYTHON", REPO / ".venv-backend" / "bin" / "python"))
PHOTO = REPO / "assets" / "astronaut.jpg"
# the learned detail nets ship with the backend (tests of the learned path skip without them)
SHIPPED_NETS = all((REPO / "backend" / "learned" / "weights" / f"{k}.safetensors").is_file() for k in ("deth", "rcan"))

bpy = pytest.importorskip("bpy")


def load_extension():
    """The checkout as the package `facedet3d_ext` (facedet3d.py's loader), registered once."""
    spec = importlib.util.spec_from_file_location("facedet3d_bootstrap", REPO / "facedet3d.py")
    boot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(boot)
    pkg = boot.load_package()  # tests/test_rpc.py may have loaded it (without registering)
    if not hasattr(bpy.types.Object, "facedet3d"):
        pkg.register()
    return pkg


@pytest.fixture(scope="session")
def ext():
    return load_extension()


@pytest.fixture()
def empty_scene(ext):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def run_backend_job(out: Path, image: Path = PHOTO, texture_size: int = 512) -> Path:
    if not BACKEND_PY.exists():
        pytest.skip(f"backend environment missing ({BACKEND_PY}); run scripts/setup.sh")
    r = subprocess.run([str(BACKEND_PY), "-m", "backend", "reconstruct", "--image", str(image), "--out", str(out),
                        "--texture-size", str(texture_size)], cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def job_dir(tmp_path_factory) -> Path:
    """One real reconstruction of the bundled photo, shared by the tests that only read it."""
    return run_backend_job(tmp_path_factory.mktemp("job") / "astronaut")


def datablock_counts() -> dict:
    return {k: len(getattr(bpy.data, k)) for k in
            ("objects", "meshes", "materials", "images", "cameras", "lights", "collections")}


def backend_run(code: str, *args: str) -> str:
    """Run a snippet in the backend environment (it has OpenEXR, torch…; bpy's has not)."""
    if not BACKEND_PY.exists():
        pytest.skip(f"backend environment missing ({BACKEND_PY})")
    r = subprocess.run([str(BACKEND_PY), "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.fixture()
def animatable_face(empty_scene, job_dir, ext):
    """A face built from the shared job, active, on a 24 fps scene: what the AU-curve and the
    video-capture operators work on."""
    obj = ext.addon.scene.builder.build_face(bpy.context, job_dir, name="Capture").obj
    bpy.context.view_layer.objects.active = obj
    bpy.context.scene.render.fps = 24
    return obj

