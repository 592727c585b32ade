"""A corpus of bad inputs, generated here, sent through the backend's real server (its method
table, parameter checks and error mapping, in process): each one a user can fix is answered with a
FaceDet3D error code (-32099 .. -32000) or invalid params (-32602), a message naming the problem
(and the file) and a hint — never "a bug in the backend" (-32603) — and before any long work."""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from conftest import PHOTO
from PIL import Image

from backend.core import exr_io
from backend.core.errors import DamagedFileError
from backend.learned.train.data import RealFolder
from backend.service.methods import CHECKS, TABLE
from backend.service.transport import Server
from protocol import rpc
from protocol.details import PHOTO_DETAIL_FILE, PHOTO_DETAIL_STAMP

MODEL_DIR = os.environ.get("FACEDET3D_MODEL_DIR") or str(PHOTO.parents[2] / "shared" / "models" / "ict-facekit")


class _Out:
    """The server's stdout: collects the answer lines."""

    def __init__(self):
        self.lines: list[bytes] = []
        self.cv = threading.Condition()

    def write(self, data: bytes) -> int:
        with self.cv:
            self.lines.extend(ln for ln in data.split(b"\n") if ln)
            self.cv.notify_all()
        return len(data)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def call():
    out = _Out()
    server = Server(out, TABLE, CHECKS)
    count = iter(range(1, 10 ** 6))

    def send(method: str, params: dict, timeout: float = 300) -> dict:
        i = next(count)
        server.handle_line(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}).encode())
        deadline = time.monotonic() + timeout
        with out.cv:
            while True:
                for ln in out.lines:
                    m = json.loads(ln)
                    if m.get("id") == i and "method" not in m:
                        return m
                assert out.cv.wait(max(0.0, deadline - time.monotonic())), f"no answer to {method} in {timeout} s"
    return send


def _user_error(answer: dict, code: int, *words: str) -> dict:
    assert "error" in answer, answer
    err = answer["error"]
    assert err["code"] == code, err
    for w in words:
        assert w in err["message"], (w, err)
    if code != rpc.INVALID_PARAMS:
        assert err["data"]["hint"], "every error a user can fix says what to do"
    return err


def _png_header_says(path, width: int, height: int) -> None:
    """A real 64x64 PNG whose header claims another size (what Pillow reads before decoding)."""
    Image.new("L", (64, 64), 128).save(path)
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))


# ---- photos -------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["not_an_image", "truncated", "huge", "empty", "no_face"])
def test_bad_photos(call, case, tmp_path):
    src = tmp_path / "фото é" / f"{case}.jpg"  # a unicode path on the way
    src.parent.mkdir()
    if case == "not_an_image":
        src.write_text("not a jpeg")
        code, words = rpc.BAD_IMAGE, ("not an image",)
    elif case == "truncated":
        src.write_bytes(PHOTO.read_bytes()[:20000])
        code, words = rpc.BAD_IMAGE, ("truncated",)
    elif case == "huge":
        src = src.with_suffix(".png")
        _png_header_says(src, 20000, 12000)
        code, words = rpc.BAD_IMAGE, ("MP limit",)
    elif case == "empty":
        src.write_bytes(b"")
        code, words = rpc.BAD_IMAGE, (src.name,)
    else:
        Image.new("RGB", (400, 300), (128, 128, 128)).save(src)
        code, words = rpc.NO_FACE, ("No face",)
    out = tmp_path / "job"
    _user_error(call("reconstruct", {"image": str(src), "out_dir": str(out), "model_dir": MODEL_DIR}), code, *words)
    assert not (out / "face.json").exists()


def test_a_16_bit_grey_photo_reconstructs(call, tmp_path):
    """Was loaded as 90 % white and answered "No face found"."""
    grey = np.asarray(Image.open(PHOTO).convert("L")).astype(np.uint16) * 257
    src = tmp_path / "grey16.png"
    Image.fromarray(grey).save(src)
    ans = call("reconstruct", {"image": str(src), "out_dir": str(tmp_path / "job"), "model_dir": MODEL_DIR,
                               "options": {"texture_size": 256, "head_texture_size": 128}})
    assert "result" in ans, ans
    assert ans["result"]["stats"]["fit_error_iod"] < 0.08


# ---- parameters with the wrong type inside ------------------------------------------------------

