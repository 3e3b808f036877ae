"""What the model corrects in one digit (report Fig. 6 and Fig. 8): the signed difference between
input and reconstruction, the spots where it is large, and the anomaly verdict.

Images here are 28×28 float arrays in [0, 1], light ink on black, as `vae.prepare_array` returns.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from .data import to_float
from .scores import pixel_score

# Chosen on flawed MNIST test digits through a trained 64-dim VAE: at these values a clean digit
# shows about one spot or none (stroke edges shift a little everywhere), while a scratch or blob
# is circled in nearly every case.
MIN_REGION_AREA = 3  # pixels; smaller specks are edge jitter or noise, not corrections
DEFAULT_LEVEL = 0.5  # |difference| above which a pixel counts as corrected


# --- the difference between input and reconstruction -------------------------------------------

def difference_map(input28: np.ndarray, recon28: np.ndarray) -> np.ndarray:
    """Signed float32 recon − input: > 0 where the model added ink, < 0 where it removed ink."""
    input28 = np.asarray(input28, dtype=np.float32)
    recon28 = np.asarray(recon28, dtype=np.float32)
    if input28.shape != recon28.shape:
        raise ValueError(f"input {input28.shape} and reconstruction {recon28.shape} differ in shape")
    return recon28 - input28


# --- the spots the model corrected ---------------------------------------------------------------

@dataclass(frozen=True)
class Spot:
    """One connected spot where |difference| exceeds the level, in 28×28 pixel coordinates
    (pixel (r, c) has its centre at (r, c))."""
    centre: tuple[float, float]  # (row, col)
    radius: float  # a circle about `centre` with this radius covers every pixel of the spot
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right), bottom and right exclusive
    area: int  # pixels
    sign: str  # "added", "removed" or "mixed": what the model did there
    peak: float  # largest |difference| in the spot
    mask: np.ndarray = field(compare=False, repr=False)  # (28, 28) bool: the spot's pixels


def spots_in(diff: np.ndarray, level: float = DEFAULT_LEVEL, min_area: int = MIN_REGION_AREA) -> list[Spot]:
    """Connected spots (8-neighbourhood) of one 28×28 difference map where |diff| > level, largest change
    first. Spots under `min_area` pixels are left out so single noisy pixels are not circled."""
    diff = np.asarray(diff, dtype=np.float32)
    if diff.ndim != 2:
        raise ValueError(f"expected a 2-D difference map, got shape {diff.shape}")
    labels, count = ndimage.label(np.abs(diff) > level, structure=np.ones((3, 3), dtype=bool))
    found = []
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
        found.append(Spot((float(centre_r), float(centre_c)), radius, (int(top), int(left), int(bottom), int(right)),
                          int(rows.size), sign, float(np.abs(values).max()), labels == index))
    return sorted(found, key=lambda spot: (spot.peak, spot.area), reverse=True)


def skipped_specks(diff: np.ndarray, level: float = DEFAULT_LEVEL, min_area: int = MIN_REGION_AREA) -> int:
    """How many spots `spots_in` leaves out for being under `min_area` pixels, so the page can
    say that they exist (salt-and-pepper noise gives dozens of one-pixel specks that are not circled)."""
    labels, count = ndimage.label(np.abs(np.asarray(diff, dtype=np.float32)) > level, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # [0] is the background
    return int((areas < min_area).sum())


# --- spots calibrated not to cry wolf ------------------------------------------------------------
# The encoder's one-pass guess of z misses details of many clean digits, so their plain difference
# has spots too (a quarter of clean test digits at DEFAULT_LEVEL). Fitting z to the image itself with
# an absolute-error loss, which lets a few wrong pixels stay wrong, finds the closest digit the decoder
# can draw: clean digits then differ little, and a flaw stands out as the pixels it could not follow.
# The level is set on training images so that only CALIBRATION_PERCENTILE % of them keep no spot.

PROJECTION_STEPS = 100
PROJECTION_LR = 0.05
CALIBRATION_IMAGES = 1000
CALIBRATION_PERCENTILE = 97.0  # ~3 % of training digits get a circle at the calibrated level


def fit_codes(model, images: np.ndarray, steps: int = PROJECTION_STEPS, on_step=None) -> np.ndarray:
    """(N, 28, 28) float images in [0, 1] → (N, 28, 28): each decoded from the z that best fits it.

    Starts from the encoder's z; minimises Σ|decode(z) − x| (+ ½|z|², the prior, for a VAE) with Adam.
    `on_step(done, steps)`, if given, after each step (a training job reports its progress with it).
    """
    x = torch.from_numpy(np.asarray(images, dtype=np.float32)).view(-1, 1, 28, 28).to(model.device)
    model.eval()
    with torch.no_grad():
        z = model.embed(x)
    z.requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=PROJECTION_LR)
    for step in range(steps):
        loss = (model.decode(z) - x).abs().sum()
        if model.variational:
            loss = loss + 0.5 * z.pow(2).sum()
        # The gradient of z alone: the model is shared by every session (st.cache_resource), so its
        # parameters are neither switched nor given .grad here.
        (z.grad,) = torch.autograd.grad(loss, z)
        optimizer.step()
        if on_step is not None:
            on_step(step + 1, steps)
    with torch.no_grad():
        return model.decode(z)[:, 0].cpu().numpy()



def spot_peaks(diffs: np.ndarray, min_area: int = MIN_REGION_AREA) -> np.ndarray:
    """(N, 28, 28) difference maps → (N,) float: for each, the highest level at which it still has a spot of
    min_area pixels (0 if none at any level).

    That level is one of the map's own |values|, the largest v for which {|diff| ≥ v} holds a spot, so a
    bisection over each map's sorted values finds it exactly; all maps step together, labelled as one stack
    (a calibration reads 1,000 maps: one map at a time took seconds)."""
    magnitude = np.abs(np.asarray(diffs, dtype=np.float32)).reshape(len(diffs), -1)
    values = np.sort(magnitude, axis=1)
    n, size = values.shape
    maps = np.arange(n)

    def has_spot(index: np.ndarray) -> np.ndarray:
        inside = (magnitude >= values[maps, index][:, None]).reshape(n, 28, 28)
        labels, _ = ndimage.label(inside, structure=_WITHIN_EACH_MAP)
        big = np.bincount(labels.ravel()) >= min_area
        big[0] = False  # the background
        return big[labels.reshape(n, -1)].any(axis=1)

    low = (values <= 0).sum(axis=1)  # the smallest non-zero value: {|diff| ≥ it} is {|diff| > 0}
    found = low < size
    found[found] = has_spot(np.minimum(low, size - 1))[found]
    high = np.full(n, size)  # invariant: has_spot(low) where found, and nothing from index high on
    while ((high - low) > 1).any():
        middle = np.minimum((low + high) // 2, size - 1)
        ok = has_spot(middle)
        low, high = np.where(ok, middle, low), np.where(ok, high, middle)
    return np.where(found, values[maps, np.minimum(low, size - 1)], 0.0).astype(np.float64)


_WITHIN_EACH_MAP = np.zeros((3, 3, 3), dtype=bool)
_WITHIN_EACH_MAP[1] = True  # 8-connected within a map, never across maps


def fitted_difference(model, images: np.ndarray, on_step=None) -> np.ndarray:
    """(N, 28, 28) or (28, 28) images in [0, 1] → the same shape: the closest digit the model can draw
    (`fit_codes`; `on_step` as there) − the image. The calibrated spots are read from this map."""
    images = np.asarray(images, dtype=np.float32)
    fitted = fit_codes(model, images.reshape(-1, 28, 28), on_step=on_step)
    return (fitted - images.reshape(-1, 28, 28)).reshape(images.shape)


def calibrate_spot_level(model, train_images: torch.Tensor, n: int = CALIBRATION_IMAGES, seed: int = 0,
                         on_step=None) -> float:
    """The spot level at which CALIBRATION_PERCENTILE % of (a sample of) the training images have no spot;
    `on_step(done, total)` follows the fit's steps (fitted_difference)."""
    rows = np.random.default_rng(seed).choice(len(train_images), min(n, len(train_images)), replace=False)
    images = to_float(train_images[torch.from_numpy(np.sort(rows))]).numpy()[:, 0]
    return float(np.percentile(spot_peaks(fitted_difference(model, images, on_step)), CALIBRATION_PERCENTILE))


