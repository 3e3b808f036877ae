"""Moving digits: the position shifts and small rotations of the report's §1–2 argument, zero-filled.

Pure functions on tensors (N, 1, 28, 28) or one 28×28 array: the shift benchmark, the trainer's
shift augmentation and the Draw page's shift control all move a digit through `shift_images`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# The four directions a benchmark shift of k px takes, one per image: (dy, dx) per pixel of shift.
DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))


def shift_images(images: torch.Tensor, dy, dx) -> torch.Tensor:
    """Move each image down by dy and right by dx pixels (negative: up, left); uncovered pixels are 0,
    ink moved past the edge is lost. dy, dx: ints, or (N,) integer tensors, one shift per image."""
    n, _, height, width = images.shape
    device = images.device
    dy = torch.as_tensor(dy, dtype=torch.long, device=device).expand(n)
    dx = torch.as_tensor(dx, dtype=torch.long, device=device).expand(n)
    pad = int(max(dy.abs().max(), dx.abs().max())) if n else 0
    if pad == 0:
        return images.clone()
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = (pad - dy)[:, None] + torch.arange(height, device=device)  # (N, H): the padded row each output row reads
    cols = (pad - dx)[:, None] + torch.arange(width, device=device)  # (N, W)
    return padded[torch.arange(n, device=device)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def shift_digit(image28: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """One 28×28 digit moved by (dy, dx) pixels, zero-filled: what the Draw page's shift control feeds the models."""
    image = torch.from_numpy(np.ascontiguousarray(image28, dtype=np.float32))[None, None]
    return shift_images(image, int(dy), int(dx))[0, 0].numpy()


def random_shifts(images: torch.Tensor, max_px: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own (dy, dx), each drawn uniformly from −max_px…max_px: training with shifts."""
    n = len(images)
    dy = torch.randint(-max_px, max_px + 1, (n,), generator=generator)
    dx = torch.randint(-max_px, max_px + 1, (n,), generator=generator)
    return shift_images(images, dy.to(images.device), dx.to(images.device))


def shift_along_random_axis(images: torch.Tensor, px: int, seed: int = 0) -> torch.Tensor:
    """Each image moved `px` pixels up, down, left or right (one of DIRECTIONS per image, seeded)."""
    choice = torch.randint(len(DIRECTIONS), (len(images),), generator=torch.Generator().manual_seed(seed))
    steps = torch.tensor(DIRECTIONS)[choice]  # (N, 2)
    return shift_images(images, steps[:, 0] * px, steps[:, 1] * px)


def rotate_images(images: torch.Tensor, degrees: float, seed: int = 0) -> torch.Tensor:
    """Each image turned by `degrees` about its centre, clockwise or anticlockwise (seeded), bilinear, zero-filled.
    uint8 in, uint8 out; float in, float out."""
    was_uint8 = images.dtype == torch.uint8
    x = images.float()
    signs = torch.randint(2, (len(x),), generator=torch.Generator().manual_seed(seed)).float() * 2 - 1
    angle = signs * math.radians(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    turned = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return turned.round().clamp(0, 255).to(torch.uint8) if was_uint8 else turned
