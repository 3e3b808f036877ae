"""Where a Retrain job's time goes after its last training step, before and after issue #18.

    MNIST_ROOT=/work/shared/data python scripts/bench_retrain_phases.py [--images 1000] [--threads 2] [--kinds vae,ae]

For each kind: trains a z=2 model on `--images` images for 1 epoch through `vae.training_run.run_training` (as a
Retrain job does, with `--threads` threads as one job on a 2-core server), recording when each phase reported
after training starts (Progress.phase) and the ETA reported when training ended; then, on the same model, the
work the job did after training before (the test loss again, the spot level calibrated on 1,000 digits).
Prints a markdown table with the load average. Not a test: it only measures.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae import training_run  # noqa: E402
from vae.correction import calibrate_spot_level  # noqa: E402
from vae.data import default_data_root, load_mnist  # noqa: E402
from vae.model import build_model  # noqa: E402
from vae.train import evaluate_loss  # noqa: E402


def now_phases(kind: str, images: int, data) -> tuple[dict[str, float], float, float]:
    """({phase: seconds}, seconds after training in all, ETA reported at the end of training) of one job."""
    marks: list[tuple[str, float]] = []
    eta_at_end = [0.0]

    def on_progress(p):
        if not marks or marks[-1][0] != p.phase:
            marks.append((p.phase, time.perf_counter()))
        if p.phase == "training" and p.epoch_end and p.epoch == p.epochs:
            eta_at_end[0] = p.eta_s
            marks.append(("after training", time.perf_counter()))

    spec = training_run.TrainingSpec(kind=kind, latent_dim=2, epochs=1, train_size=images)
    with tempfile.TemporaryDirectory() as folder:
        training_run.run_training(spec, folder=folder, data=data, on_progress=on_progress)
        marks.append(("end", time.perf_counter()))
    first = next(i for i, (name, _) in enumerate(marks) if name == "after training")
    after = marks[first:]
    phases = {("test loss" if name == "after training" else name): later - t
              for (name, t), (_, later) in zip(after, after[1:])}
    return phases, after[-1][1] - after[0][1], eta_at_end[0]


def before_seconds(kind: str, images: int, data) -> float:
    """What the job did after training before: the test loss again, the train loss, 1,000 digits calibrated."""
    data = data.select(None, images, seed=0)
    torch.manual_seed(0)
    model = build_model(kind, 2, 1.0)
    start = time.perf_counter()
    evaluate_loss(model, data.train_images)
    evaluate_loss(model, data.test_images)
    calibrate_spot_level(model, data.train_images)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", default="vae,ae")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(default_data_root())
    print(f"load average {os.getloadavg()[0]:.2f}, {args.threads} threads, {args.images:,} images × 1 epoch\n")
    print("| kind | after training, before (s) | after training, now (s) | now: by phase (s) | ETA at training's end (s) |")
    print("|---|---:|---:|---|---:|")
    for kind in args.kinds.split(","):
        phases, after, eta = now_phases(kind, args.images, data)
        before = before_seconds(kind, args.images, data)
        by_phase = ", ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items())
        print(f"| {kind} | {before:.1f} | {after:.1f} | {by_phase} | {eta:.1f} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
