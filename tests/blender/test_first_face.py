"""From the extension zip to a first face, as a Blender user goes (no terminal, nothing from the
checkout): install the zip into a fresh Blender user folder, read the sidebar's first-run steps,
Set Up Backend (this machine's Python 3.11 and package index), Get the Default Model (a local copy
standing in for GitHub, checked against its manifest), Import Photo."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import PHOTO, backend_run
from test_extension import built_zip  # noqa: F401 - the fixture: the zip built by Blender's tool

STAND_IN = """
import hashlib, json, shutil, sys
from pathlib import Path
sys.path.insert(0, "tests/backend")
from release_writer import write_release
from backend.models.ict import default_model_dir
root = Path(sys.argv[1])
write_release(root)
files = {}
for p in sorted(root.rglob("*")):
    if p.is_file():
        files[str(p.relative_to(root))] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
for name in ("LICENSE", "README.md", "CREDITS.md"):
    shutil.copy(Path(default_model_dir()) / name, root / name)
    files[name] = {"sha256": hashlib.sha256((root / name).read_bytes()).hexdigest(), "bytes": (root / name).stat().st_size}
Path(sys.argv[2]).write_text(json.dumps({"repository": "ICT-VGL/ICT-FaceKit", "commit": "0" * 40, "files": files}))
"""


def test_from_the_zip_to_a_first_face(built_zip, tmp_path):  # noqa: F811
    mirror, manifest = tmp_path / "mirror", tmp_path / "manifest.json"
    backend_run(STAND_IN, str(mirror), str(manifest))
    script = textwrap.dedent(f"""
        import bpy
        bpy.ops.extensions.package_install_files(filepath={str(built_zip)!r}, repo="user_default",
                                                 enable_on_install=True)
        import sys
        ext = sys.modules["bl_ext.user_default.facedet3d"]
        prefs = bpy.context.preferences.addons["bl_ext.user_default.facedet3d"].preferences
        steps = [op for _, op, _ in ext.addon.ui.panels.first_run_steps(prefs)]
        assert steps == ["facedet3d.setup_backend", "facedet3d.get_default_model"], steps
        assert bpy.ops.facedet3d.setup_backend() == {{"FINISHED"}}
        assert prefs.backend_python and "ready" == ext.addon.link.backend_env.state(
            ext.addon.link.session.user_folder("backend") / "env").status
        assert [op for _, op, _ in ext.addon.ui.panels.first_run_steps(prefs)] == ["facedet3d.get_default_model"]
        assert bpy.ops.facedet3d.get_default_model() == {{"FINISHED"}}
        assert ext.addon.ui.panels.first_run_steps(prefs) == []
        # (not read_factory_settings: that would switch the add-on off again)
        assert bpy.ops.facedet3d.import_photo(filepath={str(PHOTO)!r}) == {{"FINISHED"}}
        face = bpy.context.view_layer.objects.active
        assert face is not None and face.data.shape_keys is not None and len(face.facedet3d.aus) > 40
        ext.addon.link.session.shutdown()
        print("FIRST-FACE-OK", prefs.backend_python, prefs.model_dir)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEDET3D_", "PYTHON"))}
    env.update(BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"), FACEDET3D_MODEL_SOURCE=str(mirror),
               FACEDET3D_MODEL_MANIFEST=str(manifest), FACEDET3D_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=1500, env=env,
                       cwd=str(tmp_path))
    assert "FIRST-FACE-OK" in r.stdout, r.stdout[-4000:] + r.stderr[-4000:]
    py, model = r.stdout.split("FIRST-FACE-OK")[1].split()[:2]
    user = str(tmp_path / "blender_user")
    assert py.startswith(user) and model.startswith(user), "environment and model in the extension's user folder"
