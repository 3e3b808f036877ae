"""What the model corrects in one digit (report Fig. 6 and Fig. 8): the signed difference between
input and reconstruction, the spots where it is large, synthetic flaws to provoke corrections,
and safe loading of uploaded images.

Images here are 28×28 float arrays in [0, 1], light ink on black, as `vae.prepare_array` returns.
"""
from __future__ import annotations

import io
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from .errors import squared_error

# Difference map colours: one hue per direction, so colour-blind readers can tell them apart.
ADDED_COLOUR = (0, 170, 255)  # sky blue: ink the model added (reconstruction brighter than input)
REMOVED_COLOUR = (255, 140, 0)  # orange: ink the model removed (reconstruction darker than input)
CIRCLE_COLOUR = (255, 0, 0)  # the report circles corrected spots in red
DISPLAY_SCALE = 10  # 28 px → 280 px for display
# Chosen on flawed MNIST test digits through a trained 64-dim VAE: at these values a clean digit
# shows about one spot or none (stroke edges shift a little everywhere), while a scratch or blob
# is circled in nearly every case.
MIN_REGION_AREA = 3  # pixels; smaller specks are edge jitter or noise, not corrections
DEFAULT_LEVEL = 0.5  # |difference| above which a pixel counts as corrected

FLAW_KINDS = ("none", "scratch", "blob", "erase", "noise")
FLAW_DESCRIPTIONS = {
    "none": "none",
    "scratch": "scratch: a stray stroke",
    "blob": "blob: ink jutting out of a stroke",
    "erase": "erase: a gap wiped into the strokes",
    "noise": "noise: salt-and-pepper pixels",
}

# Upload limits, checked from the header before any pixel is decoded. A JPEG decodes at 1/2, 1/4 or
# 1/8 scale (Image.draft), so a large one costs little; a PNG decodes in full, 4 bytes a pixel, and
# resizing an RGBA image copies it once more (premultiplied alpha), so it gets the smaller budget. Then everything is reduced to WORKING_SIZE before it becomes floats:
# peak memory per upload stays under 100 MB (tests/test_uploads.py measures it).
MAX_UPLOAD_PIXELS = 40_000_000  # JPEG
MAX_FULL_DECODE_BYTES = 32_000_000  # PNG: e.g. 3,264×2,448 RGBA or 5,000×6,000 gray
MAX_ASPECT_RATIO = 20  # a tall "1" is about 1:4; a 39,000,000×1 strip is no digit
WORKING_SIZE = 1024  # px, longest side: far more than the 20 px the digit ends up as
UPLOAD_FORMATS = ("PNG", "JPEG", "MPO")  # MPO: the JPEG variant many phone cameras write


# --- the difference between input and reconstruction -------------------------------------------

def difference_map(input28: np.ndarray, recon28: np.ndarray) -> np.ndarray:
    """Signed float32 recon − input: > 0 where the model added ink, < 0 where it removed ink."""
    input28 = np.asarray(input28, dtype=np.float32)
    recon28 = np.asarray(recon28, dtype=np.float32)
    if input28.shape != recon28.shape:
        raise ValueError(f"input {input28.shape} and reconstruction {recon28.shape} differ in shape")
    return recon28 - input28


def render_difference(diff: np.ndarray) -> np.ndarray:
    """RGB uint8 image of a difference map on the fixed scale [-1, 1], so any two are comparable:
    black where nothing changed, ADDED_COLOUR where ink was added, REMOVED_COLOUR where removed,
    brighter the larger the change."""
    diff = np.clip(np.asarray(diff, dtype=np.float32), -1.0, 1.0)
    added = np.clip(diff, 0.0, 1.0)[..., None] * np.array(ADDED_COLOUR, dtype=np.float32)
    removed = np.clip(-diff, 0.0, 1.0)[..., None] * np.array(REMOVED_COLOUR, dtype=np.float32)
    return np.rint(added + removed).astype(np.uint8)


