"""The generative side of a model: digits decoded from the prior, from a straight path between two digits'
codes, and from any one point of the latent space.

Images come back as float numpy arrays (N, 28, 28) in [0, 1], like vae.latent's; the Latent space page
lays them out.
"""
from __future__ import annotations

import numpy as np
import torch

from .latent import embed_digit


class NoPrior(ValueError):
    """The model has no prior to sample from (a plain AE)."""


@torch.no_grad()
def decode_points(model, z: np.ndarray) -> np.ndarray:
    """Latent points (N, latent) → decoded images (N, 28, 28) in [0, 1]."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    if z.shape[1] != model.latent_dim:
        raise ValueError(f"this model's latent has {model.latent_dim} dimensions, got points with {z.shape[1]}")
    model.eval()
    return model.decode(torch.from_numpy(z))[:, 0].cpu().numpy()


def decode_point(model, z) -> np.ndarray:
    """One latent point (latent,) → its decoded 28×28 image in [0, 1]."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 1:
        raise ValueError(f"expected one point (latent,), got an array of shape {z.shape}")
    return decode_points(model, z[None])[0]


def sample_prior(model, n: int, seed: int) -> np.ndarray:
    """n digits decoded from z ~ N(0, I), the VAE's prior; the same seed gives the same digits.

    An AE was never trained towards any distribution of its codes, so N(0, I) means nothing to its
    decoder: it is refused (NoPrior) rather than shown as if it were a sample.
    """
    if model.kind != "vae":
        raise NoPrior(f"an {model.kind.upper()} has no prior to sample from; only a VAE does")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    generator = torch.Generator().manual_seed(int(seed))
    z = torch.randn(n, model.latent_dim, generator=generator)
    return decode_points(model, z.numpy())


def interpolation_path(z_a: np.ndarray, z_b: np.ndarray, steps: int) -> np.ndarray:
    """`steps` points evenly spaced on the straight line from z_a to z_b, both ends included: (steps, latent)."""
    if steps < 2:
        raise ValueError(f"a path needs at least 2 steps (its two ends), got {steps}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    z_a, z_b = np.asarray(z_a, dtype=np.float64), np.asarray(z_b, dtype=np.float64)
    return (1 - t) * z_a + t * z_b


def interpolate(model, x_a: np.ndarray, x_b: np.ndarray, steps: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(path (steps, latent), images (steps, 28, 28)): the straight path between the codes of two 28×28
    digits in [0, 1] (the VAE's posterior means), decoded. Its ends are the digits' reconstructions."""
    path = interpolation_path(embed_digit(model, x_a), embed_digit(model, x_b), steps)
    return path, decode_points(model, path)


def latent_ranges(z: np.ndarray, percentile: float = 1.0) -> list[tuple[float, float]]:
    """Per latent axis, (low, high) between the given low/high percentiles of the codes z (N, latent):
    the range the test digits occupy, for sliders that move a point through it."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"expected a non-empty (N, latent) array, got shape {z.shape}")
    low, high = np.percentile(z, [percentile, 100 - percentile], axis=0)
    return [(float(lo), float(hi)) for lo, hi in zip(low, high)]

