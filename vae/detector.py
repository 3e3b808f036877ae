"""An anomaly detector fitted on a model's training images, in PyOD's shape: fit, then decision_function.

Besides the per-image scores of vae/scores.py it knows where the training images' codes lie, so it can
score how far an image's code is from them ("latent_knn"), and add that to a pixel score ("combined"),
each term in units of its own spread over the training images.

"guarded" also learns what a digit is not (Outlier Exposure: Hendrycks, Mazeika & Dietterich, ICLR 2019):
a small neural network (one hidden layer of 64; it beat a logistic regression in a 2-fold split of the
development set: letters 94 vs 82 % flagged) tells training digits from the project's own development non-digits
(vae/nondigits.py, DEVELOPMENT_SEED: letters, shapes, scribbles, noise, scikit-learn digits) on the
image's code, its posterior σ and its log scores. Its score is the larger of two training percentiles, that
of "combined" and that of the network's log-odds, both read on training digits held out of every fit; so a kind of
input the regression never saw is still caught as well as "combined" catches it.
"""
from __future__ import annotations

import numpy as np
import torch

from .data import to_float
from .latent import embed_dataset
from .scores import SCORES, dataset_scores

DETECTOR_SCORES = {
    **SCORES,
    "latent_knn": "mean distance of the posterior mean to its 5 nearest training codes",
    "combined": "blurred squared error + latent kNN distance, each standardised on the training images",
    "guarded": "the larger training percentile of 'combined' and of a small network that learned the project's "
               "own non-digits (letters, shapes, scribbles, noise) from the training digits",
}
# The verdict's score on the pages unless the visitor picks another: the one that flags the most letters and
# shapes of the development non-digits (vae/nondigits.py, DEVELOPMENT_SEED) at the 99th training percentile
# while a held-out half of them was not learned (README, "How well it detects").
DEFAULT_VERDICT_SCORE = "guarded"
REFERENCE_IMAGES = 5000  # "guarded": training digits held out of every fit, to read percentiles on
REGRESSION_IMAGES = 5000  # "guarded": training digits the regression sees (its other class: the non-digits)
NONDIGITS_PER_KIND = 300
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
        # Scores of training digits, each scored as an unseen image would be: what a threshold is set on.
        self.reference_scores: np.ndarray | None = None

    def fit(self, train_images: torch.Tensor, nondigit_images: np.ndarray | None = None) -> Detector:
        """uint8 training images (N, 1, 28, 28): the images the model learned from. "guarded" also learns
        from `nondigit_images` (M, 28, 28) floats in [0, 1]; default: vae.nondigits' development set."""
        if len(train_images) <= NEIGHBOURS:
            raise ValueError(f"fitting needs more than {NEIGHBOURS} training images, got {len(train_images)}")
        if self.score == "guarded":
            return self._fit_guarded(train_images, nondigit_images)
        if self.score in SCORES:
            self.reference_scores = dataset_scores(self.model, train_images, self.score)
            return self
        if self.score in ("latent_knn", "combined"):
            from sklearn.neighbors import NearestNeighbors  # here: ~2 s to import, and the CLI imports this module

            codes = embed_dataset(self.model, train_images)
            self.neighbours = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(codes)
            # Each training code's nearest neighbour is itself: leave it out, as for an unseen image.
            distances = self.neighbours.kneighbors(codes)[0][:, 1:].mean(1)
            self.scale["latent_knn"] = (float(distances.mean()), float(distances.std()) or 1.0)
            self.reference_scores = distances.astype(np.float64)
        if self.score == "combined":
            pixel = dataset_scores(self.model, train_images, PIXEL_TERM)
            self.scale[PIXEL_TERM] = (float(pixel.mean()), float(pixel.std()) or 1.0)
            self.reference_scores = self._standard(PIXEL_TERM, pixel) + self._standard("latent_knn", distances)
        return self

    def decision_function(self, images: torch.Tensor) -> np.ndarray:
        """uint8 images (N, 1, 28, 28) → (N,) scores."""
        if self.score in SCORES:
            return dataset_scores(self.model, images, self.score)
        if self.neighbours is None:
            raise RuntimeError("call fit(train_images) before decision_function")
        if self.score == "guarded":
            combined, features = self._terms(images)
            return self._guarded(combined, features)
        knn = self.neighbours.kneighbors(embed_dataset(self.model, images), n_neighbors=NEIGHBOURS)[0].mean(1)
        if self.score == "latent_knn":
            return knn.astype(np.float64)
        pixel = dataset_scores(self.model, images, PIXEL_TERM)
        return self._standard(PIXEL_TERM, pixel) + self._standard("latent_knn", knn)

    def _standard(self, term: str, values: np.ndarray) -> np.ndarray:
        mean, sd = self.scale[term]
        return (np.asarray(values, dtype=np.float64) - mean) / sd

    # --- "guarded" ---------------------------------------------------------------------------------

    def _fit_guarded(self, train_images: torch.Tensor, nondigit_images: np.ndarray | None) -> Detector:
        from sklearn.neural_network import MLPClassifier
        from sklearn.preprocessing import StandardScaler

        if nondigit_images is None:
            from .nondigits import DEVELOPMENT_SEED, nondigit_set

            nondigit_images = np.concatenate(list(nondigit_set(NONDIGITS_PER_KIND, DEVELOPMENT_SEED).values()))
        nondigits = torch.from_numpy(np.round(np.asarray(nondigit_images, np.float32) * 255).astype(np.uint8)[:, None])
        reference, rest = guarded_split(len(train_images))
        self._index_codes(train_images, rest)
        seen = torch.from_numpy(rest[:REGRESSION_IMAGES])
        seen_combined, seen_features = self._terms(train_images[seen], own=True)
        reference_combined, reference_features = self._terms(train_images[torch.from_numpy(reference)])
        _, nondigit_features = self._terms(nondigits)
        repeats = max(1, len(seen_features) // len(nondigit_features))  # both classes about equally heavy
        x = np.r_[seen_features, np.repeat(nondigit_features, repeats, axis=0)]
        y = np.r_[np.zeros(len(seen_features)), np.ones(len(nondigit_features) * repeats)]
        scaler = StandardScaler().fit(x)
        network = MLPClassifier((64,), alpha=1e-2, max_iter=500, random_state=0).fit(scaler.transform(x), y)
        # Kept as plain arrays, scored with numpy (_log_odds): what state() ships and from_state() reads back.
        self.network = {"scaler_mean": scaler.mean_, "scaler_scale": scaler.scale_,
                        "hidden_weights": network.coefs_[0], "hidden_bias": network.intercepts_[0],
                        "output_weights": network.coefs_[1], "output_bias": network.intercepts_[1]}
        self.reference = {"combined": np.sort(reference_combined), "regression": np.sort(self._log_odds(reference_features))}
        self.reference_scores = self._guarded(reference_combined, reference_features)
        self.training_images = (len(train_images), images_sha256(train_images))
        return self

    def _index_codes(self, train_images: torch.Tensor, rest: np.ndarray) -> None:
        from sklearn.neighbors import NearestNeighbors

        if len(rest) <= NEIGHBOURS:
            raise ValueError(f"fitting 'guarded' needs more than {5 * (NEIGHBOURS + 1)} training images")
        self.neighbours = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(embed_dataset(self.model, train_images[rest]))

    def state(self) -> dict[str, np.ndarray]:
        """A fitted "guarded" detector as plain arrays (np.savez-able, no pickle). The kNN index's codes are not
        in it (55,000 × latent: too big to ship): from_state() embeds the same training rows again."""
        if self.score != "guarded" or self.neighbours is None:
            raise ValueError("only a fitted 'guarded' detector has a state")
        count, digest = self.training_images
        return {**{name: np.asarray(value, np.float64) for name, value in self.network.items()},
                "scale": np.array([*self.scale["latent_knn"], *self.scale[PIXEL_TERM]], np.float64),
                "reference_combined": self.reference["combined"], "reference_regression": self.reference["regression"],
                "reference_scores": self.reference_scores, "training_images": np.array(count),
                "training_images_sha256": np.array(digest)}

    @classmethod
    def from_state(cls, model, score: str, state: dict[str, np.ndarray], train_images: torch.Tensor) -> Detector:
        """The detector state() described, for the same model and the same uint8 training images; ValueError if
        `train_images` are not the ones it was fitted on (the caller then fits afresh)."""
        if score != "guarded":
            raise ValueError(f"only 'guarded' has a stored state, not {score!r}")
        if int(state["training_images"]) != len(train_images) or str(state["training_images_sha256"]) != images_sha256(
                train_images):
            raise ValueError("the stored 'guarded' state was fitted on other training images")
        detector = cls(model, score)
        knn_mean, knn_sd, pixel_mean, pixel_sd = map(float, state["scale"])
        detector.scale = {"latent_knn": (knn_mean, knn_sd), PIXEL_TERM: (pixel_mean, pixel_sd)}
        detector.network = {name: np.asarray(state[name], np.float64) for name in NETWORK_ARRAYS}
        detector.reference = {"combined": np.asarray(state["reference_combined"], np.float64),
                              "regression": np.asarray(state["reference_regression"], np.float64)}
        detector.reference_scores = np.asarray(state["reference_scores"], np.float64)
        detector.training_images = (len(train_images), str(state["training_images_sha256"]))
        detector._index_codes(train_images, guarded_split(len(train_images))[1])
        return detector

    def _terms(self, images: torch.Tensor, own: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(combined score, regression features) of uint8 images; `own`: images of the kNN index itself."""
        codes = embed_dataset(self.model, images)
        found = self.neighbours.kneighbors(codes, n_neighbors=NEIGHBOURS + own)[0]
        knn = found[:, 1:].mean(1) if own else found.mean(1)
        pixel = dataset_scores(self.model, images, PIXEL_TERM)
        if "latent_knn" not in self.scale:  # the first call: the training digits the regression sees
            self.scale = {"latent_knn": (float(knn.mean()), float(knn.std()) or 1.0),
                          PIXEL_TERM: (float(pixel.mean()), float(pixel.std()) or 1.0)}
        logs = [pixel, knn, dataset_scores(self.model, images, "squared_error"), dataset_scores(self.model, images, "bce")]
        parts = [codes]
        if self.model.kind == "vae":
            logs.append(dataset_scores(self.model, images, "kl"))
            parts.append(np.log(posterior_sd(self.model, images)))
        parts.append(np.log(np.stack(logs, 1) + 1e-3))
        combined = self._standard(PIXEL_TERM, pixel) + self._standard("latent_knn", knn)
        return combined, np.concatenate(parts, 1).astype(np.float64)

    def _guarded(self, combined: np.ndarray, features: np.ndarray) -> np.ndarray:
        regression = self._log_odds(features)
        return 100.0 * np.maximum(_share_at_or_below(self.reference["combined"], combined),
                                  _share_at_or_below(self.reference["regression"], regression))

    def _log_odds(self, features: np.ndarray) -> np.ndarray:
        """The network's log-odds of "not a digit", as MLPClassifier.predict_proba computes it (scaled inputs,
        relu hidden layer, logistic output)."""
        from scipy.special import expit

        w = self.network
        hidden = np.maximum((features - w["scaler_mean"]) / w["scaler_scale"] @ w["hidden_weights"] + w["hidden_bias"], 0)
        p = expit(hidden @ w["output_weights"] + w["output_bias"]).ravel()
        return np.log(p + 1e-12) - np.log1p(-p + 1e-12)


NETWORK_ARRAYS = ("scaler_mean", "scaler_scale", "hidden_weights", "hidden_bias", "output_weights", "output_bias")


def guarded_split(count: int) -> tuple[np.ndarray, np.ndarray]:
    """"guarded"'s fixed split of `count` training rows: (reference rows, held out of every fit; the rest, the
    kNN index and the regression's digits), both sorted. The same for the same count, so a stored state's
    index can be rebuilt."""
    rows = np.random.default_rng(0).permutation(count)
    n_reference = min(REFERENCE_IMAGES, count // 5)
    return np.sort(rows[:n_reference]), np.sort(rows[n_reference:])


def images_sha256(images: torch.Tensor) -> str:
    """What identifies a set of uint8 training images (a state is only for the very ones it was fitted on)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(images.numpy()).tobytes()).hexdigest()


def _share_at_or_below(sorted_reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_reference, values, side="right") / len(sorted_reference)


@torch.no_grad()
def posterior_sd(model, uint8_images: torch.Tensor, batch_size: int = 2000) -> np.ndarray:
    """(N, latent) σ of a VAE's posterior for uint8 images."""
    model.eval()
    parts = [model.posterior(to_float(uint8_images[i:i + batch_size])).stddev.cpu()
             for i in range(0, len(uint8_images), batch_size)]
    return torch.cat(parts).numpy().astype(np.float64)


def verdict_scores(model) -> list[str]:
    """The scores a page offers for this model's verdict, the default first."""
    others = [s for s in DETECTOR_SCORES if s != DEFAULT_VERDICT_SCORE and not (s == "kl" and model.kind != "vae")]
    return [DEFAULT_VERDICT_SCORE, *others]


def score_uint8(detector: Detector, image28: np.ndarray) -> float:
    """One prepared 28×28 float image in [0, 1] → its score under a fitted detector, quantised as MNIST's are."""
    image = np.round(np.clip(np.asarray(image28, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
    return float(detector.decision_function(torch.from_numpy(image).view(1, 1, 28, 28))[0])
