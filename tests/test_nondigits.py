"""The project's own non-digits and touching flaws (seeded code, no images typed in), and the detector
that learns from them ("guarded") flagging them while leaving digits alone."""
import numpy as np
import pytest
import torch

from vae.checkpoint import checkpoint_dir, load_checkpoint
from vae.detector import Detector
from vae.nondigits import DEVELOPMENT_SEED, EVALUATION_SEED, KINDS, SHAPES, nondigits, shape
from vae.touching_flaws import TOUCHING_KINDS, add_touching_flaw, off_ink_pixels


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_is_seeded_prepared_like_a_drawing_and_not_blank(kind):
    first, again, other = nondigits(kind, 6, seed=3), nondigits(kind, 6, seed=3), nondigits(kind, 6, seed=4)
    assert first.shape == (6, 28, 28) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert (first.reshape(6, -1).max(1) > 0.5).all()  # ink in every image
    # prepared like MNIST: the ink's centre of mass near pixel (14, 14)
    rows, cols = np.indices((28, 28))
    for image in first:
        assert abs((rows * image).sum() / image.sum() - 14) < 2 and abs((cols * image).sum() / image.sum() - 14) < 2


def test_development_and_evaluation_sets_differ_and_bad_requests_are_refused():
    assert not np.array_equal(nondigits("letter", 4, DEVELOPMENT_SEED), nondigits("letter", 4, EVALUATION_SEED))
    with pytest.raises(ValueError, match="unknown kind"):
        nondigits("emoji", 2)
    with pytest.raises(ValueError, match="unknown shape"):
        shape(np.random.default_rng(0), "hexagon")
    assert all(shape(np.random.default_rng(0), name).max() == 1.0 for name in SHAPES)


@pytest.mark.parametrize("kind", list(TOUCHING_KINDS))
def test_touching_flaws_touch_the_ink_and_count_their_off_ink_pixels(kind, mnist):
    digits = mnist.test_images[:20, 0].numpy() / 255.0
    flawed = np.stack([add_touching_flaw(d, kind, seed=i) for i, d in enumerate(digits)])
    np.testing.assert_array_equal(flawed, np.stack([add_touching_flaw(d, kind, seed=i) for i, d in enumerate(digits)]))
    changed = np.abs(flawed - digits) > 0.1
    visible = changed.reshape(20, -1).any(1)
    assert visible.sum() >= 17  # a stroke can run along the ink and change nothing: rarely
    ink = digits > 0.5
    grown = np.stack([np.pad(i, 1)[:-2, 1:-1] | np.pad(i, 1)[2:, 1:-1] | np.pad(i, 1)[1:-1, :-2] | np.pad(i, 1)[1:-1, 2:] | i
                      for i in ink])
    assert (changed & grown).reshape(20, -1).any(1)[visible].all()  # each flaw starts on or next to the strokes
    off = off_ink_pixels(digits, flawed)
    assert off.shape == (20,) and (off >= 0).all() and (off <= changed.reshape(20, -1).sum(1)).all()


@pytest.mark.mnist
def test_guarded_flags_letters_and_shapes_that_the_pixel_score_misses_and_leaves_digits_alone(small_mnist):
    model = load_checkpoint(checkpoint_dir() / "vae-z64.pt")[0]
    train = small_mnist.train_images
    guarded = Detector(model, "guarded").fit(train, np.concatenate([nondigits(k, 60, DEVELOPMENT_SEED) for k in KINDS]))
    pixel = Detector(model, "blurred_error").fit(train)
    outside = torch.from_numpy(np.round(np.concatenate([nondigits(k, 60, EVALUATION_SEED) for k in ("letter", "shape")])
                                        * 255).astype(np.uint8)[:, None])
    rates = {}
    for name, detector in (("guarded", guarded), ("pixel", pixel)):
        limit = np.percentile(detector.reference_scores, 99)
        rates[name] = (np.mean(detector.decision_function(outside) > limit),
                       np.mean(detector.decision_function(small_mnist.test_images) > limit))
    assert rates["guarded"][0] >= 0.8 and rates["guarded"][0] > rates["pixel"][0] + 0.1, rates
    assert rates["guarded"][1] <= 0.05, rates
