"""The Error histograms page in Streamlit's AppTest, with real MNIST and the shipped vae-z64: the
threshold rules write the choice the Draw page reads, the numbers shown are the ones computed from the
errors, the widgets come back as chosen after visiting another page. One AppTest session, in order."""
import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from studio import caches, navigation, state
from vae.checkpoint import checkpoint_dir
from vae.scores import dataset_scores, fraction_above, threshold

ROOT = Path(__file__).resolve().parent.parent
MODEL = checkpoint_dir() / "vae-z64.pt"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


@pytest.fixture(scope="module")
def page():
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
    at.session_state[state.MODEL_KEY] = str(MODEL)
    at.session_state[state.VERDICT_SCORE_KEY] = "blurred_error"  # the precomputed score these tests check
    at.switch_page(navigation.page_file("histograms")).run()
    return at


@pytest.fixture(scope="module")
def errors(page, mnist_root):
    """The same (train, test) errors the page drew, from the cache its run filled."""
    return caches.get_scores(str(MODEL), MODEL.stat().st_mtime, str(mnist_root))


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_default_rule_is_stored_and_the_numbers_come_from_all_70000_errors(page, errors):
    assert_clean(page)
    train, test = errors
    assert (len(train), len(test)) == (60_000, 10_000)
    assert page.session_state[state.THRESHOLD_KEY] == ("percentile", 99.0)
    limit = threshold(train, "percentile", 99.0)
    assert metric(page, "Threshold (error)") == f"{limit:.2f}"
    assert metric(page, "Training above") == f"{fraction_above(train, limit):.1%}"  # one decimal, as everywhere
    assert metric(page, "Test above") == f"{fraction_above(test, limit):.1%}"
    assert any("MNIST (60,000 train / 10,000 test)" in c.value for c in page.caption)
    assert any("of them test images" in m.value for m in page.markdown)  # the tail's test share, as a number


def test_gallery_shows_the_16_highest_error_test_images(page, errors):
    _, test = errors
    captions = [caption for image in page.get("image") for caption in image.captions]
    assert len(captions) == 16
    worst = max(range(len(test)), key=test.__getitem__)
    assert captions[0].startswith(f"#{worst} · label ") and captions[0].endswith(f"error {test[worst]:.1f}")


def test_choosing_mean_plus_k_sigma_stores_it_and_changes_the_threshold(page, errors):
    train, _ = errors
    before = metric(page, "Threshold (error)")
    page.radio(key="hist_rule").set_value("mean_k_sigma").run()
    assert_clean(page)
    assert page.session_state[state.THRESHOLD_KEY] == ("mean_k_sigma", 3.0)
    shown = metric(page, "Threshold (error)")
    assert shown != before and shown == f"{threshold(train, 'mean_k_sigma', 3.0):.2f}"
    page.slider(key="hist_k").set_value(1.5).run()
    assert page.session_state[state.THRESHOLD_KEY] == ("mean_k_sigma", 1.5)
    assert metric(page, "Threshold (error)") == f"{train.mean() + 1.5 * train.std():.2f}"


def test_training_maximum_flags_no_training_image(page, errors):
    train, _ = errors
    page.radio(key="hist_rule").set_value("max").run()
    assert_clean(page)
    assert page.session_state[state.THRESHOLD_KEY] == ("max", None)
    assert metric(page, "Threshold (error)") == f"{train.max():.2f}"
    assert metric(page, "Training above") == "0.0%"


def test_the_choice_survives_a_visit_to_another_page(page):
    page.radio(key="hist_rule").set_value("percentile").run()
    page.slider(key="hist_percentile").set_value(97.5).run()
    page.switch_page(navigation.page_file("home")).run()
    page.switch_page(navigation.page_file("histograms")).run()
    assert_clean(page)
    assert page.radio(key="hist_rule").value == "percentile"
    assert page.slider(key="hist_percentile").value == 97.5
    assert page.session_state[state.THRESHOLD_KEY] == ("percentile", 97.5)


def test_the_threshold_chosen_here_is_the_one_the_draw_page_uses(page, errors):
    train, _ = errors
    page.radio(key="hist_rule").set_value("mean_k_sigma").run()
    page.slider(key="hist_k").set_value(2.5).run()
    limit = threshold(train, "mean_k_sigma", 2.5)
    page.switch_page(navigation.page_file("draw")).run()
    next(r for r in page.radio if r.label == "Input").set_value("Test digit").run()
    assert_clean(page)
    said = " ".join(m.value for m in page.markdown)
    assert f"{limit:.1f}" in said and "training mean + 2.5·σ" in said


