"""Pictures of a correction for the screen: gray digits and difference maps as RGB, enlarged,
with the corrected spots circled, and a sentence counting them."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .correction import Region

# Difference map colours: one hue per direction, so colour-blind readers can tell them apart.
ADDED_COLOUR = (0, 170, 255)  # sky blue: ink the model added (reconstruction brighter than input)
REMOVED_COLOUR = (255, 140, 0)  # orange: ink the model removed (reconstruction darker than input)
CIRCLE_COLOUR = (255, 0, 0)  # the report circles corrected spots in red
DISPLAY_SCALE = 10  # 28 px → 280 px for display


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
