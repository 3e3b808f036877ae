"""One training run end to end — data, model, trainer, checkpoint — shared by the CLI and the app."""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import check_writable_folder, checkpoint_dir, default_checkpoint_path, is_shipped, save_checkpoint
from .correction import calibrate_spot_level
from .data import MnistData, load_mnist
from .model import ModelConfig, build_model
from .train import ProgressCallback, TrainConfig, TrainResult, evaluate_loss, train


def parse_digits(text) -> tuple[int, ...] | None:
    """'0,1,7' → (0, 1, 7); None, '' or 'all' → None (every digit). ValueError on anything else."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "all")):
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        digits = sorted({int(str(p).strip()) for p in parts if str(p).strip() != ""})
    except ValueError:
        raise ValueError(f"digits must be a comma-separated list of 0–9, got {text!r}") from None
    if not digits or any(d < 0 or d > 9 for d in digits):
        raise ValueError(f"digits must be a comma-separated list of 0–9, got {text!r}")
    return None if len(digits) == 10 else tuple(digits)


@dataclass(frozen=True)
class TrainingSpec:
    """Everything a user chooses for one run; validated on creation."""

    kind: str = "vae"
    latent_dim: int = 64
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    lr: float = TrainConfig.lr
    beta: float = 1.0
    digits: tuple[int, ...] | None = None  # None: all ten
    train_size: int | None = None  # None: the whole training split
    seed: int = 0
    device: str = "auto"  # where to train: vae.devices.pick_device

    def __post_init__(self):
        ModelConfig(self.kind, self.latent_dim, self.beta)
        self.train_config()
        if self.train_size is not None and not (isinstance(self.train_size, int) and self.train_size >= 2):
            raise ValueError(f"training-set size must be at least 2 images, got {self.train_size!r}")
        if self.digits is not None:
            object.__setattr__(self, "digits", parse_digits(",".join(map(str, self.digits))))

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                           device=self.device)


def checkpoint_metadata(model, data: MnistData, spec: TrainingSpec, result: TrainResult) -> dict:
    return {
        "kind": model.kind,
        "latent_dim": model.latent_dim,
        "beta": model.config.beta,
        "epochs": result.epochs_done,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "seed": spec.seed,
        "digits": list(spec.digits) if spec.digits else None,
        "train_images": len(data.train_images),
        "data_source": data.source,
        "train_loss": evaluate_loss(model, data.train_images),
        "test_loss": evaluate_loss(model, data.test_images),
        "spot_level": calibrate_spot_level(model, data.train_images),  # on the images it was trained on
        "device": str(model.device),
        "train_seconds": round(result.seconds, 1),
        "images_per_s": round(result.images_per_s),
        "history": result.history,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }


def check_destination(out: str | Path | None = None, folder: str | Path | None = None, force: bool = False) -> None:
    """Raise, before any training, if the model could not be saved where asked: a shipped model (never
    overwritten), an existing file without `force`, a missing or unwritable folder."""
    if out is None:
        check_writable_folder(folder if folder is not None else checkpoint_dir())
        return
    out = Path(out)
    if is_shipped(out):
        raise PermissionError(f"{out} is a shipped model and is never overwritten; choose another --out")
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder; --out names the checkpoint file")
    if (out.exists() or out.is_symlink()) and not force:
        raise FileExistsError(f"{out} already exists; choose another --out, or pass --force to overwrite it")
    check_writable_folder(out.parent)


def run_training(spec: TrainingSpec, out: str | Path | None = None, folder: str | Path | None = None,
                 data: MnistData | None = None, data_root: str | None = None,
                 on_progress: ProgressCallback | None = None, force: bool = False,
                 owner: str | None = None, origin: str | None = None) -> tuple[Path | None, dict | None, TrainResult]:
    """Train and save atomically. Returns (path, metadata, result); path is None if stopped early.

    `out` is refused if it exists (unless `force`) or is a shipped model; the checks run before training.
    `owner` (a registry.owner_key) is stored in the metadata: that visitor may rename and delete the model;
    `origin` (a registry.origin_key) too: the address it was trained from, for the app's per-address counts.
    Raises TrainingDiverged (nothing saved), ValueError for bad choices, OSError for a bad destination.
    """
    check_destination(out, folder, force)
    data = (data or load_mnist(data_root)).select(spec.digits, spec.train_size, seed=spec.seed)
    torch.manual_seed(spec.seed)  # the same spec gives the same initial weights
    model = build_model(spec.kind, spec.latent_dim, spec.beta)
    result = train(model, data, spec.train_config(), on_progress)
    if result.stopped:
        return None, None, result
    metadata = checkpoint_metadata(model, data, spec, result)
    if owner is not None:
        metadata["owner"] = owner
    if origin is not None:
        metadata["origin"] = origin
    if out:
        return save_checkpoint(model, out, metadata, overwrite=force), metadata, result
    while True:  # a run finishing in the same second may take the chosen name before we write it
        path = default_checkpoint_path(spec.kind, spec.latent_dim, spec.digits, folder)
        try:
            return save_checkpoint(model, path, metadata, overwrite=False), metadata, result
        except FileExistsError:
            if not path.exists():  # not a name clash (e.g. the folder is a file): a real error
                raise
