"""How long Cancel takes to end a running Retrain job: from JobManager.cancel to the job's state being ended.

    MNIST_ROOT=/work/shared/data python scripts/bench_cancel.py [--rounds 3]

Starts a real training job (vae.server.jobs, a `python -m vae train` child process) in a temporary folder,
waits until it reports training steps, cancels it and times how long until the manager records it ended
(the Retrain panel's Cancel waits up to studio.retrain.CANCEL_WAIT_S for this, so the page shows it at
once). Prints a markdown table with the load average. Not a test: it only measures.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae.server import jobs  # noqa: E402
from vae.training_run import TrainingSpec  # noqa: E402


def one_cancel(manager: jobs.JobManager) -> float:
    job = manager.start(TrainingSpec(kind="ae", latent_dim=2, epochs=50, batch_size=16, train_size=4096))
    deadline = time.monotonic() + 600
    while manager.get(job.id).state != jobs.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into training
    start = time.perf_counter()
    manager.cancel(job.id)
    view = manager.wait(job.id, 30)
    seconds = time.perf_counter() - start
    if view.state != jobs.CANCELLED:
        raise RuntimeError(f"the job ended {view.state}, not cancelled")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        manager = jobs.JobManager(folder=folder)
        times = [one_cancel(manager) for _ in range(args.rounds)]
    print(f"load average {os.getloadavg()[0]:.2f}\n")
    print("| cancel → job ended (s), each | median |\n|---|---:|")
    print(f"| {', '.join(f'{t:.2f}' for t in times)} | {statistics.median(times):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
