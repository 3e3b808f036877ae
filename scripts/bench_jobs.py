"""Two numbers behind the app's training jobs (vae/jobs.py), measured on this machine.

1. Job start → first training step: a job started by the app's JobManager against the same
   `python -m vae train` started by hand. The app's jobs are that command, so the two should match;
   before, a job re-ran the Streamlit script (app.py) in its child before training.
2. The slowest settings the sidebar form allows (batch 16, latent 256) on one thread — what a job
   gets with a second job beside it on 2 cores — and the minutes the largest allowed job
   (LIMITS.max_image_epochs) then takes, test evaluation after every epoch included.

    MNIST_ROOT=/abs/path/to/data python scripts/bench_jobs.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
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


def app_job_start(folder: Path) -> float:
    manager = jobs.JobManager(folder=folder, cores=1)
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
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    app, cli = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):  # alternate, so a busy moment of the machine hits both
            app.append(app_job_start(Path(folder)))
            cli.append(cli_start(Path(folder)))
    print(f"job start → first step, app (JobManager): median {statistics.median(app):.1f} s  {[round(t, 1) for t in app]}")
    print(f"job start → first step, CLI by hand:      median {statistics.median(cli):.1f} s  {[round(t, 1) for t in cli]}")
    speed, evaluation_s = slowest_allowed_speed()
    epochs = LIMITS.form["epochs"].high
    worst_s = LIMITS.max_image_epochs / speed + epochs * evaluation_s
    print(f"slowest allowed settings, 1 thread: {speed:,.0f} images/s, test evaluation {evaluation_s:.1f} s")
    print(f"largest allowed job ({LIMITS.max_image_epochs:,} image-epochs, up to {epochs} evaluations): "
          f"{worst_s / 60:.1f} minutes")


if __name__ == "__main__":
    main()
