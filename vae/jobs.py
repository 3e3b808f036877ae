"""Background training jobs for the app: start, watch, cancel; no Streamlit here.

Design, and why:
- Each job trains in its own child process (multiprocessing, 'spawn'). A thread would share the
  Streamlit server's GIL, so the pages would stutter and two jobs would slow each other down; a
  process also can be stopped for sure. 'spawn' rather than 'fork' because forking a server that
  runs threads (Streamlit's, torch's) can copy a held lock into the child and hang it.
- The child calls `run_training` — the same code as `python -m vae train`, so the same speed —
  and sends Progress snapshots back through a one-way Pipe (one sender, one reader: a Queue's
  feeder thread adds nothing). It reports at most every REPORT_EVERY_S, and at every epoch end.
- Cancel sets an Event that the progress callback checks after every training step (~30 ms). The
  callback raises rather than returning True, because returning True at the last report still saves
  a (fully trained) model. If the child has not exited CANCEL_GRACE_S later — it may still be loading
  MNIST — it is terminated; that is safe because `run_training` writes nothing until training ends.
  Once the last epoch has been reported the model is being scored and saved atomically: from then on
  a job can no longer be cancelled (`cancel` says so), so a kill never interrupts a save.
- One JobManager per server process (`shared_manager`), jobs keyed by id, each remembering the browser
  session that started it. Jobs outlive the tab: a daemon thread per job reads the pipe and records
  the outcome whether or not anyone watches; the saved model then simply appears in the folder.
- At most MAX_JOBS at once. CPU threads are split between running jobs (cores // jobs, at least one)
  and rebalanced while they run, through a shared integer the child reads at each step.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import CHECKPOINT_DIR
from .cli import format_duration
from .data import default_data_root
from .train import Progress, TrainingDiverged
from .training_run import TrainingSpec

MAX_JOBS = 2  # the machine has 2 cores: a third job would only slow the other two down
REPORT_EVERY_S = 0.2  # the UI refreshes once a second; 5 points a second draw a smooth curve
CANCEL_GRACE_S = 2.0
EXIT_GRACE_S = 30.0  # after its report, the time a child gets to exit by itself
KEEP_FINISHED = 20  # finished jobs remembered (their messages), oldest forgotten first
STALE_TEMP_AGE_S = 3600.0  # a save's temp file this old belongs to a process that died mid-write

STARTING, RUNNING, SAVING, DONE, FAILED, CANCELLED = "starting", "running", "saving", "done", "failed", "cancelled"
ACTIVE_STATES = (STARTING, RUNNING, SAVING)

# What the app offers. TrainingSpec accepts wider ranges (for the CLI); these keep a run sensible
# for a laptop-sized CPU and a sidebar.
APP_LIMITS = {
    "latent_dim": (1, 256, "latent size"),
    "epochs": (1, 200, "epochs"),
    "batch_size": (16, 4096, "batch size"),
    "lr": (1e-5, 1.0, "learning rate"),
    "beta": (0.0, 100.0, "KL weight β"),
    "train_size": (100, 60_000, "training-set size"),
}
ALL_TRAINING_IMAGES = 60_000  # the whole MNIST training split: train on everything
LR_CHOICES = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)


class JobLimitReached(RuntimeError):
    """MAX_JOBS trainings already run on this server."""


class _Cancelled(Exception):
    """Raised inside the child's progress callback to stop training without saving."""


def spec_from_form(kind: str, latent_dim: int, epochs: int, batch_size: int, lr: float, beta: float,
                   digits, train_size: int | None) -> TrainingSpec:
    """The app's choices as a TrainingSpec; ValueError with one clear sentence if any is out of range.

    digits: an iterable of 0–9 (empty: all ten). train_size: None or ALL_TRAINING_IMAGES: every image.
    beta only matters for a VAE, so an AE gets the default whatever the form held.
    """
    values = {"latent_dim": latent_dim, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "beta": beta if kind == "vae" else 1.0, "train_size": train_size}
    for name, (low, high, label) in APP_LIMITS.items():
        value = values[name]
        if name == "train_size" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"{label} must be between {low:g} and {high:,g}, got {value!r}")
    digits = tuple(sorted(set(int(d) for d in digits))) if digits else None
    if train_size is not None and train_size >= ALL_TRAINING_IMAGES:
        train_size = None
    return TrainingSpec(kind=kind, latent_dim=int(latent_dim), epochs=int(epochs), batch_size=int(batch_size),
                        lr=float(lr), beta=float(values["beta"]), digits=digits,
                        train_size=None if train_size is None else int(train_size))


