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
    "epochs": Range(1, 100, TrainConfig.epochs, "epochs"),
    "batch_size": Range(16, 4096, TrainConfig.batch_size, "batch size"),
    # Up to 0.1: at 1.0 with batches of 64 a model can end far worse than untrained without diverging.
    "lr": Range(1e-5, 0.1, TrainConfig.lr, "learning rate"),
    "beta": Range(0.0, 100.0, 1.0, "KL weight β"),
    "train_size": Range(100, ALL_TRAINING_IMAGES, ALL_TRAINING_IMAGES, "training-set size"),
})


@dataclass(frozen=True)
class Limits:
    # --- training jobs (vae/server/jobs.py) ---
    # One job per core: a job trains on one thread at full speed, and more jobs than cores only slow them all.
    job_slots: int = field(default_factory=available_cores)
    jobs_per_visitor: int = 1  # running or waiting, per token (a URL's space)
    # Tokens are free (a new URL), addresses are not: per client address (traffic.address_key), at most this
    # many jobs running or waiting, and one running; jobs wait in one queue, first come first served among
    # the addresses with nothing running. So one person cannot hold every slot by minting tokens.
    jobs_per_address: int = 2
    running_jobs_per_address: int = 1
    waiting_jobs: int = 20  # on the whole server
    job_nice: int = 19  # jobs run at the lowest CPU priority: pages first (os.nice, in the job's process)
    progress_refresh_s: float = 5.0  # an open tab redraws its job's progress this often (0.003 core a tab)
    # epochs × images per job. The slowest settings the form allows (batch 16, latent 256) train ~1,200
    # images/s on one thread of a 2-core machine (scripts/bench_jobs.py): the largest job takes ~8 minutes.
    max_image_epochs: int = 600_000
    max_job_s: float = 20 * 60  # a job still running after this is stopped, whatever its estimate said
    form: MappingProxyType = field(default_factory=lambda: FORM_RANGES)
    lr_choices: tuple = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1)
    # --- saved models (vae/server/registry.py) ---
    models_per_visitor: int = 10  # a visitor deletes one before training an eleventh
    # Tokens are free, so these count too. When one is reached, a new job first makes room: the visitors'
    # models of that address (resp. of anyone) that no page has used for `model_idle_s` expire, the longest
    # unused first (registry.expire_unused: a page's use is written down in checkpoints/.last-used.json).
    # Only if none is that old is the job refused.
    models_per_address: int = 30
    visitor_models_on_server: int = 200
    model_idle_s: float = 3600.0
    note_use_s: float = 60.0  # a model's use is written down at most this often
    name_length: int = 80  # characters of a model's name, without ".pt"
    # Checkpoint metadata is checked before anything lists or renders it (registry.metadata_problem): nesting
    # deeper (a list 5,000 deep broke every page) or bigger (a 60 MB field slowed every rerun) is listed as
    # broken. The app writes 3 levels; the per-epoch history is ~200 bytes an epoch (1,000 epochs: 200 KB).
    metadata_depth: int = 8
    metadata_kb: int = 256  # its size as JSON, about
    # --- uploads (vae/server/uploads.py), checked from the header before any pixel is decoded ---
    upload_mb: int = 5  # = .streamlit/config.toml server.maxUploadSize: a digit image needs far less
    # A JPEG decodes at 1/2, 1/4 or 1/8 scale (Image.draft), so a large one costs little. A PNG (and a
    # progressive or CMYK JPEG) decodes in full: every copy the decode holds at once at full size counts
    # (uploads.decoded_bytes_per_pixel: 1 byte a pixel for gray, 8 for RGBA, which resizing copies once).
    upload_pixels: int = 40_000_000  # JPEG
    full_decode_bytes: int = 64_000_000  # e.g. 3,264×2,448 RGBA, or 5,656² gray; one upload peaks under 100 MB
    decodes_at_once: int = 2  # on the whole server: five bombs at once cost two decodes' memory
    aspect_ratio: int = 20  # a tall "1" is about 1:4; a 39,000,000×1 strip is no digit
    working_size: int = 1024  # px, longest side, before the image becomes floats
    # --- what a session keeps ---
    compared_digits: int = 5  # the Draw page's comparison table
    # --- one browser connection (vae/server/traffic.py, enforced by studio/guard.py) and its address ---
    # A connection runs the script whenever its browser asks. The script time it uses is taken from a bucket
    # of `script_burst_s` seconds refilled at `script_share` of a core, and its address's from one of its
    # own (an IPv6 address counts by its /64); the lower level is its credit. A rerun waits while the credit
    # is below zero, and while another address's script runs whose credit is higher by over `yield_margin_s`
    # (whoever used less lately goes first). Ordinary clicking never waits. Behind a NAT a class shares one
    # address (and its limits below).
    script_burst_s: float = 4.0
    script_share: float = 0.3  # of one core
    address_script_burst_s: float = 8.0
    address_script_share: float = 0.5
    yield_margin_s: float = 2.0
    # A rerun that would restart the connection's own run in progress (a flooding client's every one) yields at a
    # margin this small: a flood defers to other visitors' runs from its first second, not after its burst.
    restart_margin_s: float = 0.5
    messages_burst: int = 60  # any message from the browser: a burst, then a steady rate
    messages_per_s: float = 10.0
    address_messages_burst: int = 300
    address_messages_per_s: float = 30.0
    connections_per_address: int = 30  # open at once (tabs, windows); one more is refused until one closes
    new_connections_burst: int = 30  # each new connection runs the script once: opened at most this fast
    new_connections_per_s: float = 0.5
    # = .streamlit/config.toml server.maxMessageSize: a frame announcing more is refused from its header,
    # before its payload is read. It bounds the server's messages too: the largest, the Latent page's hover
    # view, is 0.53 MB.
    message_mb: int = 8
    # = .streamlit/config.toml server.maxWidgetStateSize: every widget value of one rerun together; a bigger
    # message closes its connection. A box around all 10,000 digits of one Latent plot sends 1.05 MB.
    widget_state_mb: int = 4

    def markdown(self) -> str:
        """README's Limits table, written from these values (tests/test_limits.py keeps the two equal)."""
        rows = [
            ("trainings at once on the server", "one per CPU core of the machine it runs on"),
            ("trainings per visitor", f"{self.jobs_per_visitor} running or waiting"),
            ("trainings per address", f"{self.jobs_per_address} running or waiting, {self.running_jobs_per_address} running; "
                                      f"{self.waiting_jobs} waiting on the server, first come first served"),
            ("a training's CPU priority", f"nice {self.job_nice} (the pages come first)"),
            ("progress refresh of an open tab", f"every {self.progress_refresh_s:g} s"),
            ("one job's size", f"{self.max_image_epochs:,} image-epochs (epochs × training images)"),
            ("one job's time", f"{self.max_job_s / 60:g} minutes, then it is stopped"),
            ("saved models per visitor", f"{self.models_per_visitor}"),
            ("saved models per address", f"{self.models_per_address}"),
            ("visitors' models on the server", f"{self.visitor_models_on_server}; at either cap, models unused for "
                                               f"{self.model_idle_s / 3600:g} h expire, the longest unused first"),
            ("a checkpoint's metadata", f"{self.metadata_depth} levels deep, {self.metadata_kb} KB as JSON"),
            ("upload size", f"{self.upload_mb} MB"),
            ("PNG decoded size", f"{self.full_decode_bytes / 1e6:g} MB at full size, every copy counted "
                                 f"({self.full_decode_bytes // 8:,} RGBA pixels, {self.full_decode_bytes:,} gray)"),
            ("images decoded at once", f"{self.decodes_at_once} on the whole server"),
            ("JPEG size", f"{self.upload_pixels / 1e6:g} megapixels (decoded at a reduced scale)"),
            ("image aspect ratio", f"at most {self.aspect_ratio}:1"),
            ("working size of an image", f"{self.working_size} px, longest side"),
            ("digits compared on the Draw page", f"{self.compared_digits}"),
            ("script time (credit)", f"a connection {self.script_share:g} of a core after {self.script_burst_s:g} s, "
                                     f"an address {self.address_script_share:g} after {self.address_script_burst_s:g} s; "
                                     f"a rerun waits while another address with {self.yield_margin_s:g} s more credit runs "
                                     f"({self.restart_margin_s:g} s if it restarts its own run)"),
            ("messages from one connection", f"{self.messages_per_s:g} a second after a burst of {self.messages_burst}"),
            ("messages from one address", f"{self.address_messages_per_s:g} a second after a burst of "
                                          f"{self.address_messages_burst}"),
            ("connections from one address", f"{self.connections_per_address} open; new ones "
                                             f"{self.new_connections_per_s:g} a second after {self.new_connections_burst}"),
            ("one message from a browser", f"{self.message_mb} MB, refused from its header"),
            ("widget values of one rerun", f"{self.widget_state_mb} MB"),
        ]
        return "\n".join(["| limit | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


LIMITS = Limits()
