"""Where to compute: the best device present (CUDA, then Apple's MPS, else the CPU), or the one asked for."""
from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → cuda if present, else mps, else cpu; a named device must be present (ValueError if not)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: no CUDA GPU is available to this PyTorch")
    if name == "mps" and not mps_available():
        raise ValueError("device mps: Apple's Metal backend is not available here")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """'CPU (2 threads)', 'CUDA: NVIDIA H100 80GB HBM3', 'Apple MPS' — for the sidebar and the CLI."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"
