"""Detection: the score API, the fitted detector, calibrated spots, and the benchmark's JSON against a fresh computation."""
import json
import subprocess

import numpy as np
import pytest
import torch

from vae import benchmark
from vae.checkpoint import SHIPPED, checkpoint_dir, load_checkpoint
from vae.cli import main
from vae.correction import calibrate_spot_level, corrected_spots
from vae.data import to_float
from vae.detector import DETECTOR_SCORES, Detector
from vae.flaws import FLAW_KINDS, add_flaw
from vae.model import ConvAE
from vae.nondigits import KINDS
from vae.scores import SCORES, anomaly_score, blur
from vae.touching_flaws import TOUCHING_KINDS

from conftest import subprocess_env


@pytest.fixture(scope="module")
def vae64():
    return load_checkpoint(checkpoint_dir() / "vae-z64.pt")[0]


def test_anomaly_score_is_the_blurred_squared_error_by_default_and_offers_the_others(vae64, mnist):
    x = to_float(mnist.test_images[:8])
    default = anomaly_score(vae64, x)
    assert default.shape == (8,)
    difference = vae64.reconstruct(x) - x
    assert torch.allclose(default, blur(difference).pow(2).flatten(1).sum(1), rtol=1e-5)
    assert torch.allclose(anomaly_score(vae64, x, "squared_error"), difference.pow(2).flatten(1).sum(1), rtol=1e-5)
    assert (default < anomaly_score(vae64, x, "squared_error")).all()  # blurring spreads and cancels ±
    assert torch.equal(anomaly_score(vae64, mnist.test_images[:8]), default)  # uint8 in, same score
    assert torch.equal(anomaly_score(vae64, x[:, 0]), default)  # (N, 28, 28) too
    for score in SCORES:
        values = anomaly_score(vae64, x, score)
        assert values.shape == (8,) and torch.isfinite(values).all() and (values >= 0).all(), score
    assert torch.allclose(anomaly_score(vae64, x, "neg_elbo"), anomaly_score(vae64, x, "bce") + anomaly_score(vae64, x, "kl"),
                          rtol=1e-4)
    with pytest.raises(ValueError, match="unknown score"):
        anomaly_score(vae64, x, "psnr")
    with pytest.raises(ValueError, match="needs a VAE"):
        anomaly_score(ConvAE(2), x, "kl")


def test_blur_cancels_a_stroke_drawn_one_pixel_off_but_keeps_extra_ink():
    """Why the blurred score exists: a stroke one pixel off is a +/− pair side by side, which the blur cancels."""
    stroke = torch.zeros(1, 1, 28, 28)
    stroke[..., 8:20, 12:14] = 1.0
    shifted_difference = torch.roll(stroke, 1, dims=3) - stroke  # + on one edge, − on the other
    extra_ink = torch.zeros(1, 1, 28, 28)
    extra_ink[..., 8:20, 20:22] = 1.0  # as many changed pixels, all of one sign
    assert shifted_difference.pow(2).sum() == extra_ink.pow(2).sum()
    assert blur(shifted_difference).pow(2).sum() < 0.5 * blur(extra_ink).pow(2).sum()
    assert blur(torch.ones(1, 1, 28, 28))[0, 0, 14, 14] == pytest.approx(1.0, abs=1e-5)  # weights sum to 1


def test_detector_fits_on_training_images_and_separates_other_digits(mnist):
    model = load_checkpoint(checkpoint_dir() / "one-class" / "vae-z64-d1.pt")[0]
    ones = mnist.select(digits=[1]).train_images[:2000]
    for score in ("latent_knn", "combined"):
        detector = Detector(model, score).fit(ones)
        on_test = detector.decision_function(mnist.test_images[:1000])
        own = mnist.test_labels[:1000].numpy() == 1
        assert benchmark.auroc(on_test[own], on_test[~own]) > 95, score
    more_ones = mnist.select(digits=[1]).train_images[2000:4000]
    combined = Detector(model, "combined").fit(ones).decision_function(more_ones)
    assert abs(combined.mean()) < 0.5  # each term standardised on images like these: mean ~0
    with pytest.raises(RuntimeError, match="fit"):
        Detector(model, "combined").decision_function(ones)
    with pytest.raises(ValueError, match="unknown score"):
        Detector(model, "nope")
    assert set(SCORES) < set(DETECTOR_SCORES)


