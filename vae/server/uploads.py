"""Safe decoding of uploaded images: PNG or JPEG only, sizes checked before any pixel is decoded,
reduced to a working size, every failure one ValueError with a message for the user."""
from __future__ import annotations

import io
import threading
import warnings
from contextlib import contextmanager

from PIL import Image, PngImagePlugin

from . import limits

# The limits (limits.LIMITS: pixels, decoded bytes, aspect ratio, working size) are checked from the header
# before any pixel is decoded, then everything is reduced to the working size before it becomes floats:
# peak memory per upload stays under 100 MB, whatever its mode, bit depth or chunks, and at most
# LIMITS.decodes_at_once are decoded at a time (tests/test_uploads.py measures both).
UPLOAD_FORMATS = ("PNG", "JPEG", "MPO")  # MPO: the JPEG variant many phone cameras write

# How many bytes Pillow holds per pixel of an image in each mode (its own storage: 1, 2 or 4 bytes).
PIL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # every other mode: 4
WITH_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")  # resized premultiplied: one more copy of the same size

# A PNG's text chunks are decompressed while its header is read: Pillow allows 64 MB of them (a 64 KB file).
# A digit needs none; these bound what a file can make the server hold before its pixels are even counted.
PngImagePlugin.MAX_TEXT_CHUNK = 256 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = 1024 * 1024

_decoding = threading.BoundedSemaphore(limits.LIMITS.decodes_at_once)  # the server's decodes at a time


def decoded_bytes_per_pixel(mode: str, transparent: bool) -> int:
    """The most bytes per pixel that decoding and reducing an image of this mode holds at once (full size):
    the decoded image, its conversion to gray levels (palette and 1-bit images: RGBA if they have a
    transparent colour), and the premultiplied copy Pillow makes to resize an image with alpha."""
    held = PIL_BYTES.get(mode, 4)
    if mode in ("P", "PA", "1"):
        target = "RGBA" if transparent or mode == "PA" else "L"
        return max(held + PIL_BYTES.get(target, 4), decoded_bytes_per_pixel(target, False))
    return held * 2 if mode in WITH_ALPHA else held


def load_uploaded_image(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Decode an uploaded PNG or JPEG, reduced to at most LIMITS.working_size px, or raise ValueError with a
    message for the user.

    Refuses non-images, other formats, truncated or corrupt files, strips (aspect ratio over
    LIMITS.aspect_ratio) and images over the pixel limits (decompression bombs: a small file that would
    expand to gigabytes). Sizes are checked from the header, before any pixel is decoded; Pillow's
    own bomb warning is turned into an error too.
    """
    if not data:
        raise ValueError("the file is empty")
    with _decoding, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _readable("this file is not an image; upload a PNG or JPEG", detail=False):
            image = Image.open(io.BytesIO(data))  # reads the header only
        if image.format not in UPLOAD_FORMATS:
            raise ValueError(f"this is a {image.format} image; upload a PNG or JPEG")
        width, height = image.size
        LIMITS = limits.LIMITS
        max_pixels = max_pixels or LIMITS.upload_pixels
        is_jpeg = image.format != "PNG"
        # A progressive or CMYK JPEG keeps every full-size coefficient while it decodes, whatever
        # draft() asks for (a 0.9 MB 6324² one peaked at 316 MB): it gets a PNG's budget.
        reduced_decode = is_jpeg and not (image.info.get("progressive") or image.info.get("progression")
                                          or image.mode == "CMYK")
        transparent = image.has_transparency_data  # a tRNS chunk: a palette or 1-bit image converts to RGBA
        per_pixel = decoded_bytes_per_pixel(image.mode, transparent)
        limit = max_pixels if reduced_decode else min(max_pixels, LIMITS.full_decode_bytes // per_pixel)
        if max(width, height) > LIMITS.aspect_ratio * max(min(width, height), 1):
            raise ValueError(f"the image is {width}×{height} pixels, too long and thin for one digit "
                             f"(at most {LIMITS.aspect_ratio}:1)")
        if width * height > limit:
            raise ValueError(f"the image is too large ({width}×{height} pixels); the limit is "
                             f"{limit / 1_000_000:g} million pixels for this {'JPEG' if is_jpeg else 'PNG'}")
        with _readable("the image file is damaged or incomplete"):
            if reduced_decode:
                image.draft(image.mode, (LIMITS.working_size, LIMITS.working_size))  # decode at a reduced scale
            image.load()
            if image.mode in ("P", "PA", "1"):  # palette and 1-bit images resize badly: real gray levels first
                image = image.convert("RGBA" if transparent or image.mode == "PA" else "L")
            # In place; reduces by a whole factor before resampling, which Pillow cannot do for 16-bit gray.
            image.thumbnail((LIMITS.working_size, LIMITS.working_size), Image.LANCZOS,
                            reducing_gap=None if image.mode.startswith("I;16") else 2.0)
    return image


@contextmanager
def _readable(message: str, detail: bool = True):
    """Turn whatever Pillow raises on bad data into one ValueError with `message`
    (and Pillow's own words in brackets, where they help)."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError("the image is too large to decode safely") from None
    except (OSError, SyntaxError, EOFError, ValueError) as exc:  # truncated data, bad chunks or CRCs
        raise ValueError(f"{message} ({exc})" if detail else message) from None
