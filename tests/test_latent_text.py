"""studio.latent_text: the sentence comparing cluster scores, rows picked in a Plotly chart, the sample of them
shown and their summary, and the pair of models compared."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from studio.latent_text import (
    compare_cluster_scores,
    default_pair,
    digit_counts,
    hover_points,
    models_of_size,
    sample_selection,
    selection_summary,
    selection_to_rows,
)


def test_compare_cluster_scores_says_what_the_numbers_show():
    ae = {"knn_accuracy": 0.80, "silhouette": 0.10, "size_ratio": 2.0}
    tighter = {"knn_accuracy": 0.90, "silhouette": 0.30, "size_ratio": 1.2}
    looser = {"knn_accuracy": 0.70, "silhouette": 0.05, "size_ratio": 3.0}
    assert "VAE's clusters are tighter, as the report says" in compare_cluster_scores(ae, tighter)
    assert "silhouette (0.300 vs 0.100)" in compare_cluster_scores(ae, tighter)
    sentence = compare_cluster_scores(ae, looser)
    assert "AE's clusters are tighter, unlike the report" in sentence and "size ratio (2.00 vs 3.00)" in sentence
    assert "k-NN accuracy (80.0% vs 70.0%)" in sentence  # as the table shows it
    assert "mixed" in compare_cluster_scores(ae, {**tighter, "silhouette": 0.0})
    assert compare_cluster_scores(ae, ae) == "The AE and the VAE score the same."
    # Compared as shown: 0.0912 and 0.0914 both read 0.091, a tie, not a win for either.
    nearly = {"knn_accuracy": 0.80004, "silhouette": 0.0914, "size_ratio": 2.001}
    assert compare_cluster_scores({**ae, "silhouette": 0.0912}, nearly) == "The AE and the VAE score the same."


def test_selection_maps_customdata_of_per_digit_traces_to_dataset_rows():
    # Two traces (digits 3 and 7): point_index restarts at 0 in each, customdata holds the row.
    event = {"selection": {
        "points": [
            {"curve_number": 0, "point_index": 0, "point_number": 0, "x": 1.0, "y": 2.0, "customdata": 42},
            {"curve_number": 1, "point_index": 0, "point_number": 0, "x": 3.0, "y": 1.0, "customdata": [917, 7]},
            {"curve_number": 1, "point_index": 5, "x": 3.0, "y": 1.0, "customdata": [42, 3]},  # repeat
        ],
        "point_indices": [0, 0, 5], "box": [], "lasso": [],
    }}
    assert selection_to_rows(event) == [42, 917]


def test_selection_falls_back_to_trace_rows_and_skips_points_without_a_row():
    trace_rows = [[10, 11, 12], [20, 21]]
    event = {"selection": {"points": [
        {"curve_number": 1, "point_index": 1},
        {"curve_number": 0, "point_index": 2},
        {"curve_number": 2, "point_index": 0},  # e.g. the "your digit" marker: no row
    ]}}
    assert selection_to_rows(event, trace_rows) == [21, 12]
    assert selection_to_rows(event) == []


@pytest.mark.parametrize("event", [None, {}, {"selection": {}}, {"selection": {"points": []}}])
def test_empty_selections_select_nothing(event):
    assert selection_to_rows(event) == []


# A box over the 2/3/8 region: the chart lists the points trace by trace, so the lowest digit's rows come first.
LABELS = np.array([2] * 30 + [3] * 50 + [8] * 20 + [0] * 5)
BOX = list(range(30)) + list(range(30, 80)) + list(range(80, 100))


def test_the_sample_shown_spreads_over_the_selected_digits_not_the_first_rows():
    shown = sample_selection(BOX, LABELS, 8, seed=0)
    assert len(shown) == 8 and len(set(shown)) == 8 and set(shown) <= set(BOX)
    assert sorted(LABELS[shown].tolist()) == [2, 2, 2, 3, 3, 3, 8, 8]  # one of each in turn: 3, 2, 8, 3, 2, 8, 3, 2
    assert shown != BOX[:8]
    assert sample_selection(BOX, LABELS, 8, seed=0) == shown  # seeded
    assert sample_selection(BOX, LABELS, 8, seed=1) != shown


def test_a_small_selection_is_shown_whole():
    assert sorted(sample_selection([3, 1, 101, 3], LABELS, 8)) == [1, 3, 101]
    assert sample_selection([], LABELS, 8) == []


def test_the_summary_counts_each_digit_most_selected_first():
    assert digit_counts(BOX, LABELS) == {3: 50, 2: 30, 8: 20}
    assert selection_summary(BOX, LABELS) == "100 selected: 50 × 3, 30 × 2, 20 × 8"
    assert selection_summary([100, 101], LABELS) == "2 selected: 2 × 0"


def entry(name: str, kind: str, latent: int):
    return SimpleNamespace(path=Path("/c") / f"{name}.pt", metadata={"kind": kind, "latent_dim": latent})


SHIPPED_AE2, SHIPPED_VAE2 = entry("ae-z2", "ae", 2), entry("vae-z2", "vae", 2)
MINE_VAE2, SHIPPED_VAE64 = entry("vae-z2-mine", "vae", 2), entry("vae-z64", "vae", 64)
ENTRIES = [SHIPPED_AE2, SHIPPED_VAE2, SHIPPED_VAE64, MINE_VAE2]


def test_models_of_size_keep_the_registry_order():
    assert models_of_size(ENTRIES, "vae", 2) == [SHIPPED_VAE2, MINE_VAE2]
    assert models_of_size(ENTRIES, "ae", 64) == []


def test_the_default_pair_is_the_sidebar_model_beside_the_shipped_model_of_the_other_kind():
    assert default_pair(ENTRIES, 2, MINE_VAE2) == {"ae": "/c/ae-z2.pt", "vae": "/c/vae-z2-mine.pt"}
    assert default_pair(ENTRIES, 2, SHIPPED_VAE64) == {"ae": "/c/ae-z2.pt", "vae": "/c/vae-z2.pt"}  # another size
    assert default_pair(ENTRIES, 64, None) == {"ae": None, "vae": "/c/vae-z64.pt"}


@pytest.mark.parametrize("points", [
    [{"customdata": "abc"}], [{"customdata": 1e400}], [{"customdata": float("nan")}], [{"customdata": -1e9}],
    [{"customdata": 10_000}], [{"customdata": 2.5}], ["xyz"], [None], [{"customdata": [None]}],
    [{"curve_number": "0", "point_index": 1}], [{"curve_number": 0, "point_index": -1}],
])
def test_a_forged_selection_event_selects_nothing_and_raises_nothing(points):
    for event in ({"selection": {"points": points}}, {"selection": {"points": "xyz"}}, {"selection": 7}, "xyz"):
        assert selection_to_rows(event, [[5, 6]], n_rows=10_000) == []
    assert selection_to_rows({"selection": {"points": [{"customdata": 3.0}, *points]}}, n_rows=10_000) == [3]


def test_hover_points_are_a_seeded_sample_of_the_digits_shown():
    labels = np.arange(1000) % 10
    rows = np.arange(0, 1000, 2)  # a projection of every other test row: even rows, labels 0, 2, 4, 6, 8
    picked = hover_points(rows, labels, digits=[2, 4, 5], n=40)
    assert len(picked) == 40 and (np.diff(picked) > 0).all()
    assert set(labels[rows[picked]]) == {2, 4}  # no 5 has coordinates
    assert (picked == hover_points(rows, labels, digits=[2, 4, 5], n=40)).all()
    everything = hover_points(rows, labels, digits=[2, 4], n=1000)
    assert len(everything) == 200 and set(labels[rows[everything]]) == {2, 4}
    assert len(hover_points(rows, labels, digits=[], n=40)) == 0