def test_every_shipped_and_one_class_model_stores_its_calibrated_spot_level():
    for path in [*(checkpoint_dir() / name for name in SHIPPED), *sorted((checkpoint_dir() / "one-class").glob("*.pt"))]:
        model, metadata = load_checkpoint(path)
        assert 0 < model.spot_level < 1 and model.spot_level == metadata["spot_level"], path.name


def test_corrected_spots_circle_a_scratch_with_boxes_and_masks_on_the_28_grid(vae64, mnist):
    vae64.spot_level = calibrate_spot_level(vae64, mnist.train_images, n=300)  # not the stored one: the API's path
    image = to_float(mnist.test_images[0]).numpy()[0]
    scratched = add_flaw(image, "scratch", seed=3)
    flaw = np.abs(scratched - image) > 0.1
    spots = corrected_spots(vae64, scratched)
    assert spots, "the scratch was not circled"
    assert any((spot.mask & flaw).any() for spot in spots)
    for spot in spots:
        y0, x0, y1, x1 = spot.bbox
        assert spot.mask.shape == (28, 28) and spot.mask.dtype == bool
        rows, cols = np.nonzero(spot.mask)
        assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (y0, x0, y1, x1)
    assert corrected_spots(vae64, torch.from_numpy(scratched[None]))[0].bbox == spots[0].bbox  # (1, 28, 28) tensor
    assert len(corrected_spots(vae64, image)) <= len(spots)
    with pytest.raises(ValueError, match="28, 28"):
        corrected_spots(vae64, np.zeros((14, 14)))
    with pytest.raises(ValueError, match="calibrated"):
        corrected_spots(ConvAE(2), image)  # built, not loaded: no level yet


def test_one_class_json_matches_a_fresh_computation_from_the_shipped_models(mnist):
    """Every one-class number the app shows comes from this file: recompute two digits from the shipped models."""
    stored = benchmark.read_results("one-class")
    assert stored is not None, "checkpoints/benchmark/one-class.json is missing: run python -m vae benchmark one-class"
    rows = {row["digit"]: row["auroc"] for row in stored["results"]["rows"] if row["seed"] == 0}
    assert sorted(rows) == list(range(10))
    for digit in (2, 8):
        fresh = benchmark.evaluate_one_class(load_checkpoint(benchmark.one_class_path("vae", 64, digit))[0], mnist, [digit],
                                             ["squared_error", "combined"])
        for score, value in fresh.items():
            assert value == pytest.approx(rows[digit][score], abs=0.05), (digit, score)
    summary = stored["results"]["summary"]["combined"]  # the mean over seeds of each seed's mean over digits
    seeds = sorted({row["seed"] for row in stored["results"]["rows"]})
    per_seed = [np.mean([row["auroc"]["combined"] for row in stored["results"]["rows"] if row["seed"] == seed])
                for seed in seeds]
    assert summary["mean"] == pytest.approx(np.mean(per_seed), abs=1e-6)
    assert summary["sd"] == pytest.approx(np.std(per_seed, ddof=1) if len(seeds) > 1 else 0.0, abs=1e-6)


