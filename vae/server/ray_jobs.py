"""Training jobs as tasks on a Ray cluster, for a class: with $STUDIO_RAY_ADDRESS=host:port set, the
JobManager (jobs.py) runs every job here instead of on the server's cores (jobs.default_runner).

What stays on the server: the queue, the limits, who owns what, the messages, the model store. What moves:
the job's choices (a TrainingSpec) and the training images (put in Ray's object store once per server and
read by every task); the workers import this package from their own install of the same version (no data
or model files needed there). What comes back: the progress reports as they happen (the task is a Ray
streaming generator), and at the end the checkpoint's bytes, which the server loads as it loads any
checkpoint (weights_only: a cluster cannot send code) and writes itself, through the same atomic,
no-overwrite save as a local job, with the owner and origin the server decides. No shared file system.

- Each task asks for STUDIO_RAY_CPUS_PER_JOB CPUs (default 1) and trains with as many threads, at the local
  jobs' nice; where the cluster has GPUs, one GPU each (device auto then picks CUDA). The manager runs as
  many jobs at once as the cluster had room for when it connected (none before: jobs wait in the queue);
  the fair queue stays the manager's.
- Cancel: ray.cancel raises in the task, which stops the training at its next step and saves nothing; if it
  has not ended CANCEL_GRACE_S later, ray.cancel(force=True) ends its worker process.
- A failure in the training comes back as the command line's one-line message; a worker lost is "ended
  unexpectedly", with the detail in the server's log.
"""
from __future__ import annotations

import logging
import os
import queue
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")  # read when ray is imported: a Ray call made while not
import ray  # noqa: E402  (connected raises, instead of starting a local cluster on the server)

from ..checkpoint import CheckpointError, default_checkpoint_path, load_checkpoint, save_checkpoint
from ..cli import REPORT_EVERY_S  # reports as often as the command line's --progress json
from ..training_run import TrainingSpec
from . import limits
from .jobs import CANCEL_GRACE_S  # the same grace as a local job's

CPUS_PER_JOB_SETTING = "STUDIO_RAY_CPUS_PER_JOB"

log = logging.getLogger(__name__)


# --- on a worker ---------------------------------------------------------------------------------------

def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@ray.remote
def train_on_cluster(spec: TrainingSpec, data, threads: int, nice: int) -> Iterator[dict]:
    """A Ray task that trains `spec` on `data` (MnistData) and yields {"event": "progress", "progress": …}
    as the command line reports, then {"event": "checkpoint", "data": bytes}, or {"event": "error",
    "message": …} (the command line's line), or {"event": "stopped"} if it was cancelled meanwhile."""
    import torch

    from ..data import DataUnavailable
    from ..train import TrainingDiverged
    from ..training_run import run_training

    if nice and hasattr(os, "nice"):
        os.nice(max(0, nice - os.nice(0)))  # a worker runs many tasks: lowered once, not once per task
    reports: queue.Queue = queue.Queue()
    stop = threading.Event()
    last_report = [0.0]

    def on_progress(progress) -> bool:
        now = time.perf_counter()
        if progress.epoch_end or now - last_report[0] >= REPORT_EVERY_S:
            last_report[0] = now
            reports.put({"event": "progress", "progress": asdict(progress)})
        return stop.is_set()

    def work() -> None:
        try:
            torch.set_num_threads(threads)
            with tempfile.TemporaryDirectory(prefix="studio-job-") as folder:
                path, _, _ = run_training(spec, folder=folder, data=data, on_progress=on_progress)
                reports.put({"event": "stopped"} if path is None else {"event": "checkpoint", "data": path.read_bytes()})
        except (ValueError, CheckpointError, DataUnavailable, TrainingDiverged, OSError) as exc:
            reports.put({"event": "error", "message": _first_line(exc)})  # what `python -m vae train` prints
        except Exception as exc:
            traceback.print_exc()  # into the worker's log
            reports.put({"event": "error", "message": f"the training ended unexpectedly on the cluster "
                                                      f"({type(exc).__name__}); nothing was saved"})

    trainer = threading.Thread(target=work, name="train", daemon=True)
    trainer.start()
    try:
        while True:
            try:
                event = reports.get(timeout=0.2)  # back in Python often: a cancel is raised here
            except queue.Empty:
                continue
            yield event
            if event["event"] != "progress":
                return
    finally:
        stop.set()  # cancelled: the training stops at its next step
        trainer.join()


# --- on the server -------------------------------------------------------------------------------------

