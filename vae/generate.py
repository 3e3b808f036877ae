"""The generative side of a model: digits decoded from the prior, from a straight path between two digits'
codes, from a grid over a 2-D latent and from any one point of the latent space; and for one digit, how sure
a VAE's encoder is of its code (the posterior σ per dimension) and what decoding codes drawn from it gives
(a plain AE has a single code per image, so it has neither: those functions return None for it).

Images come back as float numpy arrays (N, 28, 28) in [0, 1], like vae.latent's; the Latent space page
lays them out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .latent import embed_digit

SAMPLE_COUNT = 4  # sampled reconstructions shown beside the deterministic one
SAMPLE_SEED = 0  # the same samples on every rerun, so the page does not flicker
INFORMATIVE_SIGMA = 0.5  # a dimension the encoder pins down this much carries the digit


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
    if not model.variational:
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



def grid_codes(ranges, steps: int, rest=()) -> np.ndarray:
    """The codes (steps², 2 + len(rest)) of a steps×steps grid over the plane of the first two latent axes,
    ranges ((x_low, x_high), (y_low, y_high)), the other axes fixed at `rest`: row-major and laid out like the
    scatter plot (z1 grows to the right, z2 upward, so the top row holds the largest z2)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    (x0, x1), (y0, y1) = ranges[:2]
    xs, ys = np.linspace(x0, x1, steps), np.linspace(y1, y0, steps)
    return np.array([(x, y, *rest) for y in ys for x in xs], dtype=np.float32)


def decode_grid(model, ranges, steps: int = 20) -> np.ndarray:
    """A steps×steps grid over a 2-D latent plane (grid_codes), decoded: (steps², 28, 28)."""
    if model.latent_dim != 2:
        raise ValueError(f"a decoded grid needs a 2-D latent, this model's is {model.latent_dim}-D")
    return decode_points(model, grid_codes(ranges, steps))


def decode_slice(model, ranges, steps: int, z3: float) -> np.ndarray:
    """A 3-D latent cut at z3: the steps×steps grid over (z1, z2) with the third axis at `z3`, decoded."""
    if model.latent_dim != 3:
        raise ValueError(f"a slice needs a 3-D latent, this model's is {model.latent_dim}-D")
    return decode_points(model, grid_codes(ranges, steps, (z3,)))



@dataclass(frozen=True)
class Posterior:
    mean: np.ndarray  # (latent_dim,) the code the deterministic reconstruction decodes
    std: np.ndarray  # (latent_dim,) σ of q(z | x) per dimension, > 0


def _as_batch(image28: np.ndarray) -> torch.Tensor:
    image28 = np.asarray(image28, dtype=np.float32)
    if image28.shape != (28, 28):
        raise ValueError(f"expected a prepared 28×28 image, got shape {image28.shape}")
    return torch.from_numpy(image28).view(1, 1, 28, 28)


@torch.no_grad()
def posterior_of(model, image28: np.ndarray) -> Posterior | None:
    """q(z | x) of one prepared digit under a VAE; None for an AE (its code is a point)."""
    x = _as_batch(image28)
    if not model.variational:
        return None
    model.eval()
    q = model.posterior(x)
    return Posterior(q.mean[0].cpu().numpy(), q.stddev[0].cpu().numpy())


@torch.no_grad()
def sampled_reconstructions(model, image28: np.ndarray, count: int = SAMPLE_COUNT,
                            seed: int = SAMPLE_SEED) -> np.ndarray | None:
    """`count` decodings (count, 28, 28) of codes z ~ q(z | x), the same for a seed; None for an AE."""
    posterior = posterior_of(model, image28)
    if posterior is None:
        return None
    noise = torch.randn(count, posterior.mean.size, generator=torch.Generator().manual_seed(seed))
    z = torch.from_numpy(posterior.mean) + torch.from_numpy(posterior.std) * noise
    return model.decode(z)[:, 0].cpu().numpy()


def informative_dims(std: np.ndarray, below: float = INFORMATIVE_SIGMA) -> int:
    """How many latent dimensions have σ under `below`: those carry this digit. The others stay near
    the prior's σ = 1 (KL pushes unused dimensions there), so decoding ignores them."""
    return int((np.asarray(std) < below).sum())
