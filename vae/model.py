"""The report's convolutional autoencoder and variational autoencoder, layer for layer.

Encoder (report §3.2):  1×28×28 → 4×14×14 → 16×7×7 → 64×3×3 → z×1×1
Decoder (report §3.2):  z×1×1 → 64×3×3 → 16×7×7 → 4×14×14 → 1×28×28
LeakyReLU after each layer, BatchNorm on the middle layers, convolutions without bias.
The VAE (report §3.3) replaces the last encoder conv with two heads of the same shape: the
posterior mean and, through softplus, its standard deviation.

Each forward pass has two paths over the same modules and weights, chosen once per model with
`use_device_kernels` (like nanoGPT's `self.flash`): the report's network called module by module,
readable as the report writes it, and on a CPU the same sums through faster kernels (vae/kernels.py,
matrix products for the 1×1 maps, channels-last where BatchNorm is faster). tests/test_model.py
holds the two paths to each other, values and gradients.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence

from .kernels import bce_per_image, strided_conv, strided_conv_transpose

MODEL_KINDS = ("ae", "vae", "fc-ae", "fc-vae")  # the report's conv models; the fully-connected baseline (vae/fc_model.py)
VARIATIONAL_KINDS = ("vae", "fc-vae")
# softplus can underflow to exactly 0 for very negative inputs; Normal needs scale > 0.
MIN_STD = 1e-5


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "vae"  # one of MODEL_KINDS
    latent_dim: int = 64
    beta: float = 1.0  # weight of the KL term (VAE only)

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if not (isinstance(self.latent_dim, int) and 1 <= self.latent_dim <= 1024):
            raise ValueError(f"latent size must be an integer from 1 to 1024, got {self.latent_dim!r}")
        if not (0.0 <= float(self.beta) <= 1000.0):
            raise ValueError(f"beta must be between 0 and 1000, got {self.beta!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class EncoderTrunk(nn.Module):
    """The first three encoder layers, shared by the AE and the VAE."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 4, 2, 1, bias=False)  # 14x14
        self.conv2 = nn.Conv2d(4, 16, 4, 2, 1, bias=False)  # 7x7
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 64, 3, 2, 0, bias=False)  # 3x3
        self.bn3 = nn.BatchNorm2d(64)
        self.relu = nn.LeakyReLU()
        self.fast = True  # the CPU kernels; set by _Autoencoder.use_device_kernels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast:  # the report's layers, module by module
            x = self.relu(self.conv1(x))  # (N, 4, 14, 14)
            x = self.relu(self.bn2(self.conv2(x)))  # (N, 16, 7, 7)
            return self.relu(self.bn3(self.conv3(x)))  # (N, 64, 3, 3)
        # BatchNorm over 16 and 64 channels is ~3× faster channels-last; the 4- and 1-channel maps stay NCHW.
        x = self.relu(self.conv1(x).contiguous(memory_format=torch.channels_last))  # (N, 4, 14, 14)
        # strided_conv(x, conv) == conv(x), with a faster backward pass (vae/kernels.py).
        x = self.relu(self.bn2(strided_conv(x, self.conv2)))  # (N, 16, 7, 7)
        x = self.relu(self.bn3(self.conv3(x)))  # (N, 64, 3, 3)
        return x


class Decoder(nn.Module):
    def __init__(self, latent_dim: int):
        super().__init__()
        self.conv4 = nn.ConvTranspose2d(latent_dim, 64, 3, 1, bias=False)  # 3x3
        self.bn4 = nn.BatchNorm2d(64)
        self.conv3 = nn.ConvTranspose2d(64, 16, 3, 2, bias=False)  # 7x7
        self.bn3 = nn.BatchNorm2d(16)
        self.conv2 = nn.ConvTranspose2d(16, 4, 4, 2, 1, bias=False)  # 14x14
        self.bn2 = nn.BatchNorm2d(4)
        self.conv1 = nn.ConvTranspose2d(4, 1, 4, 2, 1, bias=False)  # 28x28
        self.relu = nn.LeakyReLU()
        self.fast = True  # the CPU kernels; set by _Autoencoder.use_device_kernels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) → pixel logits (N, 1, 28, 28)."""
        if not self.fast:  # the report's layers, module by module
            x = self.relu(self.bn4(self.conv4(z.view(len(z), -1, 1, 1))))  # (N, 64, 3, 3)
            x = self.relu(self.bn3(self.conv3(x)))  # (N, 16, 7, 7)
            x = self.relu(self.bn2(self.conv2(x)))  # (N, 4, 14, 14)
            return self.conv1(x)  # (N, 1, 28, 28) logits; sigmoid gives pixels
        # conv4 on a 1×1 input is a matrix product with its weight: same result, about 3× faster.
        x = (z @ self.conv4.weight.flatten(1)).view(-1, 64, 3, 3)  # (N, 64, 3, 3)
        x = self.relu(self.bn4(x.contiguous(memory_format=torch.channels_last)))
        x = self.relu(self.bn3(self.conv3(x)))  # (N, 16, 7, 7)
        # strided_conv_transpose(x, conv, size) == conv(x), computed faster (vae/kernels.py).
        x = self.relu(self.bn2(strided_conv_transpose(x, self.conv2, 14).contiguous()))  # (N, 4, 14, 14)
        return strided_conv_transpose(x, self.conv1, 28)  # (N, 1, 28, 28) logits; sigmoid gives pixels


