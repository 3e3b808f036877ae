"""Reconstruction error as an anomaly score (report §4.3, Fig. 7), and the thresholds on it.

The score of an image is the sum over its 784 pixels of the squared difference between the image
and the model's deterministic reconstruction (pixels in [0, 1]).
"""
from __future__ import annotations

import numpy as np
import torch

from .data import INFERENCE_CHUNK, to_float

THRESHOLD_RULES = {
    "percentile": "training percentile",
    "mean_k_sigma": "mean + k·σ of training",
    "max": "training maximum",
}
DEFAULT_RULE = ("percentile", 99.0)


def squared_error(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) reconstructions and images → (N,) sum of squared pixel differences: the score."""
    return (reconstruction - x).pow(2).flatten(1).sum(1)


@torch.no_grad()
def reconstruction_errors(model, x: torch.Tensor) -> torch.Tensor:
    """x (N, 1, 28, 28) float in [0, 1] → (N,) anomaly scores under the model."""
    model.eval()
    return squared_error(model.reconstruct(x), x.to(model.device)).cpu()


@torch.no_grad()
def dataset_errors(model, images: torch.Tensor, batch_size: int = INFERENCE_CHUNK) -> np.ndarray:
    """uint8 images (N, 1, 28, 28) → float64 array (N,) of reconstruction errors."""
    out = [reconstruction_errors(model, to_float(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def threshold(train_errors: np.ndarray, rule: str, param: float | None = None) -> float:
    """The anomaly threshold from the training errors: 'percentile' (param p in [0, 100]),
    'mean_k_sigma' (param k), or 'max'."""
    train_errors = np.asarray(train_errors, dtype=np.float64)
    if train_errors.size == 0:
        raise ValueError("no training errors to set a threshold from")
    if rule == "percentile":
        p = 99.0 if param is None else float(param)
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be between 0 and 100, got {p}")
        return float(np.percentile(train_errors, p))
    if rule == "mean_k_sigma":
        k = 3.0 if param is None else float(param)
        return float(train_errors.mean() + k * train_errors.std())
    if rule == "max":
        return float(train_errors.max())
    raise ValueError(f"unknown threshold rule {rule!r}; choose one of {list(THRESHOLD_RULES)}")


def fraction_above(errors: np.ndarray, limit: float) -> float:
    errors = np.asarray(errors)
    return float((errors > limit).mean()) if errors.size else 0.0


def percentile_of(score: float, train_errors: np.ndarray) -> float:
    """Share of training images (in %) whose error is at or below `score`."""
    train_errors = np.asarray(train_errors)
    return float(100.0 * (train_errors <= score).mean()) if train_errors.size else float("nan")


# --- Histograms of train vs test errors (report Fig. 7) -------------------------------------------------

def shared_bins(train_errors: np.ndarray, test_errors: np.ndarray, bins: int = 60,
                low: float | None = None, high: float | None = None) -> np.ndarray:
    """bins+1 edges over both splits (or over [low, high]), so train and test bars line up."""
    both = np.concatenate([np.asarray(train_errors, dtype=np.float64), np.asarray(test_errors, dtype=np.float64)])
    if both.size == 0:
        raise ValueError("no errors to bin")
    low = float(both.min()) if low is None else float(low)
    high = float(both.max()) if high is None else float(high)
    if not high > low:
        high = low + 1.0  # every error equal: one visible bin instead of a zero-width range
    return np.linspace(low, high, bins + 1)


def split_histogram(errors: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts, percent of this split's images) per bin; the last bin includes its right edge.

    Percent is of ALL the split's images, not just those inside the edges, so a zoomed-in tail
    shows how much of each split lies there.
    """
    errors = np.asarray(errors, dtype=np.float64)
    counts, _ = np.histogram(errors, bins=edges)
    percent = 100.0 * counts / errors.size if errors.size else np.zeros(len(counts))
    return counts, percent


def share_of_test_per_bin(train_counts: np.ndarray, test_counts: np.ndarray, min_images: int = 1) -> np.ndarray:
    """Fraction of each bin's images that are test images; NaN for bins with fewer than min_images.

    Compare it with expected_share_of_test: if errors did not depend on the split it would be that
    everywhere (1/7 for MNIST's 60,000 / 10,000).
    """
    train_counts = np.asarray(train_counts, dtype=np.float64)
    test_counts = np.asarray(test_counts, dtype=np.float64)
    total = train_counts + test_counts
    share = np.full(total.shape, np.nan)
    enough = total >= max(min_images, 1)
    share[enough] = test_counts[enough] / total[enough]
    return share


def expected_share_of_test(n_train: int, n_test: int) -> float:
    return n_test / (n_train + n_test) if n_train + n_test else float("nan")


def share_of_test_above(train_errors: np.ndarray, test_errors: np.ndarray, limit: float) -> tuple[float, int]:
    """(fraction of the images above `limit` that are test images, how many images are above it)."""
    n_train = int((np.asarray(train_errors) > limit).sum())
    n_test = int((np.asarray(test_errors) > limit).sum())
    total = n_train + n_test
    return (n_test / total if total else float("nan")), total


def split_by_digits(errors: np.ndarray, labels: np.ndarray, digits) -> tuple[np.ndarray, np.ndarray]:
    """(errors of images whose label is one of `digits`, errors of the others); all and none if digits is None.

    A one-class model's test images fall into the digits it learned and the ones it should flag."""
    errors = np.asarray(errors)
    if digits is None:
        return errors, errors[:0]
    own = np.isin(np.asarray(labels), list(digits))
    return errors[own], errors[~own]


def top_errors(errors: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest errors, largest first."""
    errors = np.asarray(errors)
    n = max(0, min(n, errors.size))
    return np.argsort(errors, kind="stable")[::-1][:n]
