"""Two numbers behind the app's training jobs (vae/jobs.py), measured on this machine.

1. Job start → first training step, alternately: a job of the app's JobManager forked from the warm
   process (vae/server/forkserver.py: PyTorch and the trainer already imported), the same job as a fresh
   `python -m vae train` process (how jobs started before), and that command started by hand. The warm
   process is started, and waited for, before the first round: a server starts it long before a
   visitor's job. Printed as a markdown table, with the load average.
2. The slowest settings the sidebar form allows (batch 16, latent 256) on one thread — what a job
   gets with a second job beside it on 2 cores — and the minutes the largest allowed job
   (LIMITS.max_image_epochs) then takes, test evaluation after every epoch included.

    MNIST_ROOT=/abs/path/to/data python scripts/bench_jobs.py [--rounds 5] [--start-only]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae.data import default_data_root  # noqa: E402
from vae.server import jobs  # noqa: E402
from vae.server.limits import LIMITS  # noqa: E402
from vae.training_run import TrainingSpec  # noqa: E402

TINY = TrainingSpec(kind="vae", latent_dim=2, epochs=1, batch_size=128, train_size=2048)


def app_job_start(folder: Path, warm: bool) -> float:
    manager = jobs.JobManager(folder=folder, cores=1, runner=jobs.LocalRunner(warm=warm))
    view = manager.wait(manager.start(TINY).id, 300)
    assert view.state == jobs.DONE, view.error
    return view.first_report - view.started


def cli_start(folder: Path) -> float:
    command = jobs.train_command(TINY, folder, default_data_root(), None, threads=1)
    started = time.time()
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, cwd=ROOT)
    first = None
    for line in child.stdout:
        if first is None and json.loads(line).get("event") == "progress":
            first = time.time() - started
    child.wait()
    return first


def slowest_allowed_speed() -> tuple[float, float]:
    """(images/s at batch 16, latent 256, 1 thread; seconds for one test-set evaluation) on real MNIST."""
    import torch

    from vae.data import load_mnist
    from vae.model import build_model
    from vae.train import TrainConfig, evaluate_loss, train

    torch.set_num_threads(1)
    data = load_mnist().select(train_size=8192)
    model = build_model("vae", LIMITS.form["latent_dim"].high)
    result = train(model, data, TrainConfig(epochs=1, batch_size=LIMITS.form["batch_size"].low,
                                            evaluate_each_epoch=False))
    started = time.perf_counter()
    evaluate_loss(model, data.test_images)
    return result.images_per_s, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--start-only", action="store_true", help="only the job-start table")
    args = parser.parse_args()
    assert jobs.warm_fork_server().ready.wait(300), "the warm process did not get ready"
    times = {"app job, forked from the warm process (now)": [], "app job, fresh process (before)": [],
             "`python -m vae train` by hand": []}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):  # alternate, so a busy moment of the machine hits all three
            forked, fresh, by_hand = times.values()
            forked.append(app_job_start(Path(folder), warm=True))
            fresh.append(app_job_start(Path(folder), warm=False))
            by_hand.append(cli_start(Path(folder)))
    load_after = os.getloadavg()
    print(f"Job start → first training step ({TINY.train_size:,} images, batch {TINY.batch_size}, 1 thread), "
          f"{args.rounds} rounds alternating; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
          f"(1-minute), on {os.cpu_count()} cores\n")
    print("| how the job starts | median | min | max | every round (s) |")
    print("|---|---|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} s | {max(values):.2f} s | "
              f"{', '.join(f'{v:.2f}' for v in values)} |")
    ratio = statistics.median(times["app job, fresh process (before)"]) / statistics.median(
        times["app job, forked from the warm process (now)"])
    print(f"\nfresh / forked, medians: {ratio:.1f}×")
    if args.start_only:
        return
    speed, evaluation_s = slowest_allowed_speed()
    epochs = LIMITS.form["epochs"].high
    worst_s = LIMITS.max_image_epochs / speed + epochs * evaluation_s
    print(f"slowest allowed settings, 1 thread: {speed:,.0f} images/s, test evaluation {evaluation_s:.1f} s")
    print(f"largest allowed job ({LIMITS.max_image_epochs:,} image-epochs, up to {epochs} evaluations): "
          f"{worst_s / 60:.1f} minutes")


if __name__ == "__main__":
    main()
