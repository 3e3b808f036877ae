"""vae.sampling: a VAE's posterior for one digit and reconstructions decoded from it; an AE has neither."""

import numpy as np
import pytest
import torch

from vae import ConvAE, ConvVAE, load_checkpoint
from vae.checkpoint import checkpoint_dir
from vae.generate import informative_dims, posterior_of, sampled_reconstructions

from digits import bar_digit

CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)


@pytest.fixture
def vae():
    torch.manual_seed(0)
    return ConvVAE(latent_dim=8)


def test_a_vae_posterior_has_one_positive_sigma_per_latent_dimension(vae):
    posterior = posterior_of(vae, bar_digit())
    assert posterior.mean.shape == posterior.std.shape == (8,)
    assert (posterior.std > 0).all()
    with pytest.raises(ValueError, match="28×28"):
        posterior_of(vae, np.zeros((27, 28)))


def test_sampled_reconstructions_are_images_the_same_for_a_seed_and_vary_between_samples(vae):
    samples = sampled_reconstructions(vae, bar_digit(), count=4, seed=3)
    assert samples.shape == (4, 28, 28)
    assert samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_array_equal(samples, sampled_reconstructions(vae, bar_digit(), count=4, seed=3))
    assert not np.allclose(samples, sampled_reconstructions(vae, bar_digit(), count=4, seed=4))
    assert not np.allclose(samples[0], samples[1])


def test_an_autoencoder_has_no_posterior_and_no_samples():
    ae = ConvAE(latent_dim=8)
    assert posterior_of(ae, bar_digit()) is None
    assert sampled_reconstructions(ae, bar_digit()) is None


def test_informative_dims_counts_the_dimensions_pinned_down():
    assert informative_dims(np.array([0.1, 0.49, 0.5, 0.99, 1.0])) == 2
    assert informative_dims(np.array([0.9, 0.3]), below=0.95) == 2


def test_the_shipped_vae_pins_down_a_few_dimensions_and_its_samples_stay_near_the_digit():
    model, _ = load_checkpoint(CHECKPOINTS / "vae-z64.pt")
    digit = bar_digit()
    posterior = posterior_of(model, digit)
    assert 0 < informative_dims(posterior.std) < 64  # KL leaves the unused dimensions at the prior's σ ≈ 1
    samples = sampled_reconstructions(model, digit)
    assert ((samples - digit) ** 2).sum(axis=(1, 2)).max() < ((np.zeros_like(digit) - digit) ** 2).sum()
