"""The generative side of one digit: how sure a VAE's encoder is of its code (the posterior σ per
latent dimension) and what decoding random codes drawn from that posterior gives. A plain AE has a
single code per image, so it has neither: the functions return None for it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SAMPLE_COUNT = 4  # sampled reconstructions shown beside the deterministic one
SAMPLE_SEED = 0  # the same samples on every rerun, so the page does not flicker
INFORMATIVE_SIGMA = 0.5  # a dimension the encoder pins down this much carries the digit


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
    if model.kind != "vae":
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
