"""An anomaly detector fitted on a model's training images, in PyOD's shape: fit, then decision_function.

Besides the per-image scores of vae/scores.py it knows where the training images' codes lie, so it can
score how far an image's code is from them ("latent_knn"), and add that to a pixel score ("combined"),
each term in units of its own spread over the training images.
"""
from __future__ import annotations

import numpy as np
import torch

from .latent import embed_dataset
from .scores import SCORES, dataset_scores

DETECTOR_SCORES = {
    **SCORES,
    "latent_knn": "mean distance of the posterior mean to its 5 nearest training codes",
    "combined": "blurred squared error + latent kNN distance, each standardised on the training images",
}
NEIGHBOURS = 5
PIXEL_TERM = "blurred_error"  # the pixel half of "combined"


class Detector:
    """`Detector(model, score).fit(train_images).decision_function(images)` → (N,) float64, higher = more anomalous."""

    def __init__(self, model, score: str = "combined"):
        if score not in DETECTOR_SCORES:
            raise ValueError(f"unknown score {score!r}; choose one of {', '.join(DETECTOR_SCORES)}")
        self.model, self.score = model, score
        self.neighbours = None  # a fitted sklearn NearestNeighbors
        self.scale: dict[str, tuple[float, float]] = {}  # term → (mean, sd) over the training images

    def fit(self, train_images: torch.Tensor) -> Detector:
        """uint8 training images (N, 1, 28, 28): the images the model learned from."""
        if len(train_images) <= NEIGHBOURS:
            raise ValueError(f"fitting needs more than {NEIGHBOURS} training images, got {len(train_images)}")
        if self.score in ("latent_knn", "combined"):
            from sklearn.neighbors import NearestNeighbors  # here: ~2 s to import, and the CLI imports this module

            codes = embed_dataset(self.model, train_images)
            self.neighbours = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(codes)
            # Each training code's nearest neighbour is itself: leave it out, as for an unseen image.
            distances = self.neighbours.kneighbors(codes)[0][:, 1:].mean(1)
            self.scale["latent_knn"] = (float(distances.mean()), float(distances.std()) or 1.0)
        if self.score == "combined":
            pixel = dataset_scores(self.model, train_images, PIXEL_TERM)
            self.scale[PIXEL_TERM] = (float(pixel.mean()), float(pixel.std()) or 1.0)
        return self

    def decision_function(self, images: torch.Tensor) -> np.ndarray:
        """uint8 images (N, 1, 28, 28) → (N,) scores."""
        if self.score in SCORES:
            return dataset_scores(self.model, images, self.score)
        if self.neighbours is None:
            raise RuntimeError("call fit(train_images) before decision_function")
        knn = self.neighbours.kneighbors(embed_dataset(self.model, images), n_neighbors=NEIGHBOURS)[0].mean(1)
        if self.score == "latent_knn":
            return knn.astype(np.float64)
        pixel = dataset_scores(self.model, images, PIXEL_TERM)
        return self._standard(PIXEL_TERM, pixel) + self._standard("latent_knn", knn)

    def _standard(self, term: str, values: np.ndarray) -> np.ndarray:
        mean, sd = self.scale[term]
        return (np.asarray(values, dtype=np.float64) - mean) / sd
