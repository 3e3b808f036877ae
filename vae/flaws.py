"""Synthetic flaws on test digits: ink the model never saw in training, to provoke corrections."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

FLAW_KINDS = ("none", "scratch", "blob", "erase", "noise")
FLAW_DESCRIPTIONS = {
    "none": "none",
    "scratch": "scratch: a stray stroke",
    "blob": "blob: ink jutting out of a stroke",
    "erase": "erase: a gap wiped into the strokes",
    "noise": "noise: salt-and-pepper pixels",
}


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
