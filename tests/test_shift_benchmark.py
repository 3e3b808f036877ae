"""The shift benchmark (report §1–2): every number the pages show comes from checkpoints/benchmark/shift.json;
recompute the shipped models' part of it, and check the summary against its own rows."""
import numpy as np
import pytest
import torch

from vae import benchmark, shift_benchmark
from vae.checkpoint import checkpoint_dir, load_checkpoint
from vae.shifts import shift_images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored():
    stored = benchmark.read_results("shift")
    assert stored is not None, "checkpoints/benchmark/shift.json is missing: run python -m vae benchmark shift"
    return stored


@pytest.mark.parametrize("name", ["fc-ae-z64", "ae-z64"])
def test_the_shipped_models_rows_match_a_fresh_computation(stored, mnist, name):
    config = stored["results"]["config"]
    model = load_checkpoint(checkpoint_dir() / f"{name}.pt")[0]
    rows = shift_benchmark.sample_rows(mnist, config["sample"])
    fresh = shift_benchmark.evaluate(model, mnist, benchmark.classifier(mnist), rows,
                                     mnist.train_images[:config["threshold_sample"]], config["flaw_sample"])
    kept = stored["results"]["shipped"][name]
    assert fresh["threshold"] == pytest.approx(kept["threshold"], rel=1e-4)
    for how, amount in shift_benchmark.perturbations():
        for metric in shift_benchmark.METRICS:
            assert fresh[how][str(amount)][metric] == pytest.approx(kept[how][str(amount)][metric], abs=0.05), \
                (name, how, amount, metric)


def test_one_class_auroc_under_shift_matches_for_one_digit(stored, mnist):
    rows = shift_benchmark.sample_rows(mnist, stored["results"]["config"]["sample"])
    model = load_checkpoint(benchmark.one_class_path("vae", 64, 3))[0]
    fresh = shift_benchmark.one_class_under_moves(mnist, {3: model}, rows)
    for k in stored["results"]["config"]["shifts"]:
        assert fresh["shift"][str(k)]["per_digit"]["3"] == pytest.approx(
            stored["results"]["one_class"]["shift"][str(k)]["per_digit"]["3"], abs=0.05)


def test_the_summary_is_the_mean_and_sd_of_its_seeds(stored):
    trained = stored["results"]["trained"]
    summary = stored["results"]["summary"]
    seeds = stored["results"]["config"]["seeds"]
    for name in shift_benchmark.DEFAULT_ARCHITECTURES:
        for training in shift_benchmark.TRAININGS:
            runs = [r["result"] for r in trained if r["model"] == name and r["training"] == training]
            assert len(runs) == seeds, (name, training)
            for k in (0, 2, 4):
                values = [r["shift"][str(k)]["false_alarms"] for r in runs]
                cell = summary[name][training]["shift"][str(k)]["false_alarms"]
                assert cell["mean"] == pytest.approx(np.mean(values)) and cell["sd"] == pytest.approx(np.std(values, ddof=1))


def test_the_pages_sentences_come_from_the_json(stored):
    rows = {(r["model"], r["training"]): r for r in shift_benchmark.headline(stored)}
    conv = rows[("conv-AE", "plain")]
    assert conv["growth_4"] == pytest.approx(conv["error_4"] / conv["error_0"])
    text = shift_benchmark.conclusion(stored)
    assert f"{conv['error_4']:.1f}" in text and f"{conv['false_alarms_4']:.0f} %" in text
    assert shift_benchmark.conclusion(None).startswith("Not measured yet")


def test_a_shift_of_zero_changes_nothing_and_the_moves_are_seeded(mnist):
    images = mnist.test_images[:50]
    assert torch.equal(shift_benchmark.move(images, "shift", 0), images)
    assert torch.equal(shift_benchmark.move(images, "shift", 3), shift_benchmark.move(images, "shift", 3))
    moved = shift_benchmark.move(images, "shift", 2)
    assert all(any(torch.equal(m, shift_images(i[None], dy, dx)[0]) for dy, dx in ((0, 2), (0, -2), (2, 0), (-2, 0)))
               for i, m in zip(images, moved))
    with pytest.raises(ValueError, match="unknown move"):
        shift_benchmark.move(images, "zoom", 2)