def save_returned_checkpoint(data: bytes, spec: TrainingSpec, folder: Path, owner: str | None,
                             origin: str | None) -> Path:
    """Write a checkpoint a task sent back, as a local job writes its own: loaded first (weights_only, so
    bytes from a cluster cannot run code here; CheckpointError if they are no checkpoint of the asked
    model), owner and origin set by the server, saved atomically under a new name in `folder`."""
    with tempfile.TemporaryDirectory(prefix="studio-received-") as received:
        path = Path(received) / "returned.pt"
        path.write_bytes(data)
        model, metadata = load_checkpoint(path)
    if (model.kind, model.latent_dim) != (spec.kind, spec.latent_dim):
        raise CheckpointError(f"the cluster sent back a {model.kind} z={model.latent_dim}, not the "
                              f"{spec.kind} z={spec.latent_dim} asked for; nothing was saved")
    metadata = {k: v for k, v in metadata.items() if k not in ("owner", "origin")}
    metadata.update({k: v for k, v in (("owner", owner), ("origin", origin)) if v is not None})
    while True:  # a job finishing in the same second may take the chosen name before we write it
        path = default_checkpoint_path(spec.kind, spec.latent_dim, spec.digits, folder)
        try:
            return save_checkpoint(model, path, metadata, overwrite=False)
        except FileExistsError:
            if not path.exists():
                raise


class RayJob:
    """One job as a task on the cluster (jobs.RunningJob)."""

    pid = None

    def __init__(self, task, spec: TrainingSpec, folder: Path, owner: str | None, origin: str | None):
        self._task, self._spec, self._folder, self._owner, self._origin = task, spec, folder, owner, origin
        self._ended = threading.Event()
        self._saved = False
        self._error: str | None = None

    def reports(self) -> Iterator[dict]:
        try:
            for ref in self._task:
                event = ray.get(ref)
                if event.get("event") == "progress":
                    yield event
                elif event.get("event") == "checkpoint":
                    path = save_returned_checkpoint(event["data"], self._spec, self._folder, self._owner, self._origin)
                    self._saved = True
                    yield {"event": "done", "path": str(path)}
                elif event.get("event") == "error":
                    self._error = str(event.get("message"))
        except ray.exceptions.TaskCancelledError:
            pass  # the manager knows it asked for it
        except (CheckpointError, OSError) as exc:  # saving here
            self._error = str(exc)
        except ray.exceptions.RayError as exc:  # a worker or node lost, an object gone
            log.warning("a training task on the cluster failed: %r", exc)
            self._error = f"the training ended unexpectedly on the cluster ({type(exc).__name__}); nothing was saved"
        finally:
            self._ended.set()

    def set_threads(self, threads: int) -> None:
        """A task keeps the CPUs it asked the cluster for."""

    def stop(self) -> None:
        if self._ended.is_set():
            return
        ray.cancel(self._task)
        timer = threading.Timer(CANCEL_GRACE_S, self._force_stop)
        timer.daemon = True
        timer.start()

    def _force_stop(self) -> None:
        if not self._ended.is_set():
            ray.cancel(self._task, force=True)

    def outcome(self) -> tuple[bool, str | None]:
        self._ended.wait()
        return self._saved, self._error


class RayRunner:
    """Jobs on the Ray cluster at `address` (jobs.JobRunner). It connects, and puts the training images in the
    cluster's object store, in the background (ray.init waits minutes for a head that is down): until then it
    has no slots, so jobs wait in the manager's queue; a failed connection is logged and tried again."""

    shares_cores = False
    RETRY_S = 30.0

    def __init__(self, address: str, data_root: str | None = None, cpus_per_job: int | None = None):
        self.address, self.data_root = address, data_root
        self.cpus_per_job = cpus_per_job or int(os.environ.get(CPUS_PER_JOB_SETTING) or 1)
        self.slots = 0  # none until connected
        self._ready = threading.Event()
        self._callbacks: list = []
        self._lock = threading.Lock()
        threading.Thread(target=self._connect, name="ray-connect", daemon=True).start()

    def _connect(self) -> None:
        from ..data import load_mnist

        while True:
            try:
                data = load_mnist(self.data_root)
                if not ray.is_initialized():
                    ray.init(address=self.address, log_to_driver=False)
                resources = ray.cluster_resources()
                self.gpus_per_job = 1 if resources.get("GPU", 0) >= 1 else 0
                room = int(resources.get("GPU", 0)) if self.gpus_per_job else int(resources.get("CPU", 0) // self.cpus_per_job)
                self._data = ray.put(data)
                self._task = train_on_cluster.options(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job)
                break
            except Exception as exc:
                log.error("cannot use the Ray cluster at %s (%r); training jobs wait; trying again in %g s",
                          self.address, exc, self.RETRY_S)
                time.sleep(self.RETRY_S)
        log.info("training jobs run on the Ray cluster at %s: %d at once", self.address, max(1, room))
        with self._lock:
            self.slots = max(1, room)
            self._ready.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def when_ready(self, callback) -> None:
        """callback() once connected (at once if it is)."""
        with self._lock:
            if not self._ready.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def launch(self, spec, folder, data_root, owner, origin, threads) -> RayJob:
        task = self._task.remote(spec, self._data, self.cpus_per_job, limits.LIMITS.job_nice)
        return RayJob(task, spec, Path(folder), owner, origin)
