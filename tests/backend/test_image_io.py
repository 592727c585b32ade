"""Photos in the formats users have: 16-bit grey, CMYK, EXIF-rotated, alpha."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.core.image_io import load_rgb, save_png

from conftest import PHOTO


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("L"))


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_grey_png_keeps_its_tones(grey, mode, tmp_path):
    """A 16-bit greyscale PNG (Pillow opens it as I;16 or I) loaded as 8 bits: the same picture,
    not the 90 % white that clipping each sample at 255 gave."""
    src = tmp_path / "grey16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(src)
    with Image.open(src) as im:
        opened = im.mode
    if mode == "I":  # the other way a 16-bit sample arrives: a 32-bit integer image
        Image.fromarray(grey.astype(np.int32) * 257).save(src := tmp_path / "grey32.tif")
    arr = load_rgb(src)
    assert opened.startswith("I"), opened
    assert arr.shape == grey.shape + (3,) and arr.dtype == np.uint8
    assert np.abs(arr[..., 0].astype(int) - grey).max() <= 1
    assert (arr[..., 0] == 255).mean() < 0.05


def test_float_grey_tiff_in_0_to_1(grey, tmp_path):
    src = tmp_path / "grey.tif"
    Image.fromarray(grey.astype(np.float32) / 255.0).save(src)
    assert np.abs(load_rgb(src)[..., 1].astype(int) - grey).max() <= 1


def test_cmyk_and_exif_rotated_jpegs(tmp_path):
    rgb = Image.open(PHOTO).convert("RGB")
    cmyk = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(cmyk, quality=95)
    assert np.abs(load_rgb(cmyk).astype(int) - np.asarray(rgb)).mean() < 8
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: "rotate 90° clockwise to view"
    rgb.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    arr = load_rgb(rotated)
    assert arr.shape == np.asarray(rgb).shape
    assert np.abs(arr.astype(int) - np.asarray(rgb)).mean() < 8, "shown upright, as a viewer shows it"


@pytest.mark.parametrize("shape,dtype,mode", [((37, 53, 3), np.uint8, "RGB"), ((37, 53, 4), np.uint8, "RGBA"),
                                              ((37, 53), np.uint8, "L"), ((37, 53), np.uint16, "I;16")])
def test_png_written_reads_back_the_same(shape, dtype, mode, tmp_path):
    # channel order (OpenCV writes BGR) and bit depth survive; nothing is left beside the file
    arr = np.random.default_rng(3).integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    out = save_png(tmp_path / "a.png", arr)
    with Image.open(out) as im:
        assert im.mode == mode
        assert np.array_equal(np.asarray(im), arr)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
    with pytest.raises(ValueError, match="uint8/uint16"):
        save_png(tmp_path / "b.png", arr.astype(np.float32))


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    # every writer of job files, maps, caches and weights goes through protocol.atomic.replacing
    from pathlib import Path

    from protocol.jsonfile import write_atomic

    png, js = tmp_path / "map.png", tmp_path / "face.json"
    save_png(png, np.zeros((4, 4), np.uint8))
    write_atomic(js, {"a": 1})
    before = png.read_bytes(), js.read_bytes()
    write_bytes = Path.write_bytes

    def disk_full(self, data):  # half the bytes land, then the disk is full
        write_bytes(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_png(png, np.full((4, 4), 9, np.uint8))
    with pytest.raises(TypeError):  # data that does not encode: the file is not touched
        write_atomic(js, {"a": object()})
    assert (png.read_bytes(), js.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.json", "map.png"]
