"""What the model corrects in one digit (report Fig. 6 and Fig. 8): the signed difference between
input and reconstruction, the spots where it is large, and the anomaly verdict.

Images here are 28×28 float arrays in [0, 1], light ink on black, as `vae.prepare_array` returns.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from .scores import squared_error

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


def skipped_specks(diff: np.ndarray, level: float = DEFAULT_LEVEL, min_area: int = MIN_REGION_AREA) -> int:
    """How many spots `corrected_regions` leaves out for being under `min_area` pixels, so the page can
    say that they exist (salt-and-pepper noise gives dozens of one-pixel specks that are not circled)."""
    labels, count = ndimage.label(np.abs(np.asarray(diff, dtype=np.float32)) > level, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # [0] is the background
    return int((areas < min_area).sum())


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
    score = float(squared_error(recon, x)[0])  # the histograms' score, without reconstructing again
    recon = recon[0, 0].numpy()
    return Correction(image28, recon, difference_map(image28, recon), score)


def verdict(score: float, limit: float) -> str:
    """'anomaly' above the threshold, else 'normal' (the same '>' as `scores.fraction_above`)."""
    return "anomaly" if score > limit else "normal"


# --- one result as a row of a table or a CSV file ---------------------------------------------------

RESULT_FIELDS = ("model", "input", "score", "percentile", "threshold", "verdict", "spots")


def result_csv(rows: list[dict]) -> str:
    """CSV text (header line, then one line per row) of results with the keys RESULT_FIELDS;
    the score and threshold with 2 decimals, the percentile as a percentage with one."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, RESULT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "score": f"{row['score']:.2f}", "threshold": f"{row['threshold']:.2f}",
                         "percentile": f"{row['percentile'] / 100:.1%}"})
    return buffer.getvalue()
