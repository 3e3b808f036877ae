"""The report's convolutional AE and VAE on MNIST: models, data, training, checkpoints, analysis.

No Streamlit here: the app's pages only lay out what this package computes.

The names below are loaded on first use (PEP 562), not when the package is imported: `python -m vae
--help`, a training job's start and an upload's decoding then import only the modules they use.
"""
from __future__ import annotations

import importlib

__version__ = "0.5.0"  # the one place: pyproject.toml reads it

_EXPORTS = {  # name → the module that defines it
    "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "Spot": "correction", "calibrate_spot_level": "correction", "corrected_spots": "correction",
    "SCORES": "scores", "anomaly_score": "scores",
    "FALLBACK_SUBSET": "data", "FULL_MNIST": "data", "MnistData": "data", "load_mnist": "data",
    "ConvAE": "model", "ConvVAE": "model", "ModelConfig": "model", "build_model": "model",
    "prepare_array": "preprocess", "prepare_image": "preprocess",
    "Progress": "train", "TrainConfig": "train", "TrainingDiverged": "train", "TrainResult": "train",
    "evaluate_loss": "train",  # the training loop itself is vae.train.train: `vae.train` is its module
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
