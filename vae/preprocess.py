"""Turn any drawn or uploaded digit into what the models were trained on: MNIST's own preprocessing.

MNIST digits are light ink on black, scaled so the longer side of the ink is 20 px (aspect kept,
anti-aliased), and placed in 28×28 with their centre of mass at the centre.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

BOX = 20  # longest side of the ink, in pixels
SIZE = 28
INK_LEVEL = 0.1  # of full contrast: fainter pixels do not count toward the bounding box
MIN_CONTRAST = 0.05  # an image whose ink differs from its background by less is blank


def _to_float_array(img) -> np.ndarray:
    """PIL image or numpy array → float array in [0, 1], shape H×W, H×W×3 or H×W×4."""
    if isinstance(img, Image.Image):
        has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
        img = img.convert("RGBA" if has_alpha else "RGB" if img.mode not in ("L", "F", "I", "I;16") else "F")
    arr = np.asarray(img)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float32)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"expected an image, got an array of {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected an image of shape H×W, H×W×3 or H×W×4, got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("the image is empty (0 pixels)")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("the image has NaN or infinite pixels")
    if arr.max() > 1.0:  # 0–255 (or 16-bit) data
        arr = arr / (65535.0 if arr.max() > 255 else 255.0)
    return np.clip(arr, 0.0, 1.0)


def _grayscale(arr: np.ndarray) -> np.ndarray:
    """H×W in [0, 1]. Transparent pixels become the background: the side opposite the ink."""
    if arr.ndim == 2:
        return arr
    gray = arr[:, :, :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3]
        if alpha.sum() == 0:
            raise ValueError("the image is blank: it is fully transparent")
        ink_is_light = (gray * alpha).sum() / alpha.sum() > 0.5
        background = 0.0 if ink_is_light else 1.0
        gray = gray * alpha + background * (1.0 - alpha)
    return gray


def ink_map(img) -> np.ndarray:
    """H×W ink in [0, 1]: light-on-dark, background 0, full contrast 1. Raises ValueError if blank."""
    gray = _grayscale(_to_float_array(img))
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # dark ink on light paper: invert to MNIST's polarity
        gray = 1.0 - gray
        border = 1.0 - border
    background = float(np.median(border))
    contrast = float(gray.max()) - background
    if contrast < MIN_CONTRAST:
        raise ValueError("the image is blank: draw or upload a digit")
    return np.clip((gray - background) / contrast, 0.0, 1.0)


def _centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(ink.shape)
    total = ink.sum()
    return float((rows * ink).sum() / total), float((cols * ink).sum() / total)


def prepare_array(img, centre: bool = True) -> np.ndarray:
    """28×28 float32 in [0, 1], MNIST-style: ink cropped, scaled to 20 px, centred by mass.

    centre=False skips the centring (the report's "pre-alignment", §2): the scaled ink stays where it was
    in the picture, its box's centre at the same fraction of the height and width of the 28×28 grid;
    ink that would fall outside is cut off.
    """
    ink = ink_map(img)
    height, width = ink.shape
    rows = np.flatnonzero((ink > INK_LEVEL).any(axis=1))
    cols = np.flatnonzero((ink > INK_LEVEL).any(axis=0))
    box_row = (rows[0] + rows[-1] + 1) / 2 / height  # where the ink's box sits, as fractions of the picture
    box_col = (cols[0] + cols[-1] + 1) / 2 / width
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    h, w = ink.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(ink, mode="F").resize((new_w, new_h), Image.LANCZOS))
    resized = np.clip(resized, 0.0, 1.0)
    if resized.sum() == 0:
        raise ValueError("the image is blank after scaling: draw a bigger digit")

    # Paste into a big canvas, then cut a 28×28 window out of it.
    pad = SIZE
    canvas = np.zeros((new_h + 2 * pad, new_w + 2 * pad), dtype=np.float32)
    canvas[pad:pad + new_h, pad:pad + new_w] = resized
    if centre:  # the window whose centre is the ink's centre of mass
        com_r, com_c = _centre_of_mass(canvas)
        # MNIST puts the centre of mass on pixel (14, 14) (its digits average 13.98, 14.01), not at the
        # grid's geometric centre 13.5: aiming there makes an MNIST digit come back unchanged.
        top = int(round(com_r - SIZE / 2))
        left = int(round(com_c - SIZE / 2))
    else:  # the window that puts the ink's box where it was in the picture
        top = int(round(pad + new_h / 2 - box_row * SIZE))
        left = int(round(pad + new_w / 2 - box_col * SIZE))
        top, left = min(max(top, 0), new_h + pad), min(max(left, 0), new_w + pad)
    return canvas[top:top + SIZE, left:left + SIZE].copy()


def prepare_image(img) -> torch.Tensor:
    """Any digit image (PIL or numpy; gray, RGB or RGBA; uint8 or float) → (1, 1, 28, 28) in [0, 1]."""
    import torch  # here: an upload is decoded and prepared (prepare_array) without PyTorch

    return torch.from_numpy(prepare_array(img)).view(1, 1, SIZE, SIZE)