def corrected_spots_batch(model, images: np.ndarray, level: float) -> tuple[list[list[Spot]], np.ndarray]:
    """(N, 28, 28) images → (spots of each, the (N, 28, 28) differences projection − image)."""
    differences = fitted_difference(model, np.asarray(images, dtype=np.float32).reshape(-1, 28, 28))
    return [spots_in(d, level) for d in differences], differences


def corrected_spots(model, image, level: float | None = None) -> list[Spot]:
    """The spots where the model corrects a (1, 28, 28) or (28, 28) image in [0, 1] (array or tensor).

    `level` defaults to the model's calibrated one: `model.spot_level`, which load_checkpoint reads from the
    checkpoint (every model trained by this project stores it; see calibrate_spot_level)."""
    image = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float32)
    if image.shape not in ((28, 28), (1, 28, 28)):
        raise ValueError(f"expected a (1, 28, 28) or (28, 28) image, got shape {image.shape}")
    level = getattr(model, "spot_level", None) if level is None else level
    if level is None:
        raise ValueError("this model has no calibrated spot level: pass level=, or set model.spot_level = "
                         "calibrate_spot_level(model, train_images)")
    return corrected_spots_batch(model, image.reshape(1, 28, 28), level)[0][0]


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
    recon = model.reconstruct(x).cpu()
    score = float(pixel_score(recon, x)[0])  # the histograms' score, without reconstructing again
    recon = recon[0, 0].numpy()
    return Correction(image28, recon, difference_map(image28, recon), score)


def verdict(score: float, limit: float) -> str:
    """'anomaly' above the threshold, else 'normal' (the same '>' as `scores.fraction_above`)."""
    return "anomaly" if score > limit else "normal"


# --- one result as a row of a table or a CSV file ---------------------------------------------------

RESULT_FIELDS = ("model", "input", "score", "percentile", "threshold", "verdict", "spots", "spot_level")


def result_csv(rows: list[dict]) -> str:
    """CSV text (header line, then one line per row) of results with the keys RESULT_FIELDS;
    the score and threshold with 2 decimals, the percentile as a percentage with one."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RESULT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "score": f"{row['score']:.2f}", "threshold": f"{row['threshold']:.2f}",
                         "percentile": f"{row['percentile'] / 100:.1%}", "spot_level": f"{row['spot_level']:.3f}"})
    return buffer.getvalue()
