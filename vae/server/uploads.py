"""Safe decoding of uploaded images: PNG or JPEG only, sizes checked before any pixel is decoded,
reduced to a working size, every failure one ValueError with a message for the user."""
from __future__ import annotations

import io
import warnings
from contextlib import contextmanager

from PIL import Image

from .limits import LIMITS

# The limits (limits.LIMITS: pixels, decoded bytes, aspect ratio, working size) are checked from the header
# before any pixel is decoded, then everything is reduced to the working size before it becomes floats:
# peak memory per upload stays under 100 MB (tests/test_uploads.py measures it).
UPLOAD_FORMATS = ("PNG", "JPEG", "MPO")  # MPO: the JPEG variant many phone cameras write


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
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _readable("this file is not an image; upload a PNG or JPEG", detail=False):
            image = Image.open(io.BytesIO(data))  # reads the header only
        if image.format not in UPLOAD_FORMATS:
            raise ValueError(f"this is a {image.format} image; upload a PNG or JPEG")
        width, height = image.size
        max_pixels = max_pixels or LIMITS.upload_pixels
        is_jpeg = image.format != "PNG"
        # A progressive or CMYK JPEG keeps every full-size coefficient while it decodes, whatever
        # draft() asks for (a 0.9 MB 6324² one peaked at 316 MB): it gets a PNG's budget.
        reduced_decode = is_jpeg and not (image.info.get("progressive") or image.info.get("progression")
                                          or image.mode == "CMYK")
        bytes_per_pixel = 1 if image.mode in ("1", "L") else 4  # how Pillow holds it in memory
        limit = max_pixels if reduced_decode else min(max_pixels, LIMITS.full_decode_bytes // bytes_per_pixel)
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
                image = image.convert("RGBA" if image.has_transparency_data else "L")
            image.thumbnail((LIMITS.working_size, LIMITS.working_size), Image.LANCZOS)  # in place; reduces before resampling
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
