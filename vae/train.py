"""The trainer: knows nothing of the UI, reports through a callback (after minGPT's trainer).

Speed comes from keeping each split as one uint8 tensor and slicing shuffled batches out of it
(no Dataset, DataLoader or per-sample transforms), fused Adam, keeping freed memory in the process,
and the model's own faster kernels (vae/model.py, vae/kernels.py). The recipe — TrainConfig's
defaults: 10 epochs of batches of 64, a one-cycle learning rate peaking at 1e-2 — is the one with
the lowest loss after 10 epochs on images held out of the training split (scripts/recipe_benchmark.py);
the CLI, the training spec and the app's Retrain form all read it from there.
"""
from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from .data import MnistData, to_float
from .devices import DEVICE_CHOICES, pick_device
from .shifts import random_shifts

# mallopt(3) parameters.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Stop glibc from returning each step's freed activation memory to the OS.

    By default it hands the multi-megabyte tensors of one step back and page-faults them in
    again on the next: about 3,000 page faults per 256-image step. Process-wide; a no-op where
    the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or exploded; the model must not be saved."""


# The one-cycle schedule starts from lr / WARMUP_DIVISOR.
WARMUP_DIVISOR = 10.0
# A healthy run never climbs far above its first loss (an untrained decoder's ~550 nats/image).
EXPLOSION_FACTOR = 10.0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64  # with lr 1e-2: the lowest validation loss after 10 epochs (README "Training speed")
    lr: float = 1e-2  # peak learning rate of the one-cycle schedule
    warmup: float = 0.1  # share of the steps that warm the learning rate up from lr/10 to lr
    seed: int = 0
    evaluate_each_epoch: bool = True  # test loss after every epoch (10,000 images: ~0.5 s)
    device: str = "auto"  # "auto" (CUDA, then MPS, else CPU), "cpu", "cuda" or "mps"
    # Train with shifts (the report's §2 remedy for a model that is not shift-tolerant): each training
    # image moved by its own random (dy, dx) of up to this many pixels, anew in every batch. 0: as it is.
    shift_px: int = 0

    def __post_init__(self):
        checks = [
            (isinstance(self.shift_px, int) and 0 <= self.shift_px <= 8, f"shift must be 0 to 8 px, got {self.shift_px!r}"),
            (isinstance(self.epochs, int) and 1 <= self.epochs <= 1000, f"epochs must be 1 to 1000, got {self.epochs!r}"),
            (isinstance(self.batch_size, int) and 2 <= self.batch_size <= 8192,
             f"batch size must be 2 to 8192, got {self.batch_size!r}"),
            (isinstance(self.lr, (int, float)) and 0 < self.lr <= 10, f"learning rate must be in (0, 10], got {self.lr!r}"),
            (isinstance(self.warmup, (int, float)) and 0 < self.warmup < 1, f"warm-up must be in (0, 1), got {self.warmup!r}"),
            (self.device in DEVICE_CHOICES, f"device must be one of {', '.join(DEVICE_CHOICES)}, got {self.device!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    """What the callback sees, after every step and once more at the end of each epoch."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    images_seen: int
    images_per_s: float
    eta_s: float
    train_loss: dict[str, float]  # running mean over this epoch so far
    test_loss: dict[str, float] | None = None  # set on the end-of-epoch report
    epoch_end: bool = False
    phase: str = "training"  # after training: vae.training_run.PHASES ("calibrating", …)
    phase_done: int = 0  # within a phase after training: how far it is (e.g. digits calibrated of phase_total)
    phase_total: int = 0
    reported_at: float = field(default_factory=time.time)  # wall clock: a watcher counts eta_s down from here
    lr: float = 0.0  # the learning rate of this step (learning_rate_schedule); the last step's at an epoch end

    @property
    def fraction_done(self) -> float:
        return ((self.epoch - 1) * self.steps_per_epoch + self.step) / (self.epochs * self.steps_per_epoch)


@dataclass
class TrainResult:
    stopped: bool  # the callback asked to stop: the model is only partly trained
    epochs_done: int
    seconds: float
    images_per_s: float
    history: list[dict] = field(default_factory=list)  # one row per epoch: epoch, train_*, test_*


def format_duration(seconds: float) -> str:
    """'2m13s', or '45s' under a minute: an ETA or a run's length."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


ProgressCallback = Callable[[Progress], "bool | None"]
TEST_SPEEDUP = 3.0  # evaluating an image's loss against training on it (forward only, big batches): a first guess


def test_seconds(measured: float | None, test_images: int, training_rate: float) -> float:
    """One epoch's test-loss time for the ETA: as last measured, else guessed from the training speed."""
    return measured if measured is not None else test_images / (TEST_SPEEDUP * max(training_rate, 1e-9))


def learning_rate_schedule(optimizer, config: TrainConfig, total_steps: int):
    """One cycle over the whole run: a warm-up from lr/10 to config.lr over the first `config.warmup` of
    the steps, then cosine annealing to ~0 (lr/1e5). The high peak learns fast early on; the long anneal
    settles the model. Step it once after every optimizer step."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps,
                                               pct_start=config.warmup, div_factor=WARMUP_DIVISOR,
                                               final_div_factor=1e4)


@torch.no_grad()
def evaluate_loss(model, images: torch.Tensor, batch_size: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean per-image loss (total, recon, kl) over uint8 images, on the model's device; the VAE's
    sampling is seeded."""
    was_training = model.training
    model.eval()
    device = model.device
    sums = {"total": 0.0, "recon": 0.0, "kl": 0.0}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(images), batch_size):
            losses = model.per_image_loss(to_float(images[start:start + batch_size].to(device)))
            for name in sums:
                sums[name] += float(losses[name].sum())
    model.train(was_training)
    return {name: value / max(len(images), 1) for name, value in sums.items()}


