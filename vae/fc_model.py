"""The fully-connected baseline the report argues against (its §1–2): an AE and a VAE with no convolutions.

Encoder: 784 → hidden → z (the VAE: two heads, mean and, through softplus, standard deviation)
Decoder: z → hidden → 784
LeakyReLU after the hidden layers, as in the conv model. Every weight sees every pixel: nothing ties a
pattern's weights across positions, which is why the report says such a model needs its inputs aligned
first, or shifted copies among its training data.

The hidden width is not a free choice: `matched_width` picks the one whose parameter count is closest to
the report's conv model of the same kind and latent size, so a comparison is between equal budgets
(z = 64: 784-56-64-56-784, 95,936 parameters, vs the conv AE's 94,664). The benchmark's larger variant
(`hidden=512`) is built directly and never saved.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal

from .model import MIN_STD, ConvAE, ConvVAE, DeterministicAutoencoder, ModelConfig, VariationalAutoencoder

PIXELS = 28 * 28
WIDE_HIDDEN = 512  # the shift benchmark's larger fully-connected model


class FcEncoder(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(PIXELS, hidden)
        self.relu = nn.LeakyReLU()
        self.fast = True  # read by _Autoencoder; one path only here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.fc1(x.flatten(1)))  # (N, hidden)


class FcDecoder(nn.Module):
    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(latent_dim, hidden)
        self.fc2 = nn.Linear(hidden, PIXELS)
        self.relu = nn.LeakyReLU()
        self.fast = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) → pixel logits (N, 1, 28, 28)."""
        return self.fc2(self.relu(self.fc1(z))).view(-1, 1, 28, 28)


def fc_parameter_count(kind: str, latent_dim: int, hidden: int) -> int:
    """Weights and biases of the fully-connected model: encoder, head(s), decoder."""
    heads = 2 if kind == "fc-vae" else 1
    return (PIXELS * hidden + hidden) + heads * (hidden * latent_dim + latent_dim) \
        + (latent_dim * hidden + hidden) + (hidden * PIXELS + PIXELS)


@functools.lru_cache(maxsize=64)
def conv_parameter_count(kind: str, latent_dim: int) -> int:
    """The report's conv model of the same kind ('ae' for 'fc-ae', 'vae' for 'fc-vae')."""
    model = ConvVAE(latent_dim) if kind in ("vae", "fc-vae") else ConvAE(latent_dim)
    return sum(p.numel() for p in model.parameters())


def matched_width(kind: str, latent_dim: int) -> int:
    """The hidden width whose parameter count is closest to the conv model's of this kind and latent size."""
    target = conv_parameter_count(kind, latent_dim)
    return min(range(1, 2049), key=lambda h: abs(fc_parameter_count(kind, latent_dim, h) - target))


class FcAE(DeterministicAutoencoder):
    """The fully-connected autoencoder: deterministic z, no activation on it (as the conv AE's)."""

    def __init__(self, latent_dim: int = 64, hidden: int | None = None):
        super().__init__()
        self.config = ModelConfig("fc-ae", latent_dim)
        self.hidden = hidden or matched_width("fc-ae", latent_dim)
        self.encoder = FcEncoder(self.hidden)
        self.code = nn.Linear(self.hidden, latent_dim)
        self.decoder = FcDecoder(latent_dim, self.hidden)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) on any device → codes (N, z) on the model's device."""
        return self.code(self.encoder(x.to(self.device)))


class FcVAE(VariationalAutoencoder):
    """The fully-connected VAE: posterior N(mean, softplus(.)), z by rsample, KL to N(0, 1)."""

    def __init__(self, latent_dim: int = 64, beta: float = 1.0, hidden: int | None = None):
        super().__init__()
        self.config = ModelConfig("fc-vae", latent_dim, float(beta))
        self.hidden = hidden or matched_width("fc-vae", latent_dim)
        self.encoder = FcEncoder(self.hidden)
        self.mean_head = nn.Linear(self.hidden, latent_dim)
        self.std_head = nn.Linear(self.hidden, latent_dim)
        self.decoder = FcDecoder(latent_dim, self.hidden)

    def posterior(self, x: torch.Tensor) -> Normal:
        h = self.encoder(x.to(self.device))
        return Normal(self.mean_head(h), F.softplus(self.std_head(h)) + MIN_STD)
