"""Flaws that touch the digit: what a visitor's own mistakes look like (a pen slipping off a stroke, a
stroke drawn on past its end, a dot of ink on a stroke, a gap rubbed out of one).

Each is made on a 28×28 digit in [0, 1] by seeded code; `off_ink_pixels` counts how much of a flaw lies
where the digit had no ink, which is what decides whether a model can tell it from the digit at all.
"""
from __future__ import annotations

import numpy as np

from .flaws import _painted

TOUCHING_KINDS = {
    "stroke": "a 1–2 px stroke of 5–10 px starting on the ink, any direction",
    "disc": "a disc of ink (radius 2–3.5 px) centred on a stroke",
    "extension": "a stroke carrying on past one end of the digit's strokes, 4–8 px",
    "erase_block": "a 4×4 block of the strokes rubbed out",
}
INK = 0.5  # a pixel is ink above this


def add_touching_flaw(image28: np.ndarray, kind: str, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A copy of the digit with one flaw of TOUCHING_KINDS on or along its strokes, the same for a seed."""
    if kind not in TOUCHING_KINDS:
        raise ValueError(f"unknown flaw {kind!r}; choose one of {', '.join(TOUCHING_KINDS)}")
    image = np.clip(np.asarray(image28, dtype=np.float32), 0.0, 1.0).copy()
    rng = np.random.default_rng(seed)
    ink_rows, ink_cols = np.nonzero(image > INK)
    if ink_rows.size == 0:
        return image  # nothing to touch
    i = rng.integers(ink_rows.size)
    r, c = float(ink_rows[i]), float(ink_cols[i])
    if kind == "stroke":
        angle, length, width = rng.uniform(0, 2 * np.pi), rng.uniform(5, 10), int(rng.integers(1, 3))
        return np.maximum(image, _line(image.shape[0], (r, c), angle, length, width))
    if kind == "disc":
        radius = rng.uniform(2.0, 3.5)
        return np.maximum(image, _painted(image.shape[0], lambda draw, k: draw.ellipse(
            ((c + 0.5 - radius) * k, (r + 0.5 - radius) * k, (c + 0.5 + radius) * k, (r + 0.5 + radius) * k), fill=255)))
    if kind == "extension":
        end, direction = _stroke_end(image, rng)
        length, width = rng.uniform(4, 8), int(rng.integers(2, 3))
        return np.maximum(image, _line(image.shape[0], end, np.arctan2(direction[1], direction[0]), length, width))
    top, left = int(np.clip(r - 1, 0, image.shape[0] - 4)), int(np.clip(c - 1, 0, image.shape[1] - 4))
    image[top:top + 4, left:left + 4] = 0.0
    return image


def _line(size: int, start, angle: float, length: float, width: int) -> np.ndarray:
    (r0, c0) = start
    r1, c1 = r0 + length * np.sin(angle), c0 + length * np.cos(angle)
    r1, c1 = float(np.clip(r1, 1, size - 2)), float(np.clip(c1, 1, size - 2))
    return _painted(size, lambda draw, k: draw.line(
        ((c0 + 0.5) * k, (r0 + 0.5) * k, (c1 + 0.5) * k, (r1 + 0.5) * k), fill=255, width=width * k))


def _stroke_end(image: np.ndarray, rng: np.random.Generator) -> tuple[tuple[float, float], np.ndarray]:
    """The ink pixel farthest along a random direction (the end of a stroke there), and the (d_col, d_row)
    direction the stroke runs out at it: the main axis of the ink within 3 px, pointing away from the rest."""
    rows, cols = np.nonzero(image > INK)
    points = np.c_[rows, cols].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    end = points[np.argmax(points @ np.array([np.sin(angle), np.cos(angle)]))]
    near = points[np.hypot(*(points - end).T) <= 3.0]
    direction = end - near.mean(0)  # from the nearby ink towards the end: outwards
    if len(near) >= 3:
        axis = np.linalg.eigh(np.cov((near - near.mean(0)).T))[1][:, -1]
        direction = axis * (1.0 if axis @ direction >= 0 else -1.0)
    if np.hypot(*direction) < 1e-6:
        direction = np.array([np.sin(angle), np.cos(angle)])
    direction = direction / np.hypot(*direction)
    return (float(end[0]), float(end[1])), np.array([direction[1], direction[0]])


def off_ink_pixels(clean: np.ndarray, flawed: np.ndarray, level: float = 0.1) -> np.ndarray:
    """(N,) how many pixels each flaw changed by more than `level` where the clean digit had no ink
    (for an erased block: where it had ink, since that is what went missing)."""
    clean, flawed = np.asarray(clean), np.asarray(flawed)
    changed = np.abs(flawed - clean) > level
    added = flawed > clean
    outside = np.where(added, clean <= INK, True)
    return (changed & outside).reshape(len(clean), -1).sum(1)
