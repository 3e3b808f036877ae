"""vae.scores: the threshold rules and the histogram helpers, on small hand-made score arrays."""
import numpy as np
import pytest

from vae.scores import (
    DEFAULT_RULE,
    THRESHOLD_RULES,
    expected_share_of_test,
    fraction_above,
    percentile_of,
    share_of_test_above,
    share_of_test_per_bin,
    shared_bins,
    split_histogram,
    threshold,
    top_errors,
)


def test_shared_bins_cover_both_splits_and_histograms_are_percent_of_each_split():
    train = np.array([1.0, 2.0, 2.0, 3.0])
    test = np.array([2.0, 5.0])
    edges = shared_bins(train, test, bins=4)
    assert edges[0] == 1.0 and edges[-1] == 5.0 and len(edges) == 5
    counts, percent = split_histogram(train, edges)
    assert counts.tolist() == [1, 2, 1, 0] and percent.tolist() == [25.0, 50.0, 25.0, 0.0]
    test_counts, test_percent = split_histogram(test, edges)
    assert test_counts.tolist() == [0, 1, 0, 1]  # the maximum lands in the last bin
    tail_counts, tail_percent = split_histogram(train, shared_bins(train, test, bins=2, low=2.5))
    assert tail_counts.tolist() == [1, 0] and tail_percent.tolist() == [25.0, 0.0]  # percent of the whole split
    assert len(shared_bins(np.ones(3), np.ones(2), bins=3)) == 4  # equal errors still give a range


def test_test_share_per_bin_and_above_a_limit():
    share = share_of_test_per_bin(np.array([6, 1, 0, 1]), np.array([1, 1, 0, 3]), min_images=2)
    assert share[0] == pytest.approx(1 / 7) and share[1] == 0.5 and np.isnan(share[2]) and share[3] == 0.75
    assert expected_share_of_test(60000, 10000) == pytest.approx(1 / 7)
    fraction, count = share_of_test_above(np.array([1.0, 2.0, 9.0]), np.array([8.0, 10.0]), limit=5.0)
    assert (fraction, count) == (pytest.approx(2 / 3), 3)
    assert np.isnan(share_of_test_above(np.array([1.0]), np.array([1.0]), 5.0)[0])


def test_top_errors_are_largest_first():
    assert top_errors(np.array([0.5, 3.0, 1.0, 2.0]), 3).tolist() == [1, 3, 2]
    assert top_errors(np.array([1.0]), 5).tolist() == [0]


def test_split_by_digits_separates_a_one_class_models_digits_from_the_others():
    from vae.scores import split_by_digits

    errors, labels = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 5, 0, 7])
    own, other = split_by_digits(errors, labels, [0])
    assert own.tolist() == [1.0, 3.0] and other.tolist() == [2.0, 4.0]
    own, other = split_by_digits(errors, labels, None)
    assert own.tolist() == errors.tolist() and other.size == 0


# --- the threshold rules and what is compared against them ------------------------------------------------

def test_threshold_rules_on_known_scores():
    scores = np.arange(1.0, 101.0)  # 1 … 100
    assert threshold(scores, "percentile", 99.0) == pytest.approx(np.percentile(scores, 99.0)) == pytest.approx(99.01)
    assert threshold(scores, "percentile", 0.0) == 1.0 and threshold(scores, "percentile", 100.0) == 100.0
    assert threshold(scores, "mean_k_sigma", 2.0) == pytest.approx(50.5 + 2.0 * scores.std())
    assert threshold(scores, "max") == 100.0
    assert threshold(scores, *DEFAULT_RULE) == pytest.approx(99.01)  # the default: the 99th percentile
    for rule in THRESHOLD_RULES:
        assert threshold(scores, rule, None) <= 100.0 + 3 * scores.std()  # every rule has a default parameter


def test_threshold_refuses_what_it_cannot_mean():
    with pytest.raises(ValueError, match="no training"):
        threshold(np.array([]), "max")
    with pytest.raises(ValueError, match="between 0 and 100"):
        threshold(np.ones(3), "percentile", 101.0)
    with pytest.raises(ValueError, match="unknown threshold rule"):
        threshold(np.ones(3), "median")


def test_fraction_above_and_percentile_of_count_ties_as_normal():
    scores = np.array([1.0, 2.0, 2.0, 4.0])
    assert fraction_above(scores, 2.0) == 0.25  # strictly above the limit is an anomaly
    assert fraction_above(np.array([]), 2.0) == 0.0
    assert percentile_of(2.0, scores) == 75.0  # at or below
    assert np.isnan(percentile_of(2.0, np.array([])))


def test_compared_numbers_show_enough_decimals_for_the_sign_to_be_true_of_what_is_shown():
    from vae.scores import compared_numbers

    assert compared_numbers(3.74, 3.66) == ("3.74", ">", "3.66")  # both read 3.7 at one decimal
    assert compared_numbers(3.71, 3.2) == ("3.7", ">", "3.2")
    assert compared_numbers(3.2, 3.2) == ("3.2", "≤", "3.2")  # equal: equal text is true
    assert compared_numbers(1.00001, 1.0) == ("1.00001", ">", "1.00000")
    score, sign, limit = compared_numbers(2.0 + 1e-12, 2.0)
    assert sign == ">"  # past the most decimals it still says what the numbers are


def test_confusion_at_a_threshold_counts_flagged_normal_and_anomalous_images():
    from vae.scores import confusion_at

    c = confusion_at(np.array([1.0, 2.0, 3.0, 9.0]), np.array([8.0, 2.0, 10.0]), limit=5.0)
    assert (c.true_positives, c.false_negatives, c.false_positives, c.true_negatives) == (2, 1, 1, 3)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3) and c.false_alarm_rate == 0.25
    assert np.isnan(confusion_at(np.array([1.0]), np.array([2.0]), limit=5.0).precision)  # nothing flagged


@pytest.mark.parametrize("event, expected", [
    ({"selection": {"points": [{"x": 4.2, "y": 1}], "box": [], "lasso": []}}, 4.2),
    ({"selection": {"points": [{"x": 5.0}], "box": [{"x": [3.0, 6.0], "y": [0, 1]}]}}, 3.0),  # a box: its left edge
    ({"selection": {"points": [{"x": 99.0}]}}, 10.0),  # clipped to the histogram
    ({"selection": {"points": []}}, None),
    ({"selection": {"points": [{"x": "NaN"}, {"x": float("inf")}, {"x": True}]}}, None),  # forged values
    ("not an event", None),
    ({"selection": {"box": [{"x": ["a"]}]}}, None),
    ({"selection": {"box": 5, "points": 7}}, None),  # forged: not lists
])
def test_clicked_threshold_reads_a_click_or_box_and_ignores_anything_else(event, expected):
    from vae.scores import clicked_threshold

    assert clicked_threshold(event, 0.0, 10.0) == expected
