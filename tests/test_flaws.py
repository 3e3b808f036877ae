"""vae.flaws: synthetic flaws on a hand-made digit."""
import numpy as np
import pytest

from vae.flaws import FLAW_KINDS, add_flaw

from digits import bar_digit


@pytest.mark.parametrize("kind", FLAW_KINDS)
def test_flaws_are_deterministic_in_range_and_leave_the_input_alone(kind):
    image = bar_digit()
    original = image.copy()
    flawed = add_flaw(image, kind, seed=3)
    np.testing.assert_array_equal(flawed, add_flaw(image, kind, seed=3))
    np.testing.assert_array_equal(image, original)
    assert flawed.shape == (28, 28) and flawed.min() >= 0.0 and flawed.max() <= 1.0
    if kind == "none":
        np.testing.assert_array_equal(flawed, image)
    else:
        assert not np.array_equal(flawed, image)
        assert not np.array_equal(add_flaw(image, kind, seed=4), flawed)  # another seed, another flaw
    # A generator works as the seed too.
    np.testing.assert_array_equal(add_flaw(image, kind, np.random.default_rng(3)), flawed)


def test_each_flaw_changes_ink_the_way_its_name_says():
    image = bar_digit()
    for seed in range(5):
        for kind in ("scratch", "blob"):  # only add ink
            flawed = add_flaw(image, kind, seed)
            assert (flawed >= image).all() and (flawed - image).sum() >= 4
        erased = add_flaw(image, "erase", seed)  # only removes ink, from the stroke
        assert (erased <= image).all() and (image - erased).sum() >= 4
        half_ink = np.zeros((28, 28), dtype=np.float32)
        half_ink[:, :14] = 1.0
        noisy = add_flaw(half_ink, "noise", seed)  # salt on the background and pepper on the ink
        assert ((noisy == 1.0) & (half_ink == 0.0)).any() and ((noisy == 0.0) & (half_ink == 1.0)).any()
    with pytest.raises(ValueError, match="unknown flaw"):
        add_flaw(image, "smudge", 0)
