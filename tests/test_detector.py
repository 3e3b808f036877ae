"""The fitted "guarded" detector as plain arrays (Detector.state / from_state, vae/precomputed.py): a loaded one
scores exactly as the freshly fitted one, and a state of another checkpoint, other data or other training
images is refused, so the app fits afresh."""
import warnings

import numpy as np
import pytest
import torch

from vae import precomputed
from vae.checkpoint import SHIPPED, checkpoint_dir, load_checkpoint
from vae.data import FALLBACK_SUBSET, FULL_MNIST
from vae.detector import Detector, guarded_split
from vae.nondigits import DEVELOPMENT_SEED, EVALUATION_SEED, KINDS, nondigits

CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)


def test_the_split_is_fixed_by_the_count_and_covers_every_row_once():
    reference, rest = guarded_split(1000)
    again = guarded_split(1000)
    assert np.array_equal(reference, again[0]) and np.array_equal(rest, again[1])
    assert len(reference) == 200 and sorted([*reference, *rest]) == list(range(1000))
    assert len(guarded_split(60_000)[0]) == 5000
    assert not np.array_equal(guarded_split(1001)[0], reference)


def test_the_numpy_log_odds_are_the_networks_own():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 7)) * 5 + 2, rng.integers(0, 2, 300)
    scaler = StandardScaler().fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        network = MLPClassifier((64,), max_iter=30, random_state=0).fit(scaler.transform(x), y)
    detector = Detector(None, "guarded")
    detector.network = {"scaler_mean": scaler.mean_, "scaler_scale": scaler.scale_,
                        "hidden_weights": network.coefs_[0], "hidden_bias": network.intercepts_[0],
                        "output_weights": network.coefs_[1], "output_bias": network.intercepts_[1]}
    p = network.predict_proba(scaler.transform(x))[:, 1]
    np.testing.assert_allclose(detector._log_odds(x), np.log(p + 1e-12) - np.log1p(-p + 1e-12), rtol=0, atol=1e-12)


@pytest.mark.mnist
def test_a_loaded_guarded_detector_scores_as_the_fitted_one_and_only_for_its_own_checkpoint_and_data(
        small_mnist, tmp_path):
    checkpoint = CHECKPOINTS / "vae-z64.pt"
    model = load_checkpoint(checkpoint)[0]
    train = small_mnist.train_images
    fitted = Detector(model, "guarded").fit(train, np.concatenate([nondigits(k, 60, DEVELOPMENT_SEED) for k in KINDS]))
    folder = tmp_path / "precomputed"
    folder.mkdir()
    written = precomputed.write_guarded(precomputed.guarded_path(checkpoint, folder), fitted.state(),
                                        precomputed.file_sha256(checkpoint), FULL_MNIST)
    assert [p.name for p in folder.iterdir()] == ["vae-z64.guarded.npz"]  # no temp file left behind
    loaded = precomputed.guarded_detector(model, checkpoint, FULL_MNIST, train, folder)
    assert loaded is not None
    outside = torch.from_numpy(np.round(np.concatenate([nondigits(k, 30, EVALUATION_SEED) for k in KINDS])
                                        * 255).astype(np.uint8)[:, None])
    for images in (small_mnist.test_images[:300], outside):
        np.testing.assert_array_equal(loaded.decision_function(images), fitted.decision_function(images))
    np.testing.assert_array_equal(loaded.reference_scores, fitted.reference_scores)

    # refused: other data, another checkpoint, other training images, a damaged file
    assert precomputed.guarded_detector(model, checkpoint, FALLBACK_SUBSET, train, folder) is None
    written.rename(precomputed.guarded_path(CHECKPOINTS / "ae-z64.pt", folder))
    assert precomputed.guarded_detector(model, CHECKPOINTS / "ae-z64.pt", FULL_MNIST, train, folder) is None
    precomputed.guarded_path(CHECKPOINTS / "ae-z64.pt", folder).rename(written)
    assert precomputed.guarded_detector(model, checkpoint, FULL_MNIST, train[1:], folder) is None  # fewer
    changed = train.clone()
    changed[5, 0, 14, 14] ^= 1  # one pixel of one image
    assert precomputed.guarded_detector(model, checkpoint, FULL_MNIST, changed, folder) is None
    with pytest.raises(ValueError, match="other training images"):
        Detector.from_state(model, "guarded", fitted.state(), changed)
    with pytest.raises(ValueError, match="only a fitted 'guarded'"):
        Detector(model, "combined").fit(train).state()
    written.write_bytes(written.read_bytes()[:100])
    assert precomputed.guarded_detector(model, checkpoint, FULL_MNIST, train, folder) is None


def test_every_shipped_model_has_a_small_guarded_file_for_its_checkpoint():
    for name in SHIPPED:
        checkpoint = CHECKPOINTS / name
        path = precomputed.guarded_path(checkpoint)
        assert path.is_file(), f"no {path.name}: run scripts/write_guarded.py"
        assert path.stat().st_size < 400_000, (name, path.stat().st_size)
        state = precomputed.load_guarded(checkpoint, FULL_MNIST)
        assert state is not None, f"{path.name} is for another checkpoint: run scripts/write_guarded.py"
        assert int(state["training_images"]) == 60_000 and len(state["reference_scores"]) == 5000
