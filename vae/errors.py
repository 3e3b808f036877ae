"""Reconstruction error as an anomaly score (report §4.3, Fig. 7), and the thresholds on it.

The score of an image is the sum over its 784 pixels of the squared difference between the image
and the model's deterministic reconstruction (pixels in [0, 1]).
"""
from __future__ import annotations

import numpy as np
import torch

from .data import to_float

THRESHOLD_RULES = {
    "percentile": "training percentile",
    "mean_k_sigma": "mean + k·σ of training",
    "max": "training maximum",
}
DEFAULT_RULE = ("percentile", 99.0)


@torch.no_grad()
def reconstruction_errors(model, x: torch.Tensor) -> torch.Tensor:
    """x (N, 1, 28, 28) float in [0, 1] → (N,) sum of squared pixel differences."""
    model.eval()
    return (model.reconstruct(x) - x).pow(2).flatten(1).sum(1)


@torch.no_grad()
def dataset_errors(model, images: torch.Tensor, batch_size: int = 5000) -> np.ndarray:
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
