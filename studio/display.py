"""Pictures of a correction for the screen: gray digits and difference maps as RGB, enlarged,
with the corrected spots circled, and a sentence counting them."""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vae.correction import MIN_REGION_AREA, Spot

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


def circle_spots(image28: np.ndarray, regions: list[Spot], scale: int = DISPLAY_SCALE,
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


def describe_spots(regions: list[Spot], skipped: int = 0, min_area: int = MIN_REGION_AREA) -> str:
    """'3 corrected spots circled: 2 with ink added, 1 with ink removed' or 'no corrected spot', then,
    if `skipped` specks were too small to circle, '; 31 smaller specks (under 3 pixels) not circled'."""
    small = "" if not skipped else (f"; {skipped} smaller {'speck' if skipped == 1 else 'specks'} "
                                    f"(under {min_area} pixels) not circled")
    if not regions:
        return "no corrected spot" + small
    counts = {sign: sum(r.sign == sign for r in regions) for sign in ("added", "removed", "mixed")}
    parts = [f"{n} with ink {sign}" if sign != "mixed" else f"{n} mixed (ink moved)"
             for sign, n in counts.items() if n]
    noun = "spot" if len(regions) == 1 else "spots"
    return f"{len(regions)} corrected {noun} circled: " + ", ".join(parts) + small


SHEET_MARGIN = 10  # pixels around and between the panels of a downloaded result
CAPTION_HEIGHT = 30  # pixels under each panel for its caption
CAPTION_SIZE = 16  # pixels, the font Pillow ships (it lacks some signs such as ×: keep captions plain)


def result_sheet(panels: list[np.ndarray], captions: list[str], summary: str | None = None) -> Image.Image:
    """The panels (RGB uint8, any sizes) side by side on white, each captioned underneath, and `summary` (the
    model, score, threshold and verdict) in a line below them: the picture a user downloads. Text is drawn in
    Pillow's own font, so keep it short and plain."""
    if len(panels) != len(captions):
        raise ValueError(f"{len(panels)} panels but {len(captions)} captions")
    images = [Image.fromarray(np.asarray(p, dtype=np.uint8)).convert("RGB") for p in panels]
    width = SHEET_MARGIN + sum(image.width + SHEET_MARGIN for image in images)
    height = SHEET_MARGIN + max(image.height for image in images) + CAPTION_HEIGHT + (CAPTION_HEIGHT if summary else 0)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(CAPTION_SIZE)
    x = SHEET_MARGIN
    for image, caption in zip(images, captions):
        sheet.paste(image, (x, SHEET_MARGIN))
        draw.text((x, SHEET_MARGIN + image.height + 6), caption, fill="black", font=font)
        x += image.width + SHEET_MARGIN
    if summary:
        top = SHEET_MARGIN + max(image.height for image in images) + CAPTION_HEIGHT
        draw.text((SHEET_MARGIN, top), summary, fill="black", font=font)
    return sheet


def png_bytes(image: Image.Image | np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """An image encoded as PNG, for a download button or a data URL; `text` goes into its tEXt chunks
    (e.g. score and verdict, which any image viewer's properties or `exiftool` show)."""
    from PIL.PngImagePlugin import PngInfo

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(str(key), str(value))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def thumbnail_url(image28: np.ndarray) -> str:
    """A gray digit as a PNG data URL, the form a table's image column shows."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(to_rgb(image28))).decode("ascii")

def tile(images: np.ndarray, columns: int, gap: int = 0, fill: float = 1.0) -> np.ndarray:
    """(N, H, W) → one image of `columns` per row, row-major, with `gap` pixels of `fill` between."""
    from torchvision.utils import make_grid

    images = torch.from_numpy(np.asarray(images, dtype=np.float32))
    n, h, w = images.shape
    # Blank slots fill the last row: make_grid would otherwise narrow a grid of fewer than `columns` images.
    slots = torch.cat([images, torch.full((-n % columns, h, w), fill)])
    grid = make_grid(slots[:, None], nrow=columns, padding=gap, pad_value=fill)[0]
    if len(slots) > 1:  # make_grid frames the tiles in `gap` too (a lone image it returns as it is)
        grid = grid[gap:grid.shape[0] - gap, gap:grid.shape[1] - gap]
    return grid.numpy()
