"""vae.cluster_compare: which model's clusters are tighter, with the test digits' paired spread; hand-made codes."""
import numpy as np
import pytest

from vae.cluster_compare import Difference, compare, describe, knn_correct, paired_se, silhouette_values, verdict
from vae.latent import KNN_K, cluster_scores, knn_accuracy


def blobs(spread: float, n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n // 3)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    return centres[labels] + rng.normal(0, spread, (len(labels), 2)), labels


def test_per_point_scores_average_to_the_cluster_scores():
    z, labels = blobs(1.0)
    # knn_correct against a literal count: each point's k nearest others by distance, the commonest label (ties
    # to the smaller digit)
    distances = np.linalg.norm(z[:, None] - z[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :KNN_K]
    literal = np.array([np.bincount(labels[row], minlength=3).argmax() for row in nearest]) == labels
    assert np.array_equal(knn_correct(z, labels), literal)
    assert knn_accuracy(z, labels) == pytest.approx(literal.mean())
    assert silhouette_values(z, labels).mean() == pytest.approx(cluster_scores(z, labels)["silhouette"])


def test_tighter_clusters_win_both_scores_and_equal_ones_tie():
    z_loose, labels = blobs(1.2)
    z_tight, _ = blobs(0.4, seed=1)
    knn, silhouette = compare(z_loose, z_tight, labels)  # (AE, VAE)
    assert knn.winner == "vae" and silhouette.winner == "vae"
    same = compare(z_loose, z_loose + 1e-9, labels)
    assert all(d.winner is None for d in same)  # no difference at all: a tie


def test_a_gap_within_two_standard_errors_is_a_tie():
    assert Difference("silhouette", 0.100, 0.105, se=0.01).winner is None
    assert Difference("silhouette", 0.100, 0.125, se=0.01).winner == "vae"
    assert Difference("knn_accuracy", 0.813, 0.798, se=0.004).winner == "ae"
    assert paired_se(np.zeros(4), np.ones(4)) == 0.0


def test_the_sentences_say_which_wins_at_which_size_with_both_numbers():
    at_3 = [Difference("knn_accuracy", 0.8134, 0.7984, 0.004), Difference("silhouette", 0.128, 0.0906, 0.004)]
    at_2 = [Difference("knn_accuracy", 0.712, 0.744, 0.005), Difference("silhouette", 0.074, 0.131, 0.007)]
    assert describe(3, at_3) == ("**Latent 3**: the AE wins k-NN accuracy (81.3 vs 79.8 %); "
                                 "the AE wins silhouette (0.128 vs 0.091).")
    text = verdict({2: at_2, 3: at_3})
    assert "at latent 2 the VAE's clusters come out tighter on both scores, as the report says" in text
    assert "at latent 3 the AE's do, unlike the report" in text
    tie = [Difference("knn_accuracy", 0.80, 0.801, 0.004), Difference("silhouette", 0.1, 0.2, 0.01)]
    assert "a tie on k-NN accuracy (AE 80.0 %, VAE 80.1 %" in describe(2, tie)
    assert "at latent 2 the two scores disagree or tie" in verdict({2: tie})
