"""Images that are not MNIST digits, made by seeded code: what a visitor tries besides digits.

Each kind is drawn big, white on black, the way the Draw page's canvas draws (280 px, a round pen), then
prepared like any drawing or upload (`prepare_array`): letters typed in four fonts, simple shapes drawn with
a pen, scribbles, noise, and scikit-learn's 8×8 digits (digits, but not MNIST's). The same seed gives the
same images, so a detector is tuned on one seed's set and judged on another's.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .preprocess import prepare_array

CANVAS = 280  # px, as the Draw page's canvas
# Capitals whose shape no digit shares (no O, I, L, S, Z, B, G, T, D, J, U: 0, 1, 5, 2, 8, 6, 7 look-alikes).
LETTERS = "AEFHKMNPQRVWXYk"
FONT_FILES = {
    "DejaVu Sans": ("dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf"),
    "DejaVu Serif": ("dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSerif-Bold.ttf"),
    "Liberation Sans": ("liberation/LiberationSans-Regular.ttf", "liberation/LiberationSans-Bold.ttf"),
    "Liberation Mono": ("liberation/LiberationMono-Regular.ttf", "liberation/LiberationMono-Bold.ttf"),
}
FONT_DIR = Path("/usr/share/fonts/truetype")
SHAPES = ("square", "triangle", "star", "grid", "smiley", "spiral")
KINDS = {
    "letter": "a capital letter that looks like no digit, typed in one of 4 fonts (regular or bold), random size and tilt",
    "shape": "a square, triangle, star, grid, smiley or spiral drawn with the canvas's pen",
    "scribble": "a few random pen strokes",
    "noise": "random grey pixels, or random blotches",
    "sklearn_digit": "one of scikit-learn's 1,797 8×8 digits (a digit, but not MNIST's)",
}
# The two seeds used across the project: detector choices are made on DEVELOPMENT's images, the numbers
# published on EVALUATION's.
DEVELOPMENT_SEED, EVALUATION_SEED = 1, 2


class FontsMissing(RuntimeError):
    """The DejaVu or Liberation fonts are not installed (apt-get install fonts-dejavu fonts-liberation)."""


def _font(name: str, bold: bool, size: int) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / FONT_FILES[name][int(bold)]
    if not path.exists():
        raise FontsMissing(f"font file {path} is missing: apt-get install fonts-dejavu fonts-liberation")
    return ImageFont.truetype(str(path), size)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (CANVAS, CANVAS), 0)
    return image, ImageDraw.Draw(image)


def _pen(draw: ImageDraw.ImageDraw, points: np.ndarray, width: int, closed: bool = False) -> None:
    """A polyline with round joints and ends, as a canvas pen leaves it."""
    points = [tuple(p) for p in np.asarray(points, dtype=float)]
    if closed:
        points.append(points[0])
    draw.line(points, fill=255, width=width, joint="curve")
    r = width / 2
    for x, y in points:
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)


def letter(rng: np.random.Generator) -> np.ndarray:
    char = LETTERS[rng.integers(len(LETTERS))]
    font = _font(list(FONT_FILES)[rng.integers(len(FONT_FILES))], bool(rng.integers(2)), int(rng.integers(120, 220)))
    image, draw = _canvas()
    draw.text((CANVAS / 2, CANVAS / 2), char, fill=255, font=font, anchor="mm")
    return np.asarray(image.rotate(rng.uniform(-20, 20), resample=Image.BILINEAR), dtype=np.float32) / 255.0


def _rotate(points: np.ndarray, angle: float, centre: float = CANVAS / 2) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    shifted = np.asarray(points, dtype=float) - centre
    return shifted @ np.array([[c, s], [-s, c]]) + centre


def shape(rng: np.random.Generator, name: str | None = None) -> np.ndarray:
    name = SHAPES[rng.integers(len(SHAPES))] if name is None else name
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; choose one of {', '.join(SHAPES)}")
    image, draw = _canvas()
    half, width, mid = rng.uniform(70, 120), int(rng.integers(14, 27)), CANVAS / 2
    tilt = rng.uniform(-0.35, 0.35)

    def jitter(points):  # a hand is never exact
        return _rotate(np.asarray(points) + rng.normal(0, half * 0.04, np.shape(points)), tilt)

    if name in ("square", "triangle", "star"):
        corners = {"square": 4, "triangle": 3, "star": 10}[name]
        angles = np.arange(corners) * 2 * np.pi / corners + (np.pi / 4 if name == "square" else -np.pi / 2)
        radii = np.where(np.arange(corners) % 2, 0.42, 1.0) * half if name == "star" else np.full(corners, half)
        _pen(draw, jitter(np.c_[mid + radii * np.cos(angles), mid + radii * np.sin(angles)]), width, closed=True)
    elif name == "grid":
        lines = int(rng.integers(3, 5))
        for t in np.linspace(-half, half, lines):
            _pen(draw, jitter([[mid - half, mid + t], [mid + half, mid + t]]), width)
            _pen(draw, jitter([[mid + t, mid - half], [mid + t, mid + half]]), width)
    elif name == "smiley":
        ring = np.linspace(0, 2 * np.pi, 40)
        _pen(draw, jitter(np.c_[mid + half * np.cos(ring), mid + half * np.sin(ring)]), width, closed=True)
        for side in (-1, 1):
            _pen(draw, jitter([[mid + side * half * 0.38, mid - half * 0.3]] * 2), int(width * 1.3))
        smile = np.linspace(0.2 * np.pi, 0.8 * np.pi, 12)
        _pen(draw, jitter(np.c_[mid + 0.55 * half * np.cos(smile), mid + 0.55 * half * np.sin(smile)]), width)
    else:  # spiral: two and a half turns outwards
        turn = np.linspace(0, 5 * np.pi, 80)
        radius = half * (0.08 + 0.92 * turn / turn[-1])
        _pen(draw, jitter(np.c_[mid + radius * np.cos(turn), mid + radius * np.sin(turn)]), width)
    return np.asarray(image, dtype=np.float32) / 255.0


def scribble(rng: np.random.Generator) -> np.ndarray:
    image, draw = _canvas()
    for _ in range(int(rng.integers(2, 4))):
        points = rng.uniform(40, CANVAS - 40, (int(rng.integers(4, 8)), 2))
        # a smooth path through the points: quadratic-ish by subdividing twice (Chaikin's corner cutting)
        for _ in range(2):
            points = np.concatenate([[points[0]], *[[0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b]
                                                     for a, b in zip(points[:-1], points[1:])], [points[-1]]])
        _pen(draw, points, int(rng.integers(14, 27)))
    return np.asarray(image, dtype=np.float32) / 255.0


def noise(rng: np.random.Generator) -> np.ndarray:
    if rng.integers(2):  # grey pixels
        return rng.uniform(0, 1, (28, 28)).astype(np.float32)
    image, draw = _canvas()  # blotches
    for _ in range(int(rng.integers(5, 12))):
        x, y, r = rng.uniform(20, CANVAS - 20), rng.uniform(20, CANVAS - 20), rng.uniform(8, 30)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(rng.integers(128, 256)))
    return np.asarray(image, dtype=np.float32) / 255.0


def _sklearn_digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images / 16.0


def nondigits(kind: str, n: int, seed: int = DEVELOPMENT_SEED) -> np.ndarray:
    """(n, 28, 28) float32 images in [0, 1] of one of KINDS, prepared like a drawing; the same for a seed."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if n < 0:
        raise ValueError(f"n must be at least 0, got {n}")
    rng = np.random.default_rng([seed, list(KINDS).index(kind)])
    if kind == "sklearn_digit":
        images = _sklearn_digits()
        raw = images[rng.choice(len(images), min(n, len(images)), replace=False)]
    else:
        draw = {"letter": letter, "shape": shape, "scribble": scribble, "noise": noise}[kind]
        raw = [draw(rng) for _ in range(n)]
    return np.stack([prepare_array(image) for image in raw]).astype(np.float32) if n else np.zeros((0, 28, 28), np.float32)


def nondigit_set(n_per_kind: int, seed: int = DEVELOPMENT_SEED) -> dict[str, np.ndarray]:
    """{kind: (n, 28, 28) images} for every kind of KINDS."""
    return {kind: nondigits(kind, n_per_kind, seed) for kind in KINDS}