def describe_spec(spec: TrainingSpec) -> str:
    """'VAE z=16 · 5 epochs · digits 0,1 · 1,000 images' for lists and messages."""
    parts = [f"{spec.kind.upper()} z={spec.latent_dim}", f"{spec.epochs} epoch{'s' if spec.epochs != 1 else ''}"]
    if spec.kind == "vae" and spec.beta != 1.0:
        parts.append(f"β={spec.beta:g}")
    parts.append(f"digits {','.join(map(str, spec.digits))}" if spec.digits else "all digits")
    parts.append(f"{spec.train_size:,} images" if spec.train_size else "all images")
    return " · ".join(parts)


def curve_points(progress: Progress) -> list[tuple[float, str, float]]:
    """Loss-curve points of one report: (position in epochs, "train" or "test", nats/image).

    The train value is the running mean over the epoch so far, placed at the fraction of epochs done.
    """
    points = [((progress.epoch - 1) + progress.step / progress.steps_per_epoch, "train",
               progress.train_loss["total"])]
    if progress.epoch_end and progress.test_loss is not None:
        points.append((float(progress.epoch), "test", progress.test_loss["total"]))
    return points


def save_failure_message(exc: OSError, folder) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    return (f"could not save the model in {folder}: {reason}{where}. Nothing was saved, "
            f"and your other models and the current selection are untouched.")


@dataclass(frozen=True)
class JobView:
    """A consistent snapshot of one job, for the UI and tests."""

    id: str
    spec: TrainingSpec
    owner: str | None
    state: str
    progress: Progress | None
    curve: tuple[tuple[float, str, float], ...]
    path: Path | None
    error: str | None
    cancel_requested: bool
    started: float
    finished: float | None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def fraction_done(self) -> float:
        return 0.0 if self.progress is None else min(max(self.progress.fraction_done, 0.0), 1.0)

    @property
    def status_line(self) -> str:
        """'Epoch 2/5 · 7,812 img/s · ETA 1m05s', or what the job is doing or how it ended."""
        if self.state == STARTING:
            return "Starting: loading PyTorch and MNIST…"
        if self.state == SAVING:
            return "Scoring and saving the model…"
        if self.state == RUNNING and self.progress is not None:
            p = self.progress
            return f"Epoch {p.epoch}/{p.epochs} · {p.images_per_s:,.0f} img/s · ETA {format_duration(p.eta_s)}"
        return self.outcome

    @property
    def outcome(self) -> str:
        if self.state == DONE:
            late = " (it had finished before the cancel arrived)" if self.cancel_requested else ""
            return f"Saved {self.path.name}{late}."
        if self.state == FAILED:
            return f"Training failed: {self.error}"
        if self.state == CANCELLED:
            return "Cancelled: nothing was saved."
        return self.state


@dataclass
class _Job:
    id: str
    spec: TrainingSpec
    owner: str | None
    process: multiprocessing.process.BaseProcess
    messages: object  # the parent's end of the pipe
    cancel_event: object
    threads: object  # shared int: torch threads the child should use
    state: str = STARTING
    progress: Progress | None = None
    curve: list = field(default_factory=list)
    path: Path | None = None
    error: str | None = None
    cancel_requested_at: float | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def view(self) -> JobView:
        return JobView(self.id, self.spec, self.owner, self.state, self.progress, tuple(self.curve), self.path,
                       self.error, self.cancel_requested_at is not None, self.started, self.finished)