def conv_to_1x1(conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """A 3×3 unpadded conv over a 3×3 input, computed as the matrix product it is: (N, out).

    Flattened in (y, x, channel) order: a free view of the encoder's channels-last output, whose
    gradient then comes back channels-last too.
    """
    return F.linear(h.permute(0, 2, 3, 1).flatten(1), conv.weight.permute(0, 2, 3, 1).flatten(1))


def reconstruction_nats(logits: torch.Tensor, x: torch.Tensor, fast: bool = True) -> torch.Tensor:
    """Binary cross-entropy summed over the pixels of each image: (N,)."""
    if not fast:
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    return bce_per_image(logits, x)


class _Autoencoder(nn.Module):
    """What the AE and VAE share: the public API the app, CLI and tests use."""

    config: ModelConfig

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def variational(self) -> bool:
        """A VAE (conv or fully-connected): it has a posterior, a KL term and a prior to sample from."""
        return self.config.kind in VARIATIONAL_KINDS

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def fast(self) -> bool:
        return self.encoder.fast

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def use_device_kernels(self, device: torch.device | str | None = None) -> _Autoencoder:
        """Choose the forward path once, for the device the model runs on: the faster CPU kernels on a
        CPU, the report's modules as they are elsewhere (where cuDNN or MPS already do well)."""
        fast = torch.device(device if device is not None else self.device).type == "cpu"
        self.encoder.fast = self.decoder.fast = fast
        return self

    def head(self, conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
        """A 3×3 → 1×1 encoder head on the trunk's output: (N, latent_dim)."""
        return conv_to_1x1(conv, h) if self.fast else conv(h).flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) → images (N, 1, 28, 28) in [0, 1], on the model's device."""
        return torch.sigmoid(self.decoder(z.to(self.device)))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction (N, 1, 28, 28) in [0, 1]; the VAE decodes its mean."""
        return self.decode(self.embed(x))

    def per_image_loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image losses in nats, averaged over the batch: total, recon, kl."""
        return {name: value.mean() for name, value in self.per_image_loss(x).items()}


class DeterministicAutoencoder(_Autoencoder):
    """An AE (conv or fully-connected): a subclass gives embed(); z is that code, the loss is recon only."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(x)
        return self.decoder(z), z

    def per_image_loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, _ = self(x)
        recon = reconstruction_nats(logits, x, self.fast)
        return {"total": recon, "recon": recon, "kl": torch.zeros_like(recon)}


class VariationalAutoencoder(_Autoencoder):
    """A VAE (conv or fully-connected): a subclass gives posterior(); z by rsample, KL to N(0, 1)."""

    def posterior(self, x: torch.Tensor) -> Normal:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x).mean

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Normal]:
        q_z = self.posterior(x)
        return self.decoder(q_z.rsample()), q_z

    def per_image_loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, q_z = self(x)
        recon = reconstruction_nats(logits, x, self.fast)
        prior = Normal(torch.zeros_like(q_z.mean), torch.ones_like(q_z.stddev))
        kl = kl_divergence(q_z, prior).sum(1)
        return {"total": recon + self.config.beta * kl, "recon": recon, "kl": kl}


class ConvAE(DeterministicAutoencoder):
    """The plain convolutional autoencoder: deterministic z."""

    def __init__(self, latent_dim: int = 64):
        super().__init__()
        self.config = ModelConfig("ae", latent_dim)
        self.encoder = EncoderTrunk()
        # The report's forward() returns conv4's output as z with no activation after it.
        self.conv4 = nn.Conv2d(64, latent_dim, 3, 2, 0, bias=False)  # 1x1
        self.decoder = Decoder(latent_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) on any device → codes (N, z) on the model's device."""
        return self.head(self.conv4, self.encoder(x.to(self.device)))  # (N, z)


class ConvVAE(VariationalAutoencoder):
    """The convolutional VAE: posterior N(mean, softplus(.)), z by rsample, KL to N(0, 1)."""

    def __init__(self, latent_dim: int = 64, beta: float = 1.0):
        super().__init__()
        self.config = ModelConfig("vae", latent_dim, float(beta))
        self.encoder = EncoderTrunk()
        self.conv_mean = nn.Conv2d(64, latent_dim, 3, 2, 0, bias=False)  # 1x1
        self.conv_std = nn.Conv2d(64, latent_dim, 3, 2, 0, bias=False)  # 1x1
        self.decoder = Decoder(latent_dim)

    def posterior(self, x: torch.Tensor) -> Normal:
        """q(z | x) for images on any device, on the model's device."""
        h = self.encoder(x.to(self.device))  # (N, 64, 3, 3)
        mean = self.head(self.conv_mean, h)  # (N, z)
        std = F.softplus(self.head(self.conv_std, h)) + MIN_STD  # (N, z)
        return Normal(mean, std)



def build_model(kind: str, latent_dim: int, beta: float = 1.0, device: torch.device | str = "cpu") -> _Autoencoder:
    config = ModelConfig(kind, latent_dim, beta)  # validates
    from .fc_model import FcAE, FcVAE  # here: fc_model builds on this module

    model = {"ae": lambda: ConvAE(config.latent_dim), "vae": lambda: ConvVAE(config.latent_dim, config.beta),
             "fc-ae": lambda: FcAE(config.latent_dim), "fc-vae": lambda: FcVAE(config.latent_dim, config.beta)}[config.kind]()
    return model.to(device).use_device_kernels(device)