def to_rgb(image28: np.ndarray) -> np.ndarray:
    """Gray float image in [0, 1] → RGB uint8."""
    gray = np.rint(np.clip(np.asarray(image28, dtype=np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def upscale(image: np.ndarray, factor: int = DISPLAY_SCALE) -> np.ndarray:
    """Nearest-neighbour enlargement (H×W or H×W×C), so each model pixel stays a crisp square."""
    return np.repeat(np.repeat(np.asarray(image), factor, axis=0), factor, axis=1)


# --- the spots the model corrected ---------------------------------------------------------------

@dataclass(frozen=True)
class Region:
    """One connected spot where |difference| exceeds the level, in 28×28 pixel coordinates
    (pixel (r, c) has its centre at (r, c))."""
    centre: tuple[float, float]  # (row, col)
    radius: float  # a circle about `centre` with this radius covers every pixel of the spot
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right), bottom and right exclusive
    area: int  # pixels
    sign: str  # "added", "removed" or "mixed"
    peak: float  # largest |difference| in the spot


def corrected_regions(diff: np.ndarray, level: float = DEFAULT_LEVEL,
                      min_area: int = MIN_REGION_AREA) -> list[Region]:
    """Connected spots (8-neighbourhood) where |diff| > level, largest change first.
    Spots under `min_area` pixels are left out so single noisy pixels are not circled."""
    diff = np.asarray(diff, dtype=np.float32)
    if diff.ndim != 2:
        raise ValueError(f"expected a 2-D difference map, got shape {diff.shape}")
    labels, count = ndimage.label(np.abs(diff) > level, structure=np.ones((3, 3), dtype=bool))
    regions = []
    for index, slices in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = np.nonzero(labels[slices] == index)
        if rows.size < min_area:
            continue
        rows, cols = rows + slices[0].start, cols + slices[1].start
        values = diff[rows, cols]
        top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
        centre_r, centre_c = (top + bottom - 1) / 2, (left + right - 1) / 2
        # Farthest pixel centre, plus half a pixel diagonal so the whole square lies inside.
        radius = float(np.hypot(rows - centre_r, cols - centre_c).max()) + math.sqrt(0.5)
        sign = "added" if (values > 0).all() else "removed" if (values < 0).all() else "mixed"
        regions.append(Region((float(centre_r), float(centre_c)), radius,
                              (int(top), int(left), int(bottom), int(right)),
                              int(rows.size), sign, float(np.abs(values).max())))
    return sorted(regions, key=lambda r: (r.peak, r.area), reverse=True)


def circle_regions(image28: np.ndarray, regions: list[Region], scale: int = DISPLAY_SCALE,
                   colour: tuple[int, int, int] = CIRCLE_COLOUR) -> np.ndarray:
    """RGB uint8 copy of a gray image enlarged `scale` times, each region circled in `colour`."""
    canvas = Image.fromarray(upscale(to_rgb(image28), scale))
    draw = ImageDraw.Draw(canvas)
    width = max(1, scale // 4)
    for region in regions:
        # Pixel (r, c) covers [c·scale, (c+1)·scale) on screen: its centre is at (c + ½)·scale.
        x, y = (region.centre[1] + 0.5) * scale, (region.centre[0] + 0.5) * scale
        r = (region.radius + 0.5) * scale  # a little room so the outline does not hide the ink
        draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=width)
    return np.asarray(canvas)


def describe_regions(regions: list[Region]) -> str:
    """'3 corrected spots: 2 with ink added, 1 with ink removed' or 'no corrected spot'."""
    if not regions:
        return "no corrected spot"
    counts = {sign: sum(r.sign == sign for r in regions) for sign in ("added", "removed", "mixed")}
    parts = [f"{n} with ink {sign}" if sign != "mixed" else f"{n} mixed (ink moved)"
             for sign, n in counts.items() if n]
    noun = "spot" if len(regions) == 1 else "spots"
    return f"{len(regions)} corrected {noun}: " + ", ".join(parts)


# --- one image through one model ----------------------------------------------------------------

@dataclass(frozen=True)
class Correction:
    input: np.ndarray  # 28×28 what the model saw
    reconstruction: np.ndarray  # 28×28 what it gave back
    diff: np.ndarray  # reconstruction − input
    score: float  # the anomaly score: the same number the error histograms count


@torch.no_grad()
def correct(model, image28: np.ndarray) -> Correction:
    """Run one prepared 28×28 image through a model."""
    image28 = np.asarray(image28, dtype=np.float32)
    if image28.shape != (28, 28):
        raise ValueError(f"expected a prepared 28×28 image, got shape {image28.shape}")
    x = torch.from_numpy(image28).view(1, 1, 28, 28)
    model.eval()
    recon = model.reconstruct(x)
    score = float(squared_error(recon, x)[0])  # the histograms' score, without reconstructing again
    recon = recon[0, 0].numpy()
    return Correction(image28, recon, difference_map(image28, recon), score)


def verdict(score: float, limit: float) -> str:
    """'anomaly' above the threshold, else 'normal' (the same '>' as `errors.fraction_above`)."""
    return "anomaly" if score > limit else "normal"


# --- synthetic flaws on test digits --------------------------------------------------------------

def add_flaw(image28: np.ndarray, kind: str, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A copy of the digit with one flaw the model never saw in training, the same for a seed:
    'scratch' a stray stroke, 'blob' a disc of ink jutting out of a stroke, 'erase' a gap wiped
    into the strokes, 'noise' salt-and-pepper pixels, 'none' unchanged. Result clipped to [0, 1]."""
    if kind not in FLAW_KINDS:
        raise ValueError(f"unknown flaw {kind!r}; choose one of {list(FLAW_KINDS)}")
    image = np.clip(np.asarray(image28, dtype=np.float32), 0.0, 1.0).copy()
    rng = np.random.default_rng(seed)
    size = image.shape[0]
    if kind == "scratch":  # starts off the strokes, so it always shows, and runs any way
        start = _random_spot(image, rng, 3.0, np.inf)
        angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(8, 14)
        end = np.clip(start + length * np.array([np.cos(angle), np.sin(angle)]), 2, size - 3)
        image = np.maximum(image, _painted(size, lambda draw, k: draw.line(
            ((start[1] + 0.5) * k, (start[0] + 0.5) * k, (end[1] + 0.5) * k, (end[0] + 0.5) * k),
            fill=255, width=2 * k)))
    elif kind == "blob":  # a protrusion: centred just off a stroke
        (r, c), radius = _random_spot(image, rng, 2.0, 4.0) + 0.5, rng.uniform(2.0, 3.0)
        image = np.maximum(image, _painted(size, lambda draw, k: draw.ellipse(
            ((c - radius) * k, (r - radius) * k, (c + radius) * k, (r + radius) * k), fill=255)))
    elif kind == "erase":
        ink_rows, ink_cols = np.nonzero(image > 0.5)
        if ink_rows.size:  # wipe a patch centred on a stroke, so something really disappears
            i = rng.integers(ink_rows.size)
            r, c, half = ink_rows[i], ink_cols[i], int(rng.integers(2, 4))
            image[max(0, r - half):r + half + 1, max(0, c - half):c + half + 1] = 0.0
    elif kind == "noise":
        draw = rng.random(image.shape)
        image[draw < 0.04] = 1.0  # salt
        image[draw > 0.96] = 0.0  # pepper
    return np.clip(image, 0.0, 1.0)


def _random_spot(image: np.ndarray, rng: np.random.Generator, near: float, far: float) -> np.ndarray:
    """(row, col) of a random background pixel `near` to `far` pixels from the ink, 4 px inside the
    border; anywhere inside the border if there is no such pixel (e.g. a blank image)."""
    inside = np.zeros(image.shape, dtype=bool)
    inside[4:-4, 4:-4] = True
    distance = ndimage.distance_transform_edt(image <= 0.5)
    rows, cols = np.nonzero(inside & (distance >= near) & (distance <= far))
    if rows.size == 0:
        rows, cols = np.nonzero(inside)
    i = rng.integers(rows.size)
    return np.array([rows[i], cols[i]], dtype=np.float64)


def _painted(size: int, paint, supersample: int = 4) -> np.ndarray:
    """A size×size float mask in [0, 1] painted by `paint(ImageDraw, k)` in coordinates k times
    finer (pixel (r, c) spans [c·k, (c+1)·k)), then averaged down: soft edges like MNIST's
    anti-aliased strokes, not a staircase."""
    mask = Image.new("L", (size * supersample, size * supersample), 0)
    paint(ImageDraw.Draw(mask), supersample)
    return np.asarray(mask.reduce(supersample), dtype=np.float32) / 255.0


# --- uploaded files ------------------------------------------------------------------------------

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
        bytes_per_pixel = 1 if image.mode in ("1", "L") else 4  # how Pillow holds it in memory
        limit = max_pixels if is_jpeg else min(max_pixels, MAX_FULL_DECODE_BYTES // bytes_per_pixel)
        if max(width, height) > MAX_ASPECT_RATIO * max(min(width, height), 1):
            raise ValueError(f"the image is {width}×{height} pixels, too long and thin for one digit "
                             f"(at most {MAX_ASPECT_RATIO}:1)")
        if width * height > limit:
            raise ValueError(f"the image is too large ({width}×{height} pixels); the limit is "
                             f"{limit / 1_000_000:g} million pixels for this {'JPEG' if is_jpeg else 'PNG'}")
        with _readable("the image file is damaged or incomplete"):
            if is_jpeg:
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