def _train_in_child(spec: TrainingSpec, folder: str, data_root: str, messages, cancel_event, threads) -> None:
    """The child process: train, save, send ("progress", Progress) … then one of done/failed/cancelled."""
    import torch

    from .training_run import run_training

    torch.set_num_threads(threads.value)
    used_threads, last_sent = threads.value, 0.0

    def report(progress: Progress) -> None:
        nonlocal used_threads, last_sent
        if cancel_event.is_set():
            raise _Cancelled
        if threads.value != used_threads:  # another job started or ended
            used_threads = threads.value
            torch.set_num_threads(used_threads)
        now = time.monotonic()
        if progress.epoch_end or now - last_sent >= REPORT_EVERY_S:
            messages.send(("progress", progress))
            last_sent = now

    try:
        path, _, _ = run_training(spec, folder=folder, data_root=data_root, on_progress=report)
        messages.send((DONE, str(path)))
    except _Cancelled:
        messages.send((CANCELLED, None))
    except TrainingDiverged as exc:
        messages.send((FAILED, str(exc)))
    except OSError as exc:  # the data is in memory by now: this is the save
        messages.send((FAILED, save_failure_message(exc, folder)))
    except Exception as exc:  # e.g. no images of the chosen digits, or no MNIST at all
        messages.send((FAILED, f"{type(exc).__name__}: {exc}"))
    finally:
        messages.close()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def clean_stale_temp_files(folder: str | os.PathLike, older_than_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove save_checkpoint's temp files ('.name.pt.XXXX.tmp') left by a process killed mid-save.

    Only old ones: a young temp file may belong to a save in progress elsewhere.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(".*.pt.*.tmp"):
        try:
            if tmp.is_file() and time.time() - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            pass
    return removed


class JobManager:
    """Starts training jobs in child processes and keeps their latest state. Thread-safe."""

    def __init__(self, folder: str | os.PathLike = CHECKPOINT_DIR, data_root: str | None = None,
                 max_jobs: int = MAX_JOBS, cores: int | None = None):
        self.folder = Path(folder)
        self.data_root = data_root or default_data_root()
        self.max_jobs = max_jobs
        self.cores = cores or available_cores()
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("spawn")
        clean_stale_temp_files(self.folder)

    # --- asking -------------------------------------------------------------------------------
    def jobs(self, owner: str | None = None) -> list[JobView]:
        """Snapshots, oldest first; only those started by `owner` if given."""
        with self._lock:
            return [job.view() for job in self._jobs.values() if owner is None or job.owner == owner]

    def get(self, job_id: str) -> JobView:
        with self._lock:
            return self._jobs[job_id].view()

    def active_count(self) -> int:
        with self._lock:
            return sum(job.state in ACTIVE_STATES for job in self._jobs.values())

    def wait(self, job_id: str, timeout: float) -> JobView:
        """Block until the job has ended or `timeout` seconds passed; its latest snapshot either way."""
        deadline = time.monotonic() + timeout
        view = self.get(job_id)
        while view.active and time.monotonic() < deadline:
            time.sleep(0.1)
            view = self.get(job_id)
        return view

    # --- acting -------------------------------------------------------------------------------
    def start(self, spec: TrainingSpec, owner: str | None = None) -> JobView:
        """Start training in the background. Raises JobLimitReached when MAX_JOBS already run."""
        if not isinstance(spec, TrainingSpec):
            raise TypeError("start() needs a TrainingSpec")
        with self._lock:
            running = sum(job.state in ACTIVE_STATES for job in self._jobs.values())
            if running >= self.max_jobs:
                raise JobLimitReached(
                    f"{running} trainings are already running on this server (it has {self.cores} CPU "
                    f"core{'s' if self.cores != 1 else ''}); wait for one to finish or cancel it.")
            receiver, sender = self._context.Pipe(duplex=False)
            threads = self._context.RawValue("i", max(1, self.cores // (running + 1)))
            cancel_event = self._context.Event()
            job_id = uuid.uuid4().hex[:12]
            # daemon: if the server stops, its trainings stop too (nothing half-saved: see module docs)
            process = self._context.Process(
                target=_train_in_child, name=f"vae-train-{job_id}", daemon=True,
                args=(spec, str(self.folder), self.data_root, sender, cancel_event, threads))
            process.start()
            sender.close()  # the child holds the only sender, so its exit shows as end-of-pipe here
            job = _Job(job_id, spec, owner, process, receiver, cancel_event, threads)
            self._jobs[job_id] = job
            self._rebalance_threads()
            self._forget_oldest_finished()
        threading.Thread(target=self._watch, args=(job,), name=f"watch-{job_id}", daemon=True).start()
        return job.view()

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop; it saves nothing. False if it has ended or is already saving its model."""
        with self._lock:
            job = self._jobs[job_id]
            if job.state not in (STARTING, RUNNING):
                return False
            if job.cancel_requested_at is None:
                job.cancel_requested_at = time.monotonic()
            job.cancel_event.set()
            return True

    def forget(self, job_id: str) -> None:
        """Drop an ended job from the list (the user dismissed its message)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.state not in ACTIVE_STATES:
                del self._jobs[job_id]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every job and wait for them (for tests and scripts)."""
        for view in self.jobs():
            if view.active:
                self.cancel(view.id)
        for view in self.jobs():
            self.wait(view.id, timeout)

    # --- inside -------------------------------------------------------------------------------
    def _rebalance_threads(self) -> None:
        """Called with the lock held: share the cores among the running jobs."""
        active = [job for job in self._jobs.values() if job.state in ACTIVE_STATES]
        for job in active:
            job.threads.value = max(1, self.cores // len(active))

    def _forget_oldest_finished(self) -> None:
        finished = [job for job in self._jobs.values() if job.state not in ACTIVE_STATES]
        for job in sorted(finished, key=lambda j: j.finished or 0.0)[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]

    def _record(self, job: _Job, kind: str, payload) -> None:
        with self._lock:
            if kind == "progress":
                job.progress = payload
                job.curve.extend(curve_points(payload))
                last_report = payload.epoch_end and payload.epoch == payload.epochs
                job.state = SAVING if last_report else RUNNING
            elif kind == DONE:
                job.state, job.path = DONE, Path(payload)
            elif kind == FAILED:
                job.state, job.error = FAILED, payload
            elif kind == CANCELLED:
                job.state = CANCELLED

    def _watch(self, job: _Job) -> None:
        """Read the child's reports until it exits; stop it if a cancel is not obeyed in time."""
        while True:
            try:
                if job.messages.poll(0.2):
                    self._record(job, *job.messages.recv())
                    continue
            except (EOFError, OSError):  # the child closed its end: it has exited
                break
            except Exception:  # a report cut off by a kill cannot be unpickled: the child is gone
                break
            if self._overdue_cancel(job):
                job.process.terminate()
                job.process.join(1.0)
                if job.process.is_alive():
                    job.process.kill()
            if not job.process.is_alive() and not job.messages.poll(0):
                break
        # It has said its last word (or died). Exiting can take seconds on a busy machine; wait, then
        # make sure it goes — it has nothing left to save — and reap it, or it lingers as a zombie.
        job.process.join(EXIT_GRACE_S)
        if job.process.is_alive():
            job.process.kill()
        job.process.join()
        job.messages.close()
        with self._lock:
            if job.state in ACTIVE_STATES:  # it ended without saying how
                if job.cancel_requested_at is not None:
                    job.state = CANCELLED
                else:
                    job.state = FAILED
                    job.error = (f"the training process ended unexpectedly (exit code {job.process.exitcode}); "
                                 f"nothing was saved")
            job.finished = time.time()
            self._rebalance_threads()

    def _overdue_cancel(self, job: _Job) -> bool:
        with self._lock:
            return (job.cancel_requested_at is not None and job.state in (STARTING, RUNNING)
                    and time.monotonic() - job.cancel_requested_at > CANCEL_GRACE_S and job.process.is_alive())


_shared: JobManager | None = None
_shared_lock = threading.Lock()


def shared_manager() -> JobManager:
    """The server's one JobManager, saving into checkpoints/ with MNIST from $MNIST_ROOT."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = JobManager()
        return _shared
