"""One training run end to end — data, model, trainer, checkpoint — shared by the CLI and the app."""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .checkpoint import check_writable_folder, checkpoint_dir, default_checkpoint_path, is_shipped, save_checkpoint
from .correction import CALIBRATION_IMAGES, PROJECTION_STEPS, calibrate_spot_level
from .data import MnistData, load_mnist
from .model import ModelConfig, build_model
from .train import Progress, ProgressCallback, TrainConfig, TrainResult, evaluate_loss, format_duration, train

# The spot level (vae/correction.py) is calibrated on up to CALIBRATION_IMAGES training digits, each fitted by 100
# Adam steps through the decoder: one digit costs as much as training on ~CALIBRATION_COST images, so 1,000 of
# them took 14 s (load 5) to 57–83 s (a busier machine) after a 1,000-image job that trained in 5 s
# (scripts/bench_retrain_phases.py). A small job
# calibrates on a quarter of its images, at least SMALL_JOB_CALIBRATION: on vae-z64, 250 digits gave levels
# 0.794 and 0.812 (two samples) against 0.828 and 0.786 from two samples of 1,000: within the sampling spread.
SMALL_JOB_CALIBRATION = 250
REPORT_EVERY_STEPS = 10  # of the calibration's Adam steps
CALIBRATION_COST = 17.0  # training images' time per calibrated digit (vae z=2, load 5: 5.7 s for 250; only the ETA)
EVALUATION_COST = 0.3  # training images' time per image whose loss is evaluated (only for the ETA)
PHASES = {  # Progress.phase → what a visitor reads while it runs
    "training": "Training",
    "scoring": "Measuring the loss on the training images",
    "calibrating": "Calibrating the spots",
    "saving": "Saving the model",
}


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


def calibration_size(n_train: int) -> int:
    """How many of a job's training images calibrate its spot level: all up to SMALL_JOB_CALIBRATION, then a
    quarter of them, at most CALIBRATION_IMAGES (what the shipped models used)."""
    return min(n_train, CALIBRATION_IMAGES, max(SMALL_JOB_CALIBRATION, n_train // 4))


def after_training_s(n_train: int, images_per_s: float) -> float:
    """Estimated seconds of the phases after the last epoch at this training speed (the loss on the training
    images, the spot calibration; the test loss is the last epoch's)."""
    work = EVALUATION_COST * n_train + CALIBRATION_COST * calibration_size(n_train)
    return work / max(images_per_s, 1e-9)


def calibrate_with_progress(model, train_images: torch.Tensor, n: int, report=None, seed: int = 0) -> float:
    """vae.correction.calibrate_spot_level on `n` sampled training images (the same sample, all fitted at once as
    there: in chunks of 50 it took 3–5× longer), with `report(done, total)` every REPORT_EVERY_STEPS Adam steps."""
    def on_step(done: int, total: int) -> None:
        if report is not None and (done % REPORT_EVERY_STEPS == 0 or done == total):
            report(done, total)

    return calibrate_spot_level(model, train_images, n, seed, on_step)


def checkpoint_metadata(model, data: MnistData, spec: TrainingSpec, result: TrainResult, phase=None) -> dict:
    """The checkpoint's metadata; `phase(name, done, total)` is called as each slow part starts and moves on."""
    phase = phase or (lambda *_: None)
    last = result.history[-1] if result.history else {}
    if "test_total" in last:  # the last epoch's test loss: the same model, the same seeded evaluation
        test_loss = {name: last[f"test_{name}"] for name in ("total", "recon", "kl")}
    else:
        test_loss = evaluate_loss(model, data.test_images)
    phase("scoring", 0, 1)
    train_loss = evaluate_loss(model, data.train_images)
    n_calibration = calibration_size(len(data.train_images))
    phase("calibrating", 0, PROJECTION_STEPS)
    spot_level = calibrate_with_progress(model, data.train_images, n_calibration,  # on the images it was trained on
                                         lambda done, total: phase("calibrating", done, total))
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
        "train_loss": train_loss,
        "test_loss": test_loss,
        "spot_level": spot_level,
        "spot_calibration_images": n_calibration,
        "device": str(model.device),
        "train_seconds": round(result.seconds, 1),
        "images_per_s": round(result.images_per_s),
        "history": result.history,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }


class PhaseReports:
    """Wraps a training's progress callback: every report's ETA also counts the phases after training, and
    those phases are reported too (Progress.phase), with an ETA from their own measured speed."""

    def __init__(self, on_progress: ProgressCallback | None, n_train: int):
        self.on_progress, self.n_train = on_progress, n_train
        self.last: Progress | None = None
        self.phase_started: dict[str, float] = {}

    def __call__(self, p: Progress):
        self.last = p
        if self.on_progress is None:
            return None
        return self.on_progress(replace(p, eta_s=p.eta_s + after_training_s(self.n_train, p.images_per_s)))

    def phase(self, name: str, done: int, total: int) -> None:
        if self.on_progress is None or self.last is None:
            return
        now = time.perf_counter()
        started = self.phase_started.setdefault(name, now)
        rate = self.last.images_per_s
        if name == "calibrating" and done > 0:  # its own measured speed from here on
            left = (now - started) / done * (total - done)
        elif name == "calibrating":
            left = CALIBRATION_COST * calibration_size(self.n_train) / max(rate, 1e-9)
        elif name == "scoring":
            left = after_training_s(self.n_train, rate)
        else:
            left = 0.0
        self.on_progress(replace(self.last, phase=name, phase_done=done, phase_total=total, eta_s=left,
                                 test_loss=None, epoch_end=False, reported_at=time.time()))


def progress_line(p: Progress | None, now: float) -> str:
    """What a running job is doing and about how long it has left, counted down from its last report:
    'Epoch 2/5 · 7,812 img/s · about 1m05s left', 'Calibrating the spots: step 60 of 100 · about 4s left'.
    Past its estimate it says 'finishing' rather than a frozen or zero time."""
    if p is None:
        return "Starting: loading PyTorch and MNIST…"
    left = p.eta_s - max(now - p.reported_at, 0.0)
    when = f"about {format_duration(left)} left" if left >= 1 else "finishing…"
    if p.phase == "training":
        return f"Epoch {p.epoch}/{p.epochs} · {p.images_per_s:,.0f} img/s · {when}"
    what = PHASES.get(p.phase, p.phase)
    if p.phase == "calibrating" and p.phase_total:
        what += f": step {p.phase_done} of {p.phase_total}"
    return f"{what} · {when}"


def progress_fraction(p: Progress | None, first_report: float | None, now: float) -> float:
    """The share of the job done, by time: elapsed since the first report over elapsed plus the time left."""
    if p is None or first_report is None:
        return 0.0
    elapsed = max(now - first_report, 0.0)
    left = max(p.eta_s - max(now - p.reported_at, 0.0), 0.0)
    return min(elapsed / (elapsed + left), 0.99) if elapsed + left > 0 else 0.0


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
    reports = PhaseReports(on_progress, len(data.train_images))
    result = train(model, data, spec.train_config(), reports)
    if result.stopped:
        return None, None, result
    metadata = checkpoint_metadata(model, data, spec, result, reports.phase)
    reports.phase("saving", 0, 1)
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
