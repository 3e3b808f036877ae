"""Where a Retrain job's time goes after its last training step: the phases between "last epoch" and "saved".

    MNIST_ROOT=/work/shared/data python scripts/bench_retrain_phases.py [--images 1000] [--threads 2]

Trains one small model (as the app's Retrain panel would: `vae.training_run.run_training`, 1 epoch of
`--images` images, in this process, `--threads` threads like one job on a 2-core server), then times each
phase `checkpoint_metadata` and the save run, and the whole of run_training after training, for each kind.
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
from vae.data import default_data_root, load_mnist  # noqa: E402


def timed_phases(kind: str, images: int, data) -> tuple[dict[str, float], float]:
    """({phase: seconds}, training seconds) of one run_training, phases as training_run reports them."""
    phases: dict[str, float] = {}
    marks: list[tuple[str, float]] = []

    def on_phase(name: str, *_):  # the phase callback: called as each phase starts
        marks.append((name, time.perf_counter()))

    spec = training_run.TrainingSpec(kind=kind, latent_dim=2, epochs=1, train_size=images)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        _, _, result = training_run.run_training(spec, folder=folder, data=data, on_phase=on_phase)
        end = time.perf_counter()
    marks.append(("end", end))
    for (name, at), (_, after) in zip(marks, marks[1:]):
        phases[name] = after - at
    phases["after training, in all"] = end - start - result.seconds
    return phases, result.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kinds", default="vae,ae")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(default_data_root())
    print(f"load average {os.getloadavg()[0]:.2f}, {args.threads} threads, {args.images:,} images × 1 epoch\n")
    print("| kind | phase | seconds |\n|---|---|---:|")
    for kind in args.kinds.split(","):
        phases, training = timed_phases(kind, args.images, data)
        print(f"| {kind} | training (1 epoch, incl. its test loss) | {training:.2f} |")
        for name, seconds in phases.items():
            print(f"| {kind} | {name} | {seconds:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
