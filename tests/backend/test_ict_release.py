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


# ---- getting the model: the pinned release, every file verified ---------------------------------

def _stand_in(release: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A local copy standing in for the remote repository, and a manifest of its files (the real
    manifest pins the real release's bytes, which only the one OBJ of the model folder has here)."""
    import hashlib

    from backend.models import fetch

    real = fetch.manifest()
    files = {}
    for rel in real["files"]:
        p = release / rel
        if not p.is_file():  # LICENSE, README.md, CREDITS.md: the model folder's own copies
            p.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(default_model_dir()) / Path(rel).name, p)
        files[rel] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
    return release, {**real, "files": files}


def test_the_pinned_manifest_matches_the_real_release_file_we_have():
    from backend.models import fetch

    m = fetch.manifest()
    assert len(m["commit"]) == 40 and m["repository"] == "ICT-VGL/ICT-FaceKit"
    assert len([r for r in m["files"] if r.startswith("FaceXModel/") and r.endswith(".obj")]) == 158
    import hashlib

    real = Path(default_model_dir()) / "generic_neutral_mesh.obj"
    want = m["files"]["FaceXModel/generic_neutral_mesh.obj"]
    assert hashlib.sha256(real.read_bytes()).hexdigest() == want["sha256"] and real.stat().st_size == want["bytes"]
    assert fetch.default_source(m).startswith(f"https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{m['commit']}/")


@pytest.mark.parametrize("as_url", [False, True])
def test_fetch_from_a_stand_in_gets_a_verified_model_that_loads(as_url, release, cache, tmp_path):
    from backend.models import fetch

    src, m = _stand_in(_copy(release, tmp_path / "remote").parent, tmp_path)
    dest = tmp_path / "models" / "ict-facekit"
    seen = []
    out = fetch.fetch_model(dest, src.as_uri() if as_url else str(src), Job(lambda f, msg: seen.append(msg)), m=m)
    assert out == dest and not dest.with_name("ict-facekit.partial").exists()
    assert (dest / "LICENSE").is_file() and (dest / "FaceXModel" / "identity099.obj").is_file()
    assert ict_layout(dest) == ("release", dest / "FaceXModel")
    model = load_model(str(dest))
    np.testing.assert_array_equal(model.expression_basis, load_model(str(default_model_dir())).expression_basis)
    assert any("identity050.obj" in s for s in seen)


def test_fetch_refuses_a_changed_file_and_resumes_after_a_failure(release, cache, tmp_path):
    from backend.models import fetch

    src, m = _stand_in(_copy(release, tmp_path / "remote").parent, tmp_path)
    bad = src / "FaceXModel" / "jawOpen.obj"
    data = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(data.replace(b"v ", b"v  ", 1))  # one byte more: not the pinned file
    dest = tmp_path / "m"
    with pytest.raises(ModelNotFoundError, match="jawOpen.obj from .* is not the pinned release's file") as e:
        fetch.fetch_model(dest, str(src), m=m)
    assert "Download the ICT-FaceKit repository at commit" in e.value.hint and not dest.exists()
    kept = dest.with_name("m.partial") / "FaceXModel" / "identity000.obj"
    assert kept.is_file(), "verified files are kept for the next try"
    bad.unlink()
    bad.write_bytes(data)
    before = kept.stat().st_mtime_ns
    fetch.fetch_model(dest, str(src), m=m)
    assert (dest / "FaceXModel" / "identity000.obj").stat().st_mtime_ns == before, "not downloaded again"


def test_fetch_without_a_network_says_what_to_download(tmp_path):
    from backend.models import fetch

    with pytest.raises(ModelNotFoundError, match="Could not get") as e:
        fetch.fetch_model(tmp_path / "m", "http://127.0.0.1:9/", timeout=5)  # nothing listens on port 9
    assert "archive/" in e.value.hint and "point the model" in e.value.hint


def test_a_cut_off_download_is_named_as_such(release, cache, tmp_path):
    from backend.models import fetch

    src, m = _stand_in(_copy(release, tmp_path / "remote").parent, tmp_path)
    short = src / "FaceXModel" / "identity001.obj"
    data = short.read_bytes()
    short.unlink()
    short.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelNotFoundError, match="identity001.obj from .* was cut off") as e:
        fetch.fetch_model(tmp_path / "m", str(src), m=m)
    assert "Run it again" in e.value.hint
