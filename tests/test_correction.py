"""vae.correction: difference maps, corrected regions and one-image correction, on small hand-made arrays
(plus one check on the shipped 64-dim VAE, or on the checkpoint named by $CORRECTION_CHECKPOINT)."""
import math

import numpy as np
import pytest
import torch

from vae import ConvAE, ConvVAE, load_checkpoint
from vae.checkpoint import checkpoint_dir
from vae.correction import (
    MIN_REGION_AREA,
    RESULT_FIELDS,
    correct,
    difference_map,
    fit_codes,
    result_csv,
    skipped_specks,
    spot_peaks,
    spots_in,
    verdict,
)
from vae.data import to_float
from vae.flaws import add_flaw
from vae.scores import anomaly_score, blur

from digits import bar_digit

CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)


# --- difference map ------------------------------------------------------------------------------

def test_difference_is_reconstruction_minus_input():
    image = np.array([[0.0, 1.0, 0.5]], dtype=np.float32)
    recon = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(difference_map(image, recon), [[1.0, -1.0, 0.0]])  # added, removed, same
    with pytest.raises(ValueError, match="shape"):
        difference_map(np.zeros((28, 28)), np.zeros((27, 28)))


# --- corrected regions ---------------------------------------------------------------------------

def test_regions_are_connected_spots_with_sign_size_and_peak():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[2:5, 2:5] = 0.6  # 3×3 of added ink
    diff[3, 3] = 0.9
    diff[20, 10:12] = -0.5  # 2 px of removed ink
    diff[10, 20] = 0.8  # a lone speck: noise, not a correction
    diff[15, 15], diff[16, 16] = 0.7, -0.7  # diagonal neighbours: one spot, ink moved
    diff[25, 25:27] = 0.3  # exactly at the level: not above it
    regions = spots_in(diff, level=0.3, min_area=2)
    assert [r.peak for r in regions] == pytest.approx([0.9, 0.7, 0.5])  # largest change first
    added, moved, removed = regions
    assert (added.sign, added.area, added.bbox, added.centre) == ("added", 9, (2, 2, 5, 5), (3.0, 3.0))
    assert (moved.sign, moved.area, moved.bbox) == ("mixed", 2, (15, 15, 17, 17))
    assert (removed.sign, removed.area, removed.bbox, removed.centre) == ("removed", 2, (20, 10, 21, 12), (20.0, 10.5))
    assert len(spots_in(diff, level=0.3, min_area=1)) == 4  # the speck, when asked for
    assert MIN_REGION_AREA > 2 and spots_in(diff, level=0.3) == [added]  # by default only real spots
    assert spots_in(np.zeros((28, 28)), 0.3) == []
    with pytest.raises(ValueError, match="2-D"):
        spots_in(np.zeros((1, 28, 28)), 0.3)


def test_region_circle_covers_every_pixel_of_an_odd_shape():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[5, 5:15] = 1.0  # an L: long arm
    diff[5:12, 5] = 1.0  # short arm
    (region,) = spots_in(diff, 0.5)
    rows, cols = np.nonzero(diff)
    for dr in (-0.5, 0.5):  # every corner of every pixel lies inside the circle
        for dc in (-0.5, 0.5):
            distance = np.hypot(rows + dr - region.centre[0], cols + dc - region.centre[1])
            assert (distance <= region.radius + 1e-6).all()
    assert region.radius < math.hypot(7, 10)  # and it is not absurdly large


# --- one image through a model -------------------------------------------------------------------

@pytest.mark.parametrize("model_class", [ConvAE, ConvVAE])
def test_correct_returns_the_reconstruction_its_difference_and_the_histogram_score(model_class):
    torch.manual_seed(0)
    model = model_class(4).eval()
    image = bar_digit()
    result = correct(model, image)
    x = torch.from_numpy(image).view(1, 1, 28, 28)
    with torch.no_grad():
        expected_recon = model.reconstruct(x)[0, 0].numpy()
    np.testing.assert_allclose(result.reconstruction, expected_recon, atol=1e-6)
    np.testing.assert_allclose(result.diff, expected_recon - image, atol=1e-6)
    assert result.score == pytest.approx(float(anomaly_score(model, x)[0]))
    blurred = blur(torch.from_numpy(expected_recon - image).view(1, 1, 28, 28))  # the default score, by hand
    assert result.score == pytest.approx(float(blurred.pow(2).sum()), rel=1e-5)
    with pytest.raises(ValueError, match="28×28"):
        correct(model, np.zeros((1, 28, 28), dtype=np.float32))


def test_verdict_is_anomaly_only_above_the_threshold():
    assert verdict(10.1, 10.0) == "anomaly"
    assert verdict(10.0, 10.0) == "normal"
    assert verdict(3.0, 10.0) == "normal"


