"""The default model from its public release's folder of OBJ files: read once, converted, cached;
the same model as from the repacked archive; clear messages for missing or malformed files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from release_writer import write_release

from backend.core.errors import ModelNotFoundError
from backend.core.progress import Job
from backend.models import ict_release
from backend.models import ict
from backend.models.ict import default_model_dir
from backend.models.loader import load_model
from protocol.models import ict_layout


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A checkout of the release repository: <root>/FaceXModel/ with every OBJ."""
    root = tmp_path_factory.mktemp("ict_release") / "ICT-FaceKit"
    write_release(root)
    return root


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FACEDET3D_CACHE_DIR", str(tmp_path / "cache"))
    ict._load_ict_cached.cache_clear()  # models held in memory would hide the disk cache
    return tmp_path / "cache" / "models"


def _copy(release: Path, dst: Path) -> Path:
    """The release's files hard-linked into ``dst`` (a file to change is unlinked first)."""
    shutil.copytree(release, dst, copy_function=os.link)
    return dst / "FaceXModel"


def test_the_writer_makes_the_release_file_byte_for_byte(release):
    real = Path(default_model_dir()) / "generic_neutral_mesh.obj"
    assert (release / "FaceXModel" / real.name).read_bytes() == real.read_bytes()
    assert len(list((release / "FaceXModel").glob("*.obj"))) == 1 + 100 + 57


def test_release_and_archive_give_the_same_model(release, cache):
    assert ict_layout(release) == ("release", release / "FaceXModel"), "a checkout of the repository is found"
    seen = []
    job = Job(lambda f, m: seen.append(m))
    a = load_model(str(default_model_dir()))
    b = load_model(str(release), job=job)
    for field in ("neutral", "identity_basis", "expression_basis", "uvs", "polygon_sizes", "corner_vertices",
                  "corner_uvs", "landmark_vertices"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.expression_names == b.expression_names and a.regions == b.regions and a.jaw_rows == b.jaw_rows
    assert {k: v.shapes for k, v in a.facs.items()} == {k: v.shapes for k, v in b.facs.items()}
    assert any("identity050.obj (51 of 157)" in m for m in seen), "progress names each file"
    assert len(list(cache.glob("ict-facekit-release-*.npz"))) == 1


def test_a_second_load_reads_the_cache_and_a_changed_release_converts_again(release, cache, tmp_path, monkeypatch):
    folder = _copy(release, tmp_path / "rel")
    first = load_model(str(folder))
    calls = []
    real_convert = ict_release.convert
    monkeypatch.setattr(ict_release, "convert", lambda *a, **k: calls.append(1) or real_convert(*a, **k))
    ict._load_ict_cached.cache_clear()
    again = load_model(str(folder))
    assert not calls, "read from the cache"
    np.testing.assert_array_equal(first.identity_basis, again.identity_basis)
    # a new version of one identity shape: the release changed
    p = folder / "identity007.obj"
    lines = p.read_text().split("\n")
    first_v = next(i for i, ln in enumerate(lines) if ln.startswith("v "))
    lines[first_v] = "v 1 2 3"
    p.unlink()
    p.write_text("\n".join(lines))
    ict._load_ict_cached.cache_clear()
    changed = load_model(str(folder))
    assert calls == [1], "converted again"
    assert not np.array_equal(changed.identity_basis[7, 0], first.identity_basis[7, 0])
    np.testing.assert_array_equal(changed.identity_basis[7, 1:], first.identity_basis[7, 1:])
    assert len(list(cache.glob("ict-facekit-release-*.npz"))) == 1, "the stale conversion is removed"


@pytest.mark.parametrize("case", ["no_identity", "gap", "no_expression", "cut_off", "bad_number", "no_groups",
                                  "empty_folder"])
def test_missing_or_malformed_release_files_are_named(case, release, cache, tmp_path):
    folder = _copy(release, tmp_path / "rel")
    if case == "no_identity":
        for p in folder.glob("identity*.obj"):
            p.unlink()
        words = "has no identity000.obj"
    elif case == "gap":
        (folder / "identity042.obj").unlink()
        words = "lacks identity042.obj"
    elif case == "no_expression":
        (folder / "jawOpen.obj").unlink()
        words = "lacks the expression shape jawOpen.obj"
    elif case == "cut_off":
        p = folder / "mouthSmile_L.obj"
        data = p.read_bytes()
        p.unlink()
        p.write_bytes(data[: len(data) // 5])
        words = "mouthSmile_L.obj has"
    elif case == "bad_number":
        p = folder / "identity003.obj"
        text = p.read_text()
        p.unlink()
        p.write_text(text.replace("\nv ", "\nv zero ", 1))
        words = "identity003.obj: a 'v' line is not numbers"
    elif case == "no_groups":
        (folder / "vertex_indices.json").unlink()
        words = "has no vertex_indices.json"
    else:
        folder = tmp_path / "empty"
        folder.mkdir()
        words = "has neither ict_facekit_light.npz nor"
    with pytest.raises(ModelNotFoundError, match=words) as e:
        load_model(str(folder))
    assert e.value.hint
    assert not list(cache.glob("*.npz")), "nothing half-converted is cached"
