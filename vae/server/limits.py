"""Every limit a shared server puts on its visitors, in one place: training jobs, saved models, uploads and
what the pages keep per session. Read as `limits.LIMITS.<name>` (a test swaps LIMITS for a replaced copy).

README's "Limits" table is `LIMITS.markdown()`, checked by tests/test_limits.py; .streamlit/config.toml's
`server.maxUploadSize` must equal `upload_mb` (checked there too).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from ..train import TrainConfig


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Range(NamedTuple):
    """What the Retrain form offers for one setting, and what the server accepts from it."""
    low: float
    high: float
    default: float
    label: str


ALL_TRAINING_IMAGES = 60_000  # the whole MNIST training split: train on everything
# MNIST's training images per digit: a job's size is known before any data is loaded.
TRAINING_IMAGES_PER_DIGIT = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)

FORM_RANGES = MappingProxyType({  # TrainingSpec accepts wider ranges (for the CLI); these keep a run sensible
    "latent_dim": Range(1, 256, 16, "latent size"),
    "epochs": Range(1, 100, 5, "epochs"),
    "batch_size": Range(16, 4096, TrainConfig.batch_size, "batch size"),
    "lr": Range(1e-5, 1.0, TrainConfig.lr, "learning rate"),
    "beta": Range(0.0, 100.0, 1.0, "KL weight β"),
    "train_size": Range(100, ALL_TRAINING_IMAGES, ALL_TRAINING_IMAGES, "training-set size"),
})


@dataclass(frozen=True)
class Limits:
    # --- training jobs (vae/server/jobs.py) ---
    # One job per core: a job trains on one thread at full speed, and more jobs than cores only slow them all.
    job_slots: int = field(default_factory=available_cores)
    jobs_per_visitor: int = 1
    # epochs × images per job. The slowest settings the form allows (batch 16, latent 256) train ~1,200
    # images/s on one thread of a 2-core machine (scripts/bench_jobs.py): the largest job takes ~8 minutes.
    max_image_epochs: int = 600_000
    max_job_s: float = 20 * 60  # a job still running after this is stopped, whatever its estimate said
    form: MappingProxyType = field(default_factory=lambda: FORM_RANGES)
    lr_choices: tuple = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)
    # --- saved models (vae/server/registry.py) ---
    models_per_visitor: int = 10  # a visitor deletes one before training an eleventh
    visitor_models_on_server: int = 200  # tokens are free, so the per-visitor cap alone is not a limit
    name_length: int = 80  # characters of a model's name, without ".pt"
    # --- uploads (vae/server/uploads.py), checked from the header before any pixel is decoded ---
    upload_mb: int = 5  # = .streamlit/config.toml server.maxUploadSize: a digit image needs far less
    # A JPEG decodes at 1/2, 1/4 or 1/8 scale (Image.draft), so a large one costs little; a PNG decodes in
    # full, 4 bytes a pixel, and resizing RGBA copies it once more, so it gets the smaller budget.
    upload_pixels: int = 40_000_000  # JPEG
    full_decode_bytes: int = 32_000_000  # PNG (and progressive or CMYK JPEG): e.g. 3,264×2,448 RGBA
    aspect_ratio: int = 20  # a tall "1" is about 1:4; a 39,000,000×1 strip is no digit
    working_size: int = 1024  # px, longest side, before the image becomes floats
    # --- what a session keeps ---
    compared_digits: int = 5  # the Draw page's comparison table

    def markdown(self) -> str:
        """README's Limits table, written from these values (tests/test_limits.py keeps the two equal)."""
        rows = [
            ("trainings at once on the server", "one per CPU core of the machine it runs on"),
            ("trainings at once per visitor", f"{self.jobs_per_visitor}"),
            ("one job's size", f"{self.max_image_epochs:,} image-epochs (epochs × training images)"),
            ("one job's time", f"{self.max_job_s / 60:g} minutes, then it is stopped"),
            ("saved models per visitor", f"{self.models_per_visitor}"),
            ("visitors' models on the server", f"{self.visitor_models_on_server}"),
            ("upload size", f"{self.upload_mb} MB"),
            ("PNG decoded size", f"{self.full_decode_bytes / 1e6:g} MB ({self.full_decode_bytes // 4:,} RGBA pixels)"),
            ("JPEG size", f"{self.upload_pixels / 1e6:g} megapixels (decoded at a reduced scale)"),
            ("image aspect ratio", f"at most {self.aspect_ratio}:1"),
            ("working size of an image", f"{self.working_size} px, longest side"),
            ("digits compared on the Draw page", f"{self.compared_digits}"),
        ]
        return "\n".join(["| limit | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


LIMITS = Limits()
