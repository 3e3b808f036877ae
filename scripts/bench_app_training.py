"""Is training from the app as fast as `python -m vae train`? One full-MNIST epoch each, same spec.

    MNIST_ROOT=/work/shared/data python scripts/bench_app_training.py [--rounds 2]

The app's way: vae.jobs.JobManager, i.e. a spawned child process reporting progress through a pipe.
The CLI's way: `python -m vae train` in a subprocess. Both train the default model (VAE, latent 64,
batch 256) for one epoch into a temporary folder and record the trainer's own images per second in the
checkpoint, which this script reads back. Start-up (Python, torch, MNIST) is shown separately as wall
time. Rounds alternate app and CLI so that a change in the machine's load hits both alike; the ratio
of the medians is printed (the goal: app ≥ 0.8 × CLI). Not a test: it only measures.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae import jobs, load_checkpoint  # noqa: E402
from vae.data import default_data_root  # noqa: E402
from vae.training_run import TrainingSpec  # noqa: E402

SPEC = TrainingSpec(epochs=1)  # the CLI's defaults: VAE, latent 64, batch 256, peak lr 1e-2, seed 0


def train_through_app(folder: Path, data_root: str) -> tuple[float, float]:
    """(images/s while training, wall seconds) of one job run by the app's JobManager."""
    manager = jobs.JobManager(folder=folder, data_root=data_root)
    start = time.perf_counter()
    job = manager.wait(manager.start(SPEC).id, timeout=3600)
    wall = time.perf_counter() - start
    if job.state != jobs.DONE:
        raise SystemExit(f"app training did not finish: {job.state} {job.error or ''}")
    return load_checkpoint(job.path)[1]["images_per_s"], wall


def train_through_cli(folder: Path, data_root: str) -> tuple[float, float]:
    out = folder / "cli.pt"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "vae", "train", "--model", SPEC.kind, "--latent", str(SPEC.latent_dim),
               "--epochs", str(SPEC.epochs), "--batch-size", str(SPEC.batch_size), "--lr", str(SPEC.lr),
               "--data-root", data_root, "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"python -m vae train failed: {done.stderr.strip().splitlines()[-1:]}")
    return load_checkpoint(out)[1]["images_per_s"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="app+CLI pairs to run (default 1)")
    parser.add_argument("--data-root", default=default_data_root())
    args = parser.parse_args()
    print(f"{jobs.describe_spec(SPEC)}, batch {SPEC.batch_size}; {jobs.available_cores()} CPU cores; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rates = {"app": [], "cli": []}
    for round_number in range(1, args.rounds + 1):
        for name, run in (("app", train_through_app), ("cli", train_through_cli)):
            with tempfile.TemporaryDirectory() as tmp:
                rate, wall = run(Path(tmp), args.data_root)
            rates[name].append(rate)
            print(f"round {round_number} {name}: {rate:7,.0f} images/s while training, {wall:5.1f} s wall "
                  f"(load average now {os.getloadavg()[0]:.1f})", flush=True)
    app, cli = statistics.median(rates["app"]), statistics.median(rates["cli"])
    print(f"app {app:,.0f} images/s, python -m vae train {cli:,.0f} images/s: ratio app/cli = {app / cli:.2f}")


if __name__ == "__main__":
    main()
