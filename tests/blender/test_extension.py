"""The extension as users get it: manifest validated by Blender's tool, zip installed and enabled."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

BLENDER_EXT = next(Path(p) for p in sorted((Path(sys.prefix) / "lib").glob(
    "python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py")))


def test_manifest_validates():
    r = subprocess.run([sys.executable, str(BLENDER_EXT), "validate", str(REPO)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, str(BLENDER_EXT), "build", "--source-dir", str(REPO),
                        "--output-dir", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (zip_path,) = out.glob("facedet3d-*.zip")
    return zip_path


def test_zip_holds_the_extension_and_not_the_dev_files(built_zip):
    import zipfile

    names = set(zipfile.ZipFile(built_zip).namelist())
    assert {"blender_manifest.toml", "__init__.py", "addon/link/client.py", "backend/service/server.py",
            "protocol/rpc.py", "addon/operators/import_photo.py", "backend/learned/weights/deth.safetensors",
            "backend/learned/weights/au_readout.safetensors"} <= names
    # the default model's dense-landmark correspondence, which the AU readout was trained with: the
    # checkout's one file (test_dense_fit checks it is the readout's), no stale one beside it
    shipped = sorted(n for n in names if n.startswith("backend/reconstruct/data/mesh_landmarks_"))
    assert shipped == [str(p.relative_to(REPO)) for p in (REPO / "backend/reconstruct/data").glob("mesh_landmarks_*.npz")]
    assert len(shipped) == 1
    assert zipfile.ZipFile(built_zip).read(shipped[0]) == (REPO / shipped[0]).read_bytes()
    assert not any(n.startswith((".venv", "tests/", "out/", ".git/", "docs/", "scripts/")) for n in names)
    assert not any(n.startswith("backend/learned/train/") for n in names), "training stays in the checkout"


def test_zip_installs_enables_and_registers(built_zip, tmp_path):
    # A fresh user folder for Blender: nothing of the developer's config leaks in or out.
    script = textwrap.dedent(f"""
        import bpy
        bpy.ops.extensions.package_install_files(filepath={str(built_zip)!r}, repo="user_default",
                                                 enable_on_install=True)
        mod = "bl_ext.user_default.facedet3d"
        assert mod in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
        assert hasattr(bpy.types, "FACEDET3D_PT_main"), "sidebar panel"
        assert bpy.types.FACEDET3D_PT_main.bl_category == "FaceDet3D"
        for op in ("import_photo", "add_details", "set_emotion", "keyframe_aus", "backend_check", "backend_restart"):
            assert op in dir(bpy.ops.facedet3d), op
        prefs = bpy.context.preferences.addons[mod].preferences
        assert {{"backend_python", "model_dir", "cache_dir"}} <= set(prefs.bl_rna.properties.keys())
        assert hasattr(bpy.types.Object, "facedet3d")
        import addon_utils
        addon_utils.disable(mod)
        assert not hasattr(bpy.types, "FACEDET3D_PT_main"), "unregisters cleanly"
        print("EXTENSION-OK")
    """)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert "EXTENSION-OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