def test_ood_reports_each_non_digit_kind_flagged_at_the_default_rule_with_every_score(small_mnist):
    model = load_checkpoint(checkpoint_dir() / "ae-z2.pt")[0]
    result = benchmark.ood(model, small_mnist, n_per_kind=40)  # fitted on 1,024 training images here, all 60,000 in the CLI
    assert result["images_per_kind"] == 40 and result["mnist_test_images"] == 1000
    assert set(result["flagged"]) == set(DETECTOR_SCORES) - {"kl"}  # an AE has no KL term
    for score, flagged in result["flagged"].items():
        assert set(flagged) == {"test_digits", *KINDS}
        assert all(0 <= value <= 100 for value in flagged.values()), (score, flagged)
        assert set(result["auroc"][score]) == set(KINDS)
    # the rule is the training digits' 99th percentile: about 1 % of unseen digits above it, not 0 or 10
    assert all(result["flagged"][score]["test_digits"] <= 6 for score in result["flagged"]), result["flagged"]
    mean_over_kinds = {score: np.mean([flagged[k] for k in KINDS]) for score, flagged in result["flagged"].items()}
    assert mean_over_kinds["guarded"] > mean_over_kinds["blurred_error"] + 15, result["flagged"]


@pytest.mark.slow
def test_benchmark_cli_writes_json_and_refuses_an_unknown_benchmark(tmp_path, python, repo_root, mnist_root, capsys):
    env = {**subprocess_env(), "MNIST_ROOT": str(mnist_root)}
    run = subprocess.run([python, "-m", "vae", "benchmark", "flaws", "--model", "ae-z2", "--images", "50",
                          "--results-dir", str(tmp_path), "--threads", "1"],
                         cwd=repo_root, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "flaws.json").read_text())["results"]["models"]["ae-z2"]
    assert result["images"] == 50 and set(result["kinds"]) == {*FLAW_KINDS[1:], *TOUCHING_KINDS}
    assert set(result["touching"]["kinds"]) == {"stroke", "disc", "extension"}
    stroke = result["kinds"]["stroke"]
    assert sum(stroke[f"images_off_ink_{low}_{high}"] for low, high in benchmark.OFF_INK_BINS) == 50
    assert run.stdout.startswith(f"wrote {tmp_path / 'flaws.json'}")
    with pytest.raises(SystemExit) as refused:
        main(["benchmark", "speed"])
    error = capsys.readouterr().err
    assert refused.value.code == 2 and error.count("\n") == 1 and "invalid choice: 'speed'" in error


def test_spot_hits_counts_hits_per_off_ink_bin():
    from vae.correction import Spot

    masks = np.zeros((3, 28, 28), dtype=bool)
    masks[:, 5, 5] = True
    on_flaw = np.zeros((28, 28), dtype=bool)
    on_flaw[6, 6] = True  # an 8-neighbour of the flaw: a hit
    far = np.zeros((28, 28), dtype=bool)
    far[20, 20] = True
    spot = lambda mask: Spot((0.0, 0.0), 1.0, (0, 0, 1, 1), 1, "added", 1.0, mask)  # noqa: E731
    result = benchmark.spot_hits([[spot(on_flaw)], [spot(far)], [spot(on_flaw), spot(far)]], masks, np.array([1, 5, 9]))
    assert result["hit_rate"] == pytest.approx(200 / 3) and result["precision"] == pytest.approx(50.0)
    assert result["hit_rate_off_ink_0_2"] == 100.0 and result["hit_rate_off_ink_3_7"] == 0.0
    assert result["hit_rate_off_ink_8_784"] == 100.0 and result["images_off_ink_3_7"] == 1


def test_guarded_keeps_a_one_class_models_auroc(mnist):
    """The non-digit verdict's score must not cost the one-class models their AUROC: digit 8, the hardest."""
    stored = {row["digit"]: row["auroc"] for row in benchmark.read_results("one-class")["results"]["rows"] if row["seed"] == 0}
    model = load_checkpoint(benchmark.one_class_path("vae", 64, 8))[0]
    fresh = benchmark.evaluate_one_class(model, mnist, [8], ["guarded"])
    assert fresh["guarded"] >= stored[8]["combined"], (fresh, stored[8]["combined"])  # 95.9 vs 93.4 when written
