"""Safe decoding of uploaded images: PNG or JPEG only, sizes checked before any pixel is decoded,
reduced to a working size, every failure one ValueError with a message for the user."""
from __future__ import annotations

import io
import warnings
from contextlib import contextmanager

from PIL import Image

# Upload limits, checked from the header before any pixel is decoded. A JPEG decodes at 1/2, 1/4 or
# 1/8 scale (Image.draft), so a large one costs little; a PNG decodes in full, 4 bytes a pixel, and
# resizing an RGBA image copies it once more (premultiplied alpha), so it gets the smaller budget.
# Then everything is reduced to WORKING_SIZE before it becomes floats: peak memory per upload stays
# under 100 MB (tests/test_uploads.py measures it).
MAX_UPLOAD_PIXELS = 40_000_000  # JPEG
MAX_FULL_DECODE_BYTES = 32_000_000  # PNG: e.g. 3,264×2,448 RGBA or 5,000×6,000 gray
MAX_ASPECT_RATIO = 20  # a tall "1" is about 1:4; a 39,000,000×1 strip is no digit
WORKING_SIZE = 1024  # px, longest side: far more than the 20 px the digit ends up as
UPLOAD_FORMATS = ("PNG", "JPEG", "MPO")  # MPO: the JPEG variant many phone cameras write


def load_uploaded_image(data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> Image.Image:
    """Decode an uploaded PNG or JPEG, reduced to at most WORKING_SIZE px, or raise ValueError with a
    message for the user.

    Refuses non-images, other formats, truncated or corrupt files, strips (aspect ratio over
    MAX_ASPECT_RATIO) and images over the pixel limits (decompression bombs: a small file that would
    expand to gigabytes). Sizes are checked from the header, before any pixel is decoded; Pillow's
    own bomb warning is turned into an error too.
    """
    if not data:
        raise ValueError("the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _readable("this file is not an image; upload a PNG or JPEG", detail=False):
            image = Image.open(io.BytesIO(data))  # reads the header only
        if image.format not in UPLOAD_FORMATS:
            raise ValueError(f"this is a {image.format} image; upload a PNG or JPEG")
        width, height = image.size
        is_jpeg = image.format != "PNG"
        # A progressive or CMYK JPEG keeps every full-size coefficient while it decodes, whatever
        # draft() asks for (a 0.9 MB 6324² one peaked at 316 MB): it gets a PNG's budget.
        reduced_decode = is_jpeg and not (image.info.get("progressive") or image.info.get("progression")
                                          or image.mode == "CMYK")
        bytes_per_pixel = 1 if image.mode in ("1", "L") else 4  # how Pillow holds it in memory
        limit = max_pixels if reduced_decode else min(max_pixels, MAX_FULL_DECODE_BYTES // bytes_per_pixel)
        if max(width, height) > MAX_ASPECT_RATIO * max(min(width, height), 1):
            raise ValueError(f"the image is {width}×{height} pixels, too long and thin for one digit "
                             f"(at most {MAX_ASPECT_RATIO}:1)")
        if width * height > limit:
            raise ValueError(f"the image is too large ({width}×{height} pixels); the limit is "
                             f"{limit / 1_000_000:g} million pixels for this {'JPEG' if is_jpeg else 'PNG'}")
        with _readable("the image file is damaged or incomplete"):
            if reduced_decode:
                image.draft(image.mode, (WORKING_SIZE, WORKING_SIZE))  # decode at a reduced scale
            image.load()
            if image.mode in ("P", "PA", "1"):  # palette and 1-bit images resize badly: real gray levels first
                image = image.convert("RGBA" if image.has_transparency_data else "L")
            image.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.LANCZOS)  # in place; reduces before resampling
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
