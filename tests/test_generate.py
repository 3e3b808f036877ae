"""vae.generate: prior samples, interpolation between two digits, decoding one latent point."""
import numpy as np
import pytest
import torch

from vae import ConvAE, ConvVAE
from vae.generate import (
    NoPrior,
    decode_point,
    decode_points,
    interpolate,
    interpolation_path,
    latent_ranges,
    sample_prior,
)


@pytest.fixture(scope="module")
def vae2():
    torch.manual_seed(0)
    return ConvVAE(2).eval()


def digit(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((28, 28)).astype(np.float32)


def test_prior_samples_are_images_in_0_1_and_the_seed_fixes_them(vae2):
    a = sample_prior(vae2, 16, seed=3)
    assert a.shape == (16, 28, 28) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, sample_prior(vae2, 16, seed=3))
    assert not np.array_equal(a, sample_prior(vae2, 16, seed=4))
    assert not np.array_equal(a[0], a[1])  # 16 different draws, not one repeated


def test_prior_samples_decode_standard_normal_codes(vae2):
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(7)).numpy()
    np.testing.assert_allclose(sample_prior(vae2, 4, seed=7), decode_points(vae2, z), atol=1e-6)


def test_an_ae_has_no_prior_to_sample_from():
    with pytest.raises(NoPrior, match="AE has no prior"):
        sample_prior(ConvAE(2), 4, seed=0)


def test_sample_prior_needs_at_least_one_sample(vae2):
    with pytest.raises(ValueError, match="at least 1"):
        sample_prior(vae2, 0, seed=0)


def test_interpolation_path_is_straight_and_includes_both_ends():
    path = interpolation_path(np.array([0.0, 2.0]), np.array([4.0, -2.0]), 5)
    np.testing.assert_allclose(path, [[0, 2], [1, 1], [2, 0], [3, -1], [4, -2]])
    with pytest.raises(ValueError, match="at least 2 steps"):
        interpolation_path(np.zeros(2), np.ones(2), 1)


@pytest.mark.parametrize("model", [ConvVAE(3), ConvAE(2)], ids=["vae", "ae"])
def test_interpolation_ends_are_the_two_digits_reconstructions(model):
    a, b = digit(0), digit(1)
    path, images = interpolate(model.eval(), a, b, steps=8)
    assert path.shape == (8, model.latent_dim) and images.shape == (8, 28, 28)
    assert 0.0 <= images.min() and images.max() <= 1.0
    with torch.no_grad():
        ends = model.reconstruct(torch.from_numpy(np.stack([a, b])[:, None]))[:, 0].numpy()
    np.testing.assert_allclose(images[[0, -1]], ends, atol=1e-5)
    np.testing.assert_allclose(path[0], model.embed(torch.from_numpy(a)[None, None]).detach()[0].numpy(), atol=1e-6)


def test_decode_point_decodes_one_point_and_checks_its_size(vae2):
    image = decode_point(vae2, [0.5, -1.0])
    assert image.shape == (28, 28)
    np.testing.assert_allclose(image, decode_points(vae2, np.array([[0.5, -1.0]]))[0])
    with pytest.raises(ValueError, match="2 dimensions, got points with 3"):
        decode_point(vae2, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="one point"):
        decode_point(vae2, np.zeros((2, 2)))


def test_latent_ranges_span_the_percentiles_per_axis():
    z = np.stack([np.arange(101.0), -2 * np.arange(101.0)], axis=1)
    (x0, x1), (y0, y1) = latent_ranges(z, percentile=1.0)
    assert (x0, x1) == pytest.approx((1.0, 99.0))
    assert (y0, y1) == pytest.approx((-198.0, -2.0))
    with pytest.raises(ValueError):
        latent_ranges(np.zeros((0, 2)))
