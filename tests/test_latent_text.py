"""studio.latent_text: the sentence comparing cluster scores, and rows picked in a Plotly chart."""
import pytest

from studio.latent_text import compare_cluster_scores, selection_to_rows


def test_compare_cluster_scores_says_what_the_numbers_show():
    ae = {"knn_accuracy": 0.80, "silhouette": 0.10, "size_ratio": 2.0}
    tighter = {"knn_accuracy": 0.90, "silhouette": 0.30, "size_ratio": 1.2}
    looser = {"knn_accuracy": 0.70, "silhouette": 0.05, "size_ratio": 3.0}
    assert "VAE's clusters are tighter, as the report says" in compare_cluster_scores(ae, tighter)
    assert "silhouette (0.300 vs 0.100)" in compare_cluster_scores(ae, tighter)
    sentence = compare_cluster_scores(ae, looser)
    assert "AE's clusters are tighter, unlike the report" in sentence and "size ratio (2.000 vs 3.000)" in sentence
    assert "mixed" in compare_cluster_scores(ae, {**tighter, "silhouette": 0.0})
    assert compare_cluster_scores(ae, ae) == "The AE and the VAE score the same."


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
