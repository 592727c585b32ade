"""Set Up Backend under the real bpy module: a Python 3.11 of this machine makes the environment in
a temporary user folder from the requirements that ship in the extension, with this machine's
package index; the bundled photo is then imported through it. Remove and the states in words."""

from __future__ import annotations

import pytest
from conftest import PHOTO, bpy


def test_setup_backend_makes_an_environment_the_photo_imports_through(ext, empty_scene, tmp_path, monkeypatch):
    link = ext.addon.link
    users = tmp_path / "user"

    def user_folder(name):
        (users / name).mkdir(parents=True, exist_ok=True)
        return users / name

    monkeypatch.setattr(link.session, "user_folder", user_folder)
    monkeypatch.setenv("FACEDET3D_CACHE_DIR", str(tmp_path / "cache"))
    python, why = link.backend_env.find_python("")
    if not python:
        pytest.skip(why)
    env = users / "backend" / "env"
    assert link.backend_env.state(env).status == "missing"
    assert bpy.ops.facedet3d.setup_backend() == {"FINISHED"}
    st = link.backend_env.state(env)
    assert st.status == "ready" and "Python 3.11, torch 2.13" in st.detail, st
    assert "Installing" in (users / "backend" / "setup.log").read_text() or "already satisfied" in (
        users / "backend" / "setup.log").read_text()

    monkeypatch.setenv("FACEDET3D_BACKEND_PYTHON", link.backend_env.python_of(env))
    link.session.shutdown()
    try:
        assert bpy.ops.facedet3d.import_photo(filepath=str(PHOTO)) == {"FINISHED"}
        assert link.session.get_client().python == link.backend_env.python_of(env)
    finally:
        link.session.shutdown()

    (env / link.backend_env.STAMP).unlink()  # an interrupted set-up
    assert link.backend_env.state(env).status == "broken"
    assert bpy.ops.facedet3d.remove_backend() == {"FINISHED"}
    assert not env.exists() and link.backend_env.state(env).status == "missing"


def test_setup_backend_names_what_is_wrong_with_a_python(ext, tmp_path):
    bad = tmp_path / "python"
    bad.write_text("#!/bin/sh\nexit 3\n")
    bad.chmod(0o755)
    with pytest.raises(RuntimeError, match="is not a Python interpreter that runs"):
        bpy.ops.facedet3d.setup_backend(python=str(bad))
    import sys

    with pytest.raises(RuntimeError, match=r"is Python 3\.13; the backend's packages are pinned for Python 3\.11"):
        bpy.ops.facedet3d.setup_backend(python=sys.executable)


def test_the_sidebar_lists_the_first_run_steps_until_both_are_done(ext, tmp_path, monkeypatch):
    steps = ext.addon.ui.panels.first_run_steps
    assert steps(None) == [], "this checkout: .venv-backend and the model beside it"
    monkeypatch.setenv("FACEDET3D_BACKEND_PYTHON", str(tmp_path / "no-python"))
    monkeypatch.setenv("FACEDET3D_MODEL_DIR", str(tmp_path))  # a folder without the model
    assert [op for _, op, _ in steps(None)] == ["facedet3d.setup_backend", "facedet3d.get_default_model"]
    monkeypatch.delenv("FACEDET3D_MODEL_DIR")
    assert [op for _, op, _ in steps(None)] == ["facedet3d.setup_backend"]
