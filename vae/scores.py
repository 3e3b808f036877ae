"""Anomaly scores (report §4.3, Fig. 7), and the thresholds on them.

An image's score says how badly the model reconstructs it. The report's is the squared error: the sum
over its 784 pixels of the squared difference between the image and the model's deterministic
reconstruction (pixels in [0, 1]). The default here blurs that difference first (σ = 1 px), which
`python -m vae benchmark` measured better on every task (README, "How well it detects"). `anomaly_score`
offers the others it compares; scores needing the training images' codes live in vae/detector.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from .data import INFERENCE_CHUNK, to_float

SCORES = {
    "squared_error": "squared error: Σ (x − x̂)² over the pixels (the report's)",
    "blurred_error": "blurred squared error: Σ (blur(x − x̂))², blur a Gaussian of σ = 1 px; a stroke drawn one pixel "
                     "off gives + and − side by side, which cancel, while missing or extra ink stays",
    "absolute_error": "absolute error: Σ |x − x̂|",
    "bce": "binary cross-entropy of x under the decoded pixel probabilities (nats)",
    "neg_elbo": "negative ELBO: cross-entropy + KL of the posterior to N(0, 1) (VAE; the AE's is its cross-entropy)",
    "kl": "KL of the posterior q(z | x) to the prior N(0, 1): a latent-space score (VAE only)",
}
# The measured best of these per-image scores over the report's squared error, one-class, on other digits and on
# most flaws: README's "How well it detects" and checkpoints/benchmark/*.json hold the numbers.
DEFAULT_SCORE = "blurred_error"
BLUR_SIGMA = 1.0  # px


THRESHOLD_RULES = {
    "percentile": "training percentile",
    "mean_k_sigma": "mean + k·σ of training",
    "max": "training maximum",
}
DEFAULT_RULE = ("percentile", 99.0)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = int(3 * sigma + 0.5)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    return taps / taps.sum()


def blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """(N, 1, H, W) → the same, smoothed by a Gaussian of `sigma` px (zero outside the image)."""
    taps = _gaussian_kernel(sigma).to(images)
    pad = len(taps) // 2
    images = F.conv2d(images, taps.view(1, 1, 1, -1), padding=(0, pad))
    return F.conv2d(images, taps.view(1, 1, -1, 1), padding=(pad, 0))


@torch.no_grad()
def anomaly_score(model, x: torch.Tensor, score: str = "default") -> torch.Tensor:
    """x (N, 1, 28, 28) or (N, 28, 28), float in [0, 1] (or uint8) → (N,) scores on the CPU; higher = more anomalous.

    `score` is one of SCORES, or "default" (DEFAULT_SCORE). The VAE reconstructs from its posterior mean.
    """
    score = DEFAULT_SCORE if score == "default" else score
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {', '.join(SCORES)} or 'default'")
    if score == "kl" and not model.variational:
        raise ValueError("the 'kl' score needs a VAE: an AE has no posterior")
    x = to_float(x) if x.dtype == torch.uint8 else x
    x = (x.unsqueeze(1) if x.dim() == 3 else x).to(model.device, torch.float32)
    model.eval()
    posterior = model.posterior(x) if model.variational else None
    z = posterior.mean if posterior is not None else model.embed(x)
    if score == "kl":
        return _kl_to_prior(posterior).cpu()
    logits = model.decoder(z)
    if score in ("bce", "neg_elbo"):
        nats = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        if score == "neg_elbo" and posterior is not None:
            nats = nats + _kl_to_prior(posterior)
        return nats.cpu()
    return pixel_score(torch.sigmoid(logits), x, score).cpu()


PIXEL_SCORES = ("squared_error", "blurred_error", "absolute_error")  # from the reconstruction alone


def pixel_score(reconstruction: torch.Tensor, x: torch.Tensor, score: str = "default") -> torch.Tensor:
    """(N, 1, 28, 28) reconstructions and images → (N,) scores, for the scores of PIXEL_SCORES."""
    score = DEFAULT_SCORE if score == "default" else score
    if score not in PIXEL_SCORES:
        raise ValueError(f"{score!r} is not one of the pixel scores {', '.join(PIXEL_SCORES)}")
    difference = reconstruction - x
    if score == "blurred_error":
        difference = blur(difference)
    per_pixel = difference.abs() if score == "absolute_error" else difference.pow(2)
    return per_pixel.flatten(1).sum(1)


def _kl_to_prior(posterior: Normal) -> torch.Tensor:
    prior = Normal(torch.zeros_like(posterior.mean), torch.ones_like(posterior.stddev))
    return kl_divergence(posterior, prior).sum(1)


def dataset_scores(model, images: torch.Tensor, score: str = "default", batch_size: int = INFERENCE_CHUNK) -> np.ndarray:
    """uint8 images (N, 1, 28, 28) → float64 array (N,) of anomaly scores, computed in chunks."""
    out = [anomaly_score(model, images[i:i + batch_size], score) for i in range(0, len(images), batch_size)]
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


# --- Words and counts at a threshold ------------------------------------------------------------------

def compared_numbers(score: float, limit: float, digits: int = 1, most_digits: int = 6) -> tuple[str, str, str]:
    """(score, '>' or '≤', threshold) as text, with as many decimals (from `digits` up to `most_digits`) as it takes
    for two different numbers to read differently, so the sign shown is true of the numbers shown: 3.74 and 3.66
    read '3.7' at one decimal, and come back as ('3.74', '>', '3.66')."""
    sign = ">" if score > limit else "≤"
    for places in range(digits, most_digits + 1):
        a, b = f"{score:.{places}f}", f"{limit:.{places}f}"
        if a != b or score == limit:
            break
    return a, sign, b


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold: normal images (negatives) against anomalous ones (positives); '>' flags."""
    true_positives: int  # anomalies flagged
    false_negatives: int  # anomalies missed
    false_positives: int  # normal images flagged (false alarms)
    true_negatives: int  # normal images passed

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else float("nan")

    @property
    def recall(self) -> float:
        anomalies = self.true_positives + self.false_negatives
        return self.true_positives / anomalies if anomalies else float("nan")

    @property
    def false_alarm_rate(self) -> float:
        normal = self.false_positives + self.true_negatives
        return self.false_positives / normal if normal else float("nan")