def test_the_page_counts_the_reports_error_by_default_while_the_draw_verdict_keeps_its_own_score():
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
    at.session_state[state.MODEL_KEY] = str(MODEL)
    at.switch_page(navigation.page_file("histograms")).run()
    assert_clean(at)
    assert at.selectbox(key=state.HISTOGRAM_SCORE_KEY).value == "blurred_error"  # reconstruction error, Fig. 7
    assert state.VERDICT_SCORE_KEY not in at.session_state  # the Draw page's choice is left alone ("guarded")
    at.session_state[state.VERDICT_SCORE_KEY] = "guarded"  # chosen on the Draw page
    at.run()
    assert at.selectbox(key=state.HISTOGRAM_SCORE_KEY).value == "blurred_error"
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["xaxis"]["title"]["text"] == "reconstruction error"


def test_a_click_on_the_histogram_moves_the_threshold_there(page, errors):
    """A click (or box) is kept by the chart's on_select as CLICK_KEY; the next run moves the widgets to it."""
    page.switch_page(navigation.page_file("histograms")).run()  # an earlier test left it on Draw
    train, _ = errors
    page.radio(key="hist_rule").set_value("percentile").run()
    x = float(np.percentile(train, 96.3))
    page.session_state["hist_clicked_x"] = x
    page.run()
    assert_clean(page)
    assert page.slider(key="hist_percentile").value == pytest.approx(96.3, abs=0.05)  # the control follows the click
    assert page.session_state[state.THRESHOLD_KEY] == ("percentile", page.slider(key="hist_percentile").value)
    assert float(metric(page, "Threshold (error)")) == pytest.approx(x, rel=0.01)
    page.radio(key="hist_rule").set_value("mean_k_sigma").run()
    page.session_state["hist_clicked_x"] = float(train.mean() + 2.0 * train.std())
    page.run()
    assert page.slider(key="hist_k").value == pytest.approx(2.0)
    charts = page.get("plotly_chart")
    assert all(chart.proto.selection_mode for chart in charts[:2])  # both histograms answer clicks and boxes


def test_the_confusion_matrix_at_the_threshold_counts_test_digits_against_the_benchmarks_anomalies(page, errors):
    from vae.scores import confusion_at

    page.switch_page(navigation.page_file("histograms")).run()  # an earlier test left it on Draw
    train, test = errors
    page.radio(key="hist_rule").set_value("percentile").run()
    page.slider(key="hist_percentile").set_value(99.0).run()
    limit = threshold(train, "percentile", 99.0)
    anomalies = caches.anomaly_scores_for(next(e for e in caches.usable_entries() if e.path == MODEL), "blurred_error")
    assert set(anomalies) == {"flawed digits", "non-digits"} and all(len(v) > 100 for v in anomalies.values())
    for choice, positives in (("both", np.concatenate(list(anomalies.values()))), ("non-digits", anomalies["non-digits"])):
        page.radio(key="hist_anomalies").set_value(choice).run()
        assert_clean(page)
        expected = confusion_at(test, positives, limit)
        table = next(d.value for d in page.dataframe if "flagged" in d.value.columns)
        assert list(table["flagged"]) == [expected.true_positives, expected.false_positives]
        assert list(table["passed"]) == [expected.false_negatives, expected.true_negatives]
        assert int(table["flagged"].sum() + table["passed"].sum()) == len(test) + len(positives)
        assert metric(page, "Precision") == f"{expected.precision:.1%}"
        assert metric(page, "Recall") == f"{expected.recall:.1%}"
        assert metric(page, "False alarms") == f"{fraction_above(test, limit):.1%}"


# --- a one-class model: judged against its own digit ------------------------------------------------------

ONE_CLASS_IMAGES = 600  # zeros the model trains on (a random subset, seed 0, as `--digits 0 --train-size 600`)


def plotly_array(value) -> np.ndarray:
    """A figure's array as Plotly's JSON holds it: a list, or base64 bytes with their dtype and shape."""
    if isinstance(value, dict):
        shape = tuple(int(n) for n in str(value.get("shape", "-1")).split(","))
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