def test_shipped_64_dim_vae_takes_out_a_stray_stroke_and_scores_it_higher(mnist):
    """Report Fig. 6: the 64-dim VAE drops ink that is no part of the digit, and the difference
    map finds the spot."""
    model, _ = load_checkpoint(CHECKPOINTS / "vae-z64.pt")
    digits = to_float(mnist.test_images[:5])[:, 0].numpy()
    for seed, clean in enumerate(digits):
        flawed = add_flaw(clean, "scratch", seed)
        scratch = flawed > clean + 0.5
        result = correct(model, flawed)
        assert result.score > correct(model, clean).score
        assert result.diff[scratch].mean() < -0.3  # much of the stray ink is gone from the reconstruction
        regions = [r for r in spots_in(result.diff) if r.sign != "added"]
        assert any(scratch[r.bbox[0]:r.bbox[2], r.bbox[1]:r.bbox[3]].any() for r in regions)


# --- specks too small to circle, and the CSV of a result -----------------------------------------------

def test_skipped_specks_counts_the_spots_too_small_to_circle():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[2, 2] = diff[2, 10] = -0.9  # two one-pixel specks
    diff[20, 20:22] = 0.9  # a two-pixel speck
    diff[10:12, 10:12] = 0.9  # a four-pixel spot: circled, not skipped
    diff[25, 25] = 0.2  # under the level: no speck at all
    assert skipped_specks(diff, 0.5) == 3
    assert len(spots_in(diff, 0.5)) == 1
    assert skipped_specks(diff, 0.5, min_area=1) == 0
    assert skipped_specks(np.zeros((28, 28)), 0.5) == 0


def test_noise_leaves_many_specks_that_are_counted_not_circled():
    noisy = add_flaw(np.zeros((28, 28), dtype=np.float32), "noise", 0)
    diff = difference_map(noisy, np.zeros((28, 28)))  # a model that removes all the salt
    specks, spots = skipped_specks(diff), spots_in(diff)
    assert specks > 10
    total = int((np.abs(diff) > 0.5).sum())
    assert sum(r.area for r in spots) + specks <= total  # every salt pixel is a speck or in a spot


def test_result_csv_has_a_header_and_one_line_per_result():
    row = {"model": "vae-z64", "input": "test #0 + scratch (seed 1)", "score": 12.345, "percentile": 97.25,
           "threshold": 30.0, "verdict": "normal", "spots": 2, "spot_level": 0.8275}
    lines = result_csv([row, {**row, "model": "ae-z64"}]).splitlines()
    assert lines[0] == ",".join(RESULT_FIELDS)
    assert lines[1] == "vae-z64,test #0 + scratch (seed 1),12.35,97.2%,30.00,normal,2,0.828"
    assert len(lines) == 3 and lines[2].startswith("ae-z64,")


def spot_peak_by_scanning(diff: np.ndarray) -> float:
    """The definition, read literally: the largest |value| v at which {|diff| >= v} still holds a spot."""
    levels = [v for v in np.unique(np.abs(diff)) if v > 0]
    return max((float(v) for v in levels if spots_in(diff, np.nextafter(np.float32(v), np.float32(-1)))),
               default=0.0)


def test_spot_peaks_of_many_maps_at_once_equal_each_maps_own_highest_spot_level():
    rng = np.random.default_rng(0)
    maps = np.zeros((40, 28, 28), dtype=np.float32)
    maps[:10] = rng.normal(0, 0.3, (10, 28, 28))  # edge jitter everywhere
    maps[10:20] = rng.random((10, 28, 28)) * (rng.random((10, 28, 28)) < 0.2)  # sparse specks
    maps[20:30, 5:8, 5:7] = -rng.random((10, 3, 2))  # one small spot of removed ink
    maps[20:30, 20, 20] = 0.99  # a single pixel above it: too small to count
    # maps[30:] stay blank: no spot at any level
    peaks = spot_peaks(maps)
    assert peaks.shape == (40,)
    assert peaks.tolist() == [spot_peak_by_scanning(d) for d in maps]
    assert (peaks[30:] == 0).all() and (peaks[20:30] > 0).all() and (peaks[20:30] < 0.99).all()


def test_fitting_codes_leaves_a_shared_model_untouched_when_two_sessions_fit_at_once():
    """The app caches one model for every session (st.cache_resource): two visitors fitting codes at the same
    moment must neither change its parameters' flags or gradients nor each other's results."""
    import threading

    torch.manual_seed(0)
    model = ConvVAE(4).eval()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    images = [bar_digit()[None].repeat(3, 0), np.clip(0.6 * bar_digit()[None] + 0.2, 0, 1).repeat(3, 0)]
    alone = [fit_codes(model, x, steps=30) for x in images]
    results = {}

    def fit(i: int) -> None:
        for _ in range(5):
            results.setdefault(i, []).append(fit_codes(model, images[i], steps=30))

    threads = [threading.Thread(target=fit, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    for i in (0, 1):
        for result in results[i]:
            np.testing.assert_allclose(result, alone[i], atol=1e-5)