def confusion_at(normal_scores: np.ndarray, anomaly_scores: np.ndarray, limit: float) -> Confusion:
    """The confusion matrix of the rule 'score > limit is an anomaly' on normal and anomalous images."""
    normal, anomalous = np.asarray(normal_scores, dtype=np.float64), np.asarray(anomaly_scores, dtype=np.float64)
    flagged_normal, flagged_anomalous = int((normal > limit).sum()), int((anomalous > limit).sum())
    return Confusion(flagged_anomalous, anomalous.size - flagged_anomalous, flagged_normal, normal.size - flagged_normal)


def clicked_threshold(event, low: float, high: float) -> float | None:
    """The x a visitor clicked or selected on a histogram (a st.plotly_chart selection event) as a threshold in
    [low, high]: a clicked bar's x, or a dragged box's left edge (what lies to its right is flagged). None for
    an empty or malformed event: it comes from the browser, so anything not a finite number is ignored."""
    selection = event.get("selection") if isinstance(event, dict) else None
    if not isinstance(selection, dict):
        return None
    boxes, points = selection.get("box"), selection.get("points")
    xs = []
    for box in boxes if isinstance(boxes, list) else []:
        x = box.get("x") if isinstance(box, dict) else None
        finite = [v for v in x if _finite(v)] if isinstance(x, list) else []
        if finite:
            xs.append(min(finite))
    for point in points if isinstance(points, list) else []:
        if isinstance(point, dict):
            xs.append(point.get("x"))
    xs = [float(x) for x in xs if _finite(x)]
    if not xs:
        return None
    return float(np.clip(xs[0], low, high))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
