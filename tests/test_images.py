"""Decoding image files of every common pixel mode to 8-bit RGB (starkit.data.images.to_rgb8),
the one decoder that translation and ingestion (cards and plugins alike) read files with."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from starkit.data.images import ImageError, decode_file, decode_file_with_mode, load_sample, to_rgb8
from starkit.spec import RawSample


def write_png(path: Path, samples: np.ndarray, color_type: int) -> Path:
    """A PNG written byte by byte (not by PIL): 16-bit samples, big-endian, filter 0.
    ``color_type`` 0 is grayscale (``samples`` HxW), 2 is RGB (HxWx3)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = samples.shape[:2]
    rows = samples.astype(">u2").reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def scaled(values: np.ndarray) -> np.ndarray:
    """What 16-bit values must decode to: 0..65535 onto 0..255, rounded."""
    return np.rint(values.astype(np.float64) * 255 / 65535).astype(np.uint8)


RAMP = np.array([[0, 257, 4096, 16384], [32768, 40000, 65280, 65535]], dtype=np.uint16)


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    # PIL's own convert("RGB") clips these at 255: a 16-bit photograph came out nearly white.
    path = tmp_path / "gray16.png"
    Image.fromarray(RAMP).save(path)
    image, mode = decode_file_with_mode(path)
    pixels = np.asarray(image)
    assert mode == "I;16" and image.mode == "RGB" and pixels.dtype == np.uint8
    assert np.array_equal(pixels, np.repeat(scaled(RAMP)[..., None], 3, axis=2))
    assert pixels[1, 0].tolist() == [128, 128, 128]  # 32768, mid-grey: not white
    # The same samples from a PNG written without PIL decode the same.
    assert np.array_equal(np.asarray(decode_file(write_png(tmp_path / "own.png", RAMP, 0))), pixels)


def test_big_endian_16_bit_and_32_bit_integer_tiffs(tmp_path):
    big = Image.frombytes("I;16B", (4, 2), RAMP.astype(">u2").tobytes())
    big.save(tmp_path / "big.tif")
    image, mode = decode_file_with_mode(tmp_path / "big.tif")
    assert mode == "I;16B" and np.array_equal(np.asarray(image)[..., 0], scaled(RAMP))
    # Mode I holds 16-bit samples (older PIL opened 16-bit PNGs so); out-of-range values clip.
    wide = RAMP.astype(np.int32)
    wide[0, 0], wide[0, 1] = -5, 70000
    Image.fromarray(wide).save(tmp_path / "int32.tif")
    image, mode = decode_file_with_mode(tmp_path / "int32.tif")
    expected = scaled(RAMP)
    expected[0, 0], expected[0, 1] = 0, 255
    assert mode == "I" and np.array_equal(np.asarray(image)[..., 1], expected)


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    rgb = np.stack([RAMP, RAMP[::-1], np.full_like(RAMP, 30000)], axis=2)
    image = decode_file(write_png(tmp_path / "rgb16.png", rgb, 2))
    assert np.abs(np.asarray(image).astype(int) - scaled(rgb)).max() <= 1


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.0, 0.25, 0.5, 1.0], [0, 64, 128, 255]),  # all within [0, 1]: a fraction of white
        ([0.0, 2.0, 128.0, 255.0], [0, 2, 128, 255]),  # beyond 1, within 255: 8-bit values
        ([0.0, 257.0, 32768.0, 65535.0], [0, 1, 128, 255]),  # beyond 255: 16-bit values
        ([-1.0, float("nan"), 3.4, 2.0], [0, 0, 3, 2]),  # negative and NaN: black
    ],
)
def test_float_images_follow_their_range(tmp_path, values, expected):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([values], dtype=np.float32)).save(path)
    image, mode = decode_file_with_mode(path)
    assert mode == "F" and np.asarray(image)[0, :, 2].tolist() == expected


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.array([[[200, 0, 0, 255], [200, 0, 0, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.asarray(decode_file(tmp_path / "rgba.png"))[0].tolist() == [[200, 0, 0], [255, 255, 255], [127, 127, 127]]

    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    assert np.asarray(decode_file(tmp_path / "la.png"))[0, :, 0].tolist() == [200, 255, 127]

    palette = Image.fromarray(np.array([[0, 1, 1]], dtype=np.uint8), "P")
    palette.putpalette([10, 20, 30, 0, 0, 0])
    palette.save(tmp_path / "p.png", transparency=1)  # entry 1 (black) is transparent
    image, mode = decode_file_with_mode(tmp_path / "p.png")
    assert mode == "P" and np.asarray(image)[0].tolist() == [[10, 20, 30], [255, 255, 255], [255, 255, 255]]


def test_other_modes_convert_as_pil_does(tmp_path):
    Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).convert("1").save(tmp_path / "bw.png")
    assert np.asarray(decode_file(tmp_path / "bw.png"))[0].tolist() == [[0, 0, 0], [255, 255, 255]]
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    image, mode = decode_file_with_mode(tmp_path / "cmyk.jpg")
    red = np.asarray(image)[0, 0].astype(int)
    assert mode == "CMYK" and red[0] > 240 and red[1] < 15 and red[2] < 15
    assert to_rgb8(Image.new("La", (2, 2), (10, 255))).getpixel((0, 0)) == (10, 10, 10)


def test_a_rendered_16_bit_image_is_scaled_too():
    # Plugins may render PIL images (RawSample.render) of any mode; they pass the same decoder.
    sample = RawSample("x", "train", (1,), render=lambda: Image.fromarray(np.full((4, 4), 32768, np.uint16)))
    assert (load_sample(sample, 4, None) == 128).all()


def test_unreadable_files_say_why(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ImageError, match=r"empty file \(0 bytes\)"):
        decode_file(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="no known image format"):
        decode_file(tmp_path / "text.png")
    with pytest.raises(ImageError, match="file not found"):
        decode_file(tmp_path / "missing.png")
