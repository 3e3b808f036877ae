"""Which model's digit clusters are tighter, AE or VAE (report Fig. 4/5), with how sure the numbers allow.

Each kind and latent size has one trained model, so the spread over training seeds is not measured here. What
is measured cheaply is the spread from the test digits themselves: the paired standard error of the k-NN
accuracy difference (each test digit classified right or wrong by both models) and of the silhouette
difference (per-digit silhouette values on the same seeded sample). A difference under TIE_SE standard errors
is called a tie.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .latent import SILHOUETTE_SAMPLE, knn_correct

TIE_SE = 2.0  # a difference smaller than this many standard errors is a tie


def silhouette_values(z: np.ndarray, labels: np.ndarray, sample: int = SILHOUETTE_SAMPLE, seed: int = 0) -> np.ndarray:
    """Per-point silhouette values of the seeded sample vae.latent.cluster_scores averages (the same rows)."""
    from sklearn.metrics import silhouette_samples

    z, labels = np.asarray(z, dtype=np.float64), np.asarray(labels)
    rows = np.random.RandomState(seed).permutation(len(z))[:min(sample, len(z))]  # sklearn's own sampling
    return silhouette_samples(z[rows], labels[rows])


@dataclass(frozen=True)
class Difference:
    score: str  # "knn_accuracy" or "silhouette"
    ae: float
    vae: float
    se: float  # paired standard error of vae − ae

    @property
    def winner(self) -> str | None:
        """'ae', 'vae', or None for a tie (|difference| < TIE_SE standard errors)."""
        gap = self.vae - self.ae
        if abs(gap) < TIE_SE * self.se or gap == 0:
            return None
        return "vae" if gap > 0 else "ae"


def paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of mean(b) − mean(a) for values paired point by point."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")


def compare(ae_z: np.ndarray, vae_z: np.ndarray, labels: np.ndarray) -> list[Difference]:
    """k-NN accuracy and silhouette of the AE's and the VAE's codes of the same test digits, with their spread."""
    ae_right, vae_right = knn_correct(ae_z, labels), knn_correct(vae_z, labels)
    ae_sil, vae_sil = silhouette_values(ae_z, labels), silhouette_values(vae_z, labels)
    return [Difference("knn_accuracy", float(ae_right.mean()), float(vae_right.mean()), paired_se(ae_right, vae_right)),
            Difference("silhouette", float(ae_sil.mean()), float(vae_sil.mean()), paired_se(ae_sil, vae_sil))]


def _value(score: str, value: float) -> str:
    return f"{100 * value:.1f}" if score == "knn_accuracy" else f"{value:.3f}"


def describe(latent: int, differences: list[Difference]) -> str:
    """'Latent 3: the AE wins k-NN accuracy (81.3 vs 79.8 %) and silhouette (0.128 vs 0.091).' — a tie is named so."""
    names = {"knn_accuracy": "k-NN accuracy", "silhouette": "silhouette"}
    parts = []
    for d in differences:
        a, v = _value(d.score, d.ae), _value(d.score, d.vae)
        unit = " %" if d.score == "knn_accuracy" else ""
        if d.winner is None:
            parts.append(f"a tie on {names[d.score]} (AE {a}{unit}, VAE {v}{unit}: within {TIE_SE:g} standard errors)")
        else:
            win, lose = (v, a) if d.winner == "vae" else (a, v)
            parts.append(f"the {d.winner.upper()} wins {names[d.score]} ({win} vs {lose}{unit})")
    return f"**Latent {latent}**: " + "; ".join(parts) + "."


def verdict(by_latent: dict[int, list[Difference]]) -> str:
    """One sentence on whether these checkpoints agree with the report's 'the VAE's clusters are tighter'."""
    agree = [latent for latent, diffs in by_latent.items() if all(d.winner == "vae" for d in diffs)]
    against = [latent for latent, diffs in by_latent.items() if all(d.winner == "ae" for d in diffs)]
    mixed = [latent for latent in by_latent if latent not in agree and latent not in against]

    def sizes(latents):
        return " and ".join(f"latent {latent}" for latent in latents)

    parts = []
    if agree:
        parts.append(f"at {sizes(agree)} the VAE's clusters come out tighter on both scores, as the report says")
    if against:
        parts.append(f"at {sizes(against)} the AE's do, unlike the report")
    if mixed:
        parts.append(f"at {sizes(mixed)} the two scores disagree or tie")
    return ("The report finds the VAE's clusters tighter. On these checkpoints " + "; ".join(parts) + ".") if parts else ""
