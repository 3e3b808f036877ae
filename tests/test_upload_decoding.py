"""vae.uploads: which uploaded files load and which are refused, with what message. (Peak memory per
upload: tests/test_uploads.py.)"""
import io
import zlib

import pytest
from PIL import Image, ImageDraw

from vae.preprocess import prepare_array
from vae.server.uploads import load_uploaded_image


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height: what a decompression bomb looks like before decoding."""
    data = bytearray(encoded(Image.new("L", (1, 1)), "PNG"))
    ihdr = 12  # 8-byte signature, 4-byte chunk length, then b"IHDR" + 13 bytes of data, then the CRC
    data[ihdr + 4:ihdr + 8] = width.to_bytes(4, "big")
    data[ihdr + 8:ihdr + 12] = height.to_bytes(4, "big")
    data[ihdr + 17:ihdr + 21] = zlib.crc32(bytes(data[ihdr:ihdr + 17])).to_bytes(4, "big")
    return bytes(data)


def drawn_seven(fmt: str) -> bytes:
    image = Image.new("RGB", (120, 160), "white")
    ImageDraw.Draw(image).line([(20, 20), (100, 20), (50, 140)], fill="black", width=12)
    return encoded(image, fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_png_or_jpeg_loads_and_prepares_into_a_digit(fmt):
    image = load_uploaded_image(drawn_seven(fmt))
    assert image.size == (120, 160)
    digit = prepare_array(image)
    assert digit.shape == (28, 28) and digit.max() > 0.9


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"%PDF-1.4 this is not an image at all", "not an image"),
    (drawn_seven("PNG")[:300], "damaged or incomplete"),  # truncated upload
    (encoded(Image.new("L", (10, 10)), "GIF"), "GIF image; upload a PNG or JPEG"),
    (png_claiming_size(7_000, 7_000), "too large"),  # 49 Mpx: over our limit, under Pillow's
    (png_claiming_size(10_000, 10_000), "too large"),  # 100 Mpx: Pillow's bomb warning, made an error
    (png_claiming_size(30_000, 30_000), "too large"),  # 900 Mpx: Pillow's bomb error
])
def test_bad_uploads_raise_one_clear_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        load_uploaded_image(data)


def test_the_pixel_limit_is_a_parameter():
    data = encoded(Image.new("L", (100, 100), 255), "PNG")
    assert load_uploaded_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ValueError, match="too large"):
        load_uploaded_image(data, max_pixels=9_999)


def test_a_large_16_bit_gray_png_loads_and_prepares_into_a_digit():
    """Pillow cannot reduce 16-bit gray by a whole factor (what thumbnail does first for a large image)."""
    seven = Image.new("I;16", (4000, 5000), 0)
    ImageDraw.Draw(seven).line([(800, 800), (3200, 800), (1600, 4200)], fill=65535, width=300)
    digit = prepare_array(load_uploaded_image(encoded(seven, "PNG")))
    assert digit.shape == (28, 28) and digit.max() > 0.9


@pytest.mark.parametrize("mode, transparent, per_pixel", [
    ("L", False, 1), ("1", False, 2), ("P", False, 2), ("I;16", False, 2), ("RGB", False, 4),
    ("1", True, 8), ("P", True, 8), ("PA", False, 8), ("LA", False, 8), ("RGBA", False, 8),
])
def test_every_copy_a_decode_holds_at_full_size_counts(mode, transparent, per_pixel):
    from vae.server.uploads import decoded_bytes_per_pixel

    assert decoded_bytes_per_pixel(mode, transparent) == per_pixel