@pytest.fixture(scope="module")
def one_class(mnist, tmp_path_factory):
    """A VAE(2) trained briefly on 600 zeros, alone in a checkpoint folder the app is pointed at: (path, its data)."""
    from vae.checkpoint import save_checkpoint
    from vae.model import ConvVAE
    from vae.train import TrainConfig, train

    seen = mnist.select([0], ONE_CLASS_IMAGES, seed=0)
    torch.manual_seed(0)
    model = ConvVAE(2)
    train(model, seen, TrainConfig(epochs=10, batch_size=32, evaluate_each_epoch=False, device="cpu"))  # ~8 s
    folder = tmp_path_factory.mktemp("one-class")
    path = save_checkpoint(model, folder / "vae-z2-d0.pt", {
        "kind": "vae", "latent_dim": 2, "digits": [0], "train_images": ONE_CLASS_IMAGES, "seed": 0, "epochs": 10,
        "data_source": "mnist"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STUDIO_CHECKPOINTS", str(folder))
        yield path, seen


@pytest.fixture(scope="module")
def one_class_page(one_class):
    path, _ = one_class
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
    at.session_state[state.MODEL_KEY] = str(path)
    at.session_state[state.VERDICT_SCORE_KEY] = "blurred_error"
    at.switch_page(navigation.page_file("histograms")).run()
    return at


def test_a_one_class_model_is_judged_against_the_images_it_was_trained_on(one_class, one_class_page, mnist):
    path, seen = one_class
    at = one_class_page
    assert_clean(at)
    assert any(f"{ONE_CLASS_IMAGES:,} training images scored" in c.value and "digit 0" in c.value for c in at.caption)
    entry = next(e for e in caches.usable_entries() if e.path == path)
    train, test = caches.scores_for(entry)  # what the Draw page's verdict and percentile use
    model, _ = caches.model_for(entry)
    assert len(train) == ONE_CLASS_IMAGES and len(test) == 10_000
    assert train == pytest.approx(dataset_scores(model, seen.train_images), rel=1e-6)  # those very 600 zeros
    limit = threshold(train, "percentile", 99.0)
    assert metric(at, "Threshold (error)") == f"{limit:.2f}"
    zeros = mnist.test_labels.numpy() == 0
    others = fraction_above(test[~zeros], limit)
    assert metric(at, "Other digits above") == f"{others:.1%}"
    assert metric(at, "Test digit 0 above") == f"{fraction_above(test[zeros], limit):.1%}"
    assert others > fraction_above(test[zeros], limit)  # it learned zeros: the other digits stand out


def test_a_one_class_models_test_histogram_splits_its_digit_from_the_others(one_class_page, mnist):
    chart = json.loads(one_class_page.get("plotly_chart")[0].proto.spec)
    names = [trace["name"] for trace in chart["data"] if trace["type"] == "bar" and trace.get("showlegend") is not False]
    assert names == ["training (digit 0)", "test, digit 0", "test, other digits"]
    counts = [int(plotly_array(trace["customdata"])[:, 2].sum()) for trace in chart["data"]
              if trace["type"] == "bar" and trace.get("showlegend") is not False]
    n_zeros = int((mnist.test_labels == 0).sum())
    assert counts == [ONE_CLASS_IMAGES, n_zeros, 10_000 - n_zeros]
    assert any("one-class model" in i.value for i in one_class_page.info)


def test_a_fully_connected_model_gets_its_histograms_from_its_own_scores(monkeypatch):
    # The test session's model store, whatever folder a module fixture of this file points the app at.
    monkeypatch.setenv("STUDIO_CHECKPOINTS", str(MODEL.parent))
    from vae.checkpoint import checkpoint_dir

    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
    at.session_state[state.MODEL_KEY] = str(checkpoint_dir() / "fc-ae-z64.pt")
    at.session_state[state.VERDICT_SCORE_KEY] = "blurred_error"  # the score caches.scores_for holds
    at.switch_page(navigation.page_file("histograms")).run()
    assert_clean(at)
    entry = next(e for e in caches.usable_entries() if e.name == "fc-ae-z64")
    train, _ = caches.scores_for(entry)
    assert len(train) == 60_000
    assert metric(at, "Threshold (error)") == f"{threshold(train, 'percentile', 99.0):.2f}"