@pytest.mark.parametrize("method,params,words", [
    ("reconstruct", {"image": "x.jpg", "out_dir": "o", "options": {"texture_size": "big"}},
     "option 'texture_size' must be an integer"),
    ("reconstruct", {"image": "x.jpg", "out_dir": "o", "options": {"texture": 512}}, "unknown option 'texture'"),
    ("reconstruct", {"image": "x.jpg", "out_dir": "o", "options": {"age": 400}}, "option 'age' must be a number"),
    ("details", {"job_dir": "j", "sizes": [256, "1024"]}, "'sizes' item 1"),
    ("details", {"job_dir": "j", "sizes": [100000]}, "'sizes' item 0"),
    ("details", {"job_dir": "j", "aus": {"AU12": "a lot"}}, "'AU12' must be a number in 0 .. 1"),
    ("details", {"job_dir": "j", "expression": [0.1, None]}, "'expression' item 1"),
    ("details", {"job_dir": "j", "age": -3}, "'age' must be a number in 1 .. 120"),
    ("wrinkles", {"job_dir": "j", "keys": [{"frame": 1.5, "values": {}}]}, "'keys' item 0"),
    ("wrinkles", {"job_dir": "j", "keys": [{"frame": 1, "values": {"AU1L": 2}}]}, "'AU1L' must be a number in 0 .. 1"),
    ("wrinkles", {"job_dir": "j", "controls": ["AU1L", 7]}, "'controls' item 1"),
    ("wrinkles", {"job_dir": "j", "size": 300}, "'size' must be 256"),
])
def test_wrong_types_inside_parameters_are_refused_at_once(call, method, params, words):
    t0 = time.monotonic()
    _user_error(call(method, params), rpc.INVALID_PARAMS, words)
    assert time.monotonic() - t0 < 2.0, "refused before any work"


# ---- damaged files ------------------------------------------------------------------------------

def test_a_truncated_model_archive(call, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL_DIR, model)
    archive = model / "ict_facekit_light.npz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    err = _user_error(call("reconstruct", {"image": str(PHOTO), "out_dir": str(tmp_path / "job"),
                                           "model_dir": str(model)}), rpc.MODEL_NOT_FOUND, str(archive), "truncated")
    assert "BadZipFile" in err["message"]
    _user_error(call("rig", {"model_dir": str(model)}), rpc.MODEL_NOT_FOUND, str(archive))


def _write_exr_as_is(path, m: np.ndarray) -> None:
    """An EXR written by another tool, NaN and all (our writer refuses NaN)."""
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Y": np.ascontiguousarray(m.astype(np.float16))}) as f:
        f.write(str(path))


@pytest.fixture(scope="module")
def job(small_job):
    return small_job("bad_inputs")


def test_a_nan_map_in_the_job_folder_is_named(call, job, tmp_path):
    jd = tmp_path / "job"
    shutil.copytree(job, jd)
    ans = call("details", {"job_dir": str(jd), "sizes": [256], "model": "physical"})
    assert "result" in ans, ans
    m = exr_io.read_map(jd / PHOTO_DETAIL_FILE)
    m[100:110, 200:220] = np.nan  # a map broken on disk by another tool (its stamp still matches)
    _write_exr_as_is(jd / PHOTO_DETAIL_FILE, m)
    assert (jd / PHOTO_DETAIL_STAMP).is_file()
    _user_error(call("details", {"job_dir": str(jd), "sizes": [256], "model": "physical", "aus": {"AU1": 1.0}}),
                rpc.DAMAGED_FILE, str(jd / PHOTO_DETAIL_FILE), "200 NaN")
    (jd / PHOTO_DETAIL_FILE).write_bytes(b"garbage")  # not an EXR at all
    _user_error(call("details", {"job_dir": str(jd), "sizes": [256], "model": "physical", "aus": {"AU2": 1.0}}),
                rpc.DAMAGED_FILE, str(jd / PHOTO_DETAIL_FILE), "not a readable EXR")


def test_truncated_weights_make_deth_unavailable_and_auto_takes_the_physical_model(call, job, tmp_path, monkeypatch):
    from backend.learned import weights

    folder = tmp_path / "weights"
    folder.mkdir()
    for kind in ("deth", "rcan"):
        data = weights.path_for(kind).read_bytes()
        (folder / f"{kind}.safetensors").write_bytes(data[: len(data) // 3] if kind == "deth" else data)
    monkeypatch.setenv("FACEDET3D_WEIGHTS_DIR", str(folder))
    health = call("health", {})["result"]
    deth = next(m for m in health["detail_models"] if m["name"] == "deth")
    assert not deth["available"] and "deth.safetensors" in deth["reason"], deth
    assert health["auto_detail_model"] == "physical"
    jd = tmp_path / "job"
    shutil.copytree(job, jd)
    _user_error(call("details", {"job_dir": str(jd), "sizes": [256], "model": "deth"}), rpc.BAD_REQUEST,
                "deth.safetensors")
    ans = call("details", {"job_dir": str(jd), "sizes": [256]})
    assert ans["result"]["model"] == "physical", "auto fell back to the physical model"


def test_damaged_weights_raise_a_named_user_error(tmp_path):
    from backend.learned import weights

    bad = tmp_path / "rcan.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(DamagedFileError, match="rcan.safetensors"):
        weights.load("rcan", tmp_path)


def test_real_data_folder_refuses_an_all_nan_map(tmp_path):
    _write_exr_as_is(tmp_path / "a.exr", np.full((64, 64), np.nan, np.float32))
    (tmp_path / "samples.jsonl").write_text(json.dumps({"map": "a.exr", "aus": {}, "person": "p1"}) + "\n")
    with pytest.raises(DamagedFileError, match="a.exr"):
        RealFolder(tmp_path, ["AU1L"])