def train(model, data: MnistData, config: TrainConfig = TrainConfig(),
          on_progress: ProgressCallback | None = None) -> TrainResult:
    """Train `model` in place on data.train_images, on config.device. The callback returns True to stop early.

    Raises TrainingDiverged on a NaN or infinite loss. Seeded: the same inputs give the same model.
    The model stays on that device (its forward path chosen for it); checkpoints are saved on the CPU.
    """
    device = pick_device(config.device)
    model.to(device).use_device_kernels(device)
    torch.manual_seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    shifts = torch.Generator().manual_seed(config.seed + 1)  # its own stream: shifting leaves the order unchanged
    images = data.train_images.to(device)  # uint8: 47 MB for all of MNIST, once, not per batch
    n = len(images)
    if n < 2:
        raise ValueError("training needs at least 2 images")
    batch_size = min(config.batch_size, n)
    steps_per_epoch = n // batch_size  # the few left over are drawn in other epochs' shuffles
    total_steps = steps_per_epoch * config.epochs

    if device.type == "cpu":
        keep_freed_memory()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=device.type in ("cpu", "cuda"))
    schedule = learning_rate_schedule(optimizer, config, total_steps)
    history: list[dict] = []
    start = time.perf_counter()
    testing_s, last_test_s = 0.0, None  # seconds spent on the test loss; the last one's
    images_seen = 0
    first_loss = None
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(n, generator=shuffle).to(device)
        sums = {"total": 0.0, "recon": 0.0, "kl": 0.0}
        for step in range(1, steps_per_epoch + 1):
            batch = images[order[(step - 1) * batch_size: step * batch_size]]
            if config.shift_px:
                batch = random_shifts(batch, config.shift_px, shifts)
            x = to_float(batch)
            losses = model.loss(x)
            total = losses["total"]
            value = float(total.detach())  # float() of a tensor that requires grad warns on stderr
            first_loss = value if first_loss is None else first_loss
            if not math.isfinite(value) or value > EXPLOSION_FACTOR * first_loss:
                what = f"became {value}" if not math.isfinite(value) else f"exploded to {value:,.0f}"
                raise TrainingDiverged(
                    f"loss {what} at epoch {epoch}, step {step}: training stopped and nothing was saved; "
                    f"try a smaller learning rate (now {config.lr:g})")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            lr = schedule.get_last_lr()[0]  # the rate this step used
            schedule.step()

            images_seen += len(x)
            for name in sums:
                sums[name] += float(losses[name].detach())
            if on_progress is not None:
                rate = images_seen / max(time.perf_counter() - start - testing_s, 1e-9)  # training steps alone
                steps_done = (epoch - 1) * steps_per_epoch + step
                tests_left = (config.epochs - epoch + 1) * config.evaluate_each_epoch
                progress = Progress(epoch, config.epochs, step, steps_per_epoch, images_seen, rate,
                                    (total_steps - steps_done) * batch_size / rate
                                    + tests_left * test_seconds(last_test_s, len(data.test_images), rate),
                                    {k: v / step for k, v in sums.items()}, lr=lr)
                if on_progress(progress):
                    return TrainResult(True, epoch - 1, time.perf_counter() - start, rate, history)

        row = {"epoch": epoch, **{f"train_{k}": v / steps_per_epoch for k, v in sums.items()}}
        testing_from = time.perf_counter()
        test_loss = evaluate_loss(model, data.test_images) if config.evaluate_each_epoch else None
        tested_s = time.perf_counter() - testing_from
        testing_s += tested_s
        if config.evaluate_each_epoch:
            last_test_s = tested_s
        if test_loss is not None:
            if not math.isfinite(test_loss["total"]) or test_loss["total"] > EXPLOSION_FACTOR * first_loss:
                raise TrainingDiverged(
                    f"test loss exploded to {test_loss['total']:,.0f} after epoch {epoch}: nothing was saved; "
                    f"try a smaller learning rate (now {config.lr:g})")
            row.update({f"test_{k}": v for k, v in test_loss.items()})
        history.append(row)
        if on_progress is not None:
            rate = images_seen / max(time.perf_counter() - start - testing_s, 1e-9)
            tests_left = (config.epochs - epoch) * config.evaluate_each_epoch
            done = Progress(epoch, config.epochs, steps_per_epoch, steps_per_epoch, images_seen, rate,
                            (config.epochs - epoch) * steps_per_epoch * batch_size / rate
                            + tests_left * test_seconds(last_test_s, len(data.test_images), rate),
                            {k: v / steps_per_epoch for k, v in sums.items()}, test_loss, epoch_end=True, lr=lr)
            if on_progress(done) and epoch < config.epochs:  # a stop after the last epoch is a finish
                return TrainResult(True, epoch, time.perf_counter() - start, rate, history)

    model.eval()
    elapsed = time.perf_counter() - start
    return TrainResult(False, config.epochs, elapsed, images_seen / max(elapsed, 1e-9), history)
