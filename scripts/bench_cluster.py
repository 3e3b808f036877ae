"""Four visitors' jobs at once: on a local Ray cluster (vae/server/ray_jobs.py) against the local runner.

Starts a Ray head on 127.0.0.1 (`ray start --head --block --num-cpus N`, its own temp folder, stopped at the
end), connects the app's JobManager to it as $STUDIO_RAY_ADDRESS would, and times JOBS small jobs started at
once, alternately with the same jobs on the local runner (its slots: one per core, forked from the warm
process). Wall time from the first start to the last model saved, and each job's start → first step.
Round 1 of the cluster includes its workers importing PyTorch (a cold cluster); later rounds reuse them.
On a 2-core machine a head with --num-cpus 4 is oversubscribed: 4 one-thread jobs share 2 cores, so this
measures the plumbing, not a speed-up; a real cluster adds machines.

    MNIST_ROOT=/abs/path/to/data python scripts/bench_cluster.py [--rounds 2] [--jobs 4] [--cluster-cpus 4]
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae.server import jobs  # noqa: E402
from vae.server.limits import available_cores  # noqa: E402
from vae.training_run import TrainingSpec  # noqa: E402

JOB = TrainingSpec(kind="vae", latent_dim=16, epochs=1, batch_size=128, train_size=6000)


def start_head(cpus: int) -> tuple[subprocess.Popen, str, str]:
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_cli = Path(sys.executable).with_name("ray")
    command = [str(ray_cli) if ray_cli.exists() else "ray", "start", "--head", "--block", "--port", str(port),
               "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus), "--num-gpus", "0",
               "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", folder,
               "--object-store-memory", str(300 * 2**20)]
    with open(Path(folder) / "head.log", "w") as head_log:
        head = subprocess.Popen(command, stdout=head_log, stderr=subprocess.STDOUT)
    return head, f"127.0.0.1:{port}", folder


def connect(address: str):
    from vae.server.ray_jobs import RayRunner

    runner = RayRunner(address)
    assert runner.wait_ready(300), "could not connect to the Ray head"
    return runner


def run_batch(manager: jobs.JobManager, count: int) -> tuple[float, list[float]]:
    """(seconds from the first start to the last save, each job's start → first step)."""
    started = time.time()
    ids = [manager.start(JOB).id for _ in range(count)]
    views = [manager.wait(job_id, 1800) for job_id in ids]
    assert all(v.state == jobs.DONE for v in views), [v.error for v in views]
    return max(v.finished for v in views) - started, [v.first_report - v.started for v in views]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--cluster-cpus", type=int, default=4)
    args = parser.parse_args()
    token = Path(tempfile.mkdtemp(prefix="ray-token-")) / "token"  # Ray's token authentication, as the README says
    token.write_text(secrets.token_hex(32))
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))  # before ray is imported
    head, address, ray_folder = start_head(args.cluster_cpus)
    rows = []
    load_before = os.getloadavg()
    try:
        ray_runner = connect(address)
        local_runner = jobs.LocalRunner()
        assert jobs.warm_fork_server().ready.wait(300), "the warm process did not get ready"
        with tempfile.TemporaryDirectory() as folder:
            cluster = jobs.JobManager(folder=Path(folder) / "cluster", runner=ray_runner)
            local = jobs.JobManager(folder=Path(folder) / "local", runner=local_runner, cores=available_cores())
            for manager in (cluster, local):
                manager.folder.mkdir()
            for round_ in range(1, args.rounds + 1):  # alternate, so a busy moment of the machine hits both
                for name, manager in ((f"Ray, head --num-cpus {args.cluster_cpus}", cluster),
                                      ("local runner", local)):
                    wall, firsts = run_batch(manager, args.jobs)
                    rows.append((round_, name, manager.max_jobs, wall, statistics.median(firsts), max(firsts)))
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        head.terminate()
        head.wait(60)
        shutil.rmtree(ray_folder, ignore_errors=True)
        shutil.rmtree(token.parent, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"{args.jobs} jobs started at once ({jobs.describe_spec(JOB)}, batch {JOB.batch_size}); "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1-minute), "
          f"on {os.cpu_count()} cores\n")
    print("| round | where | jobs at once | first start → last model saved | start → first step, median / max |")
    print("|---|---|---|---|---|")
    for round_, name, slots, wall, first_median, first_max in rows:
        print(f"| {round_} | {name} | {slots} | {wall:.1f} s | {first_median:.1f} s / {first_max:.1f} s |")


if __name__ == "__main__":
    main()
