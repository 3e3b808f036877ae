"""Background training jobs for the app: start, watch, cancel; no Streamlit here.

Design, and why:
- A job is the command line itself, `python -m vae train … --progress json`, in a process of its own: the
  app and the CLI share one code path. The process is forked from a warm process that has imported PyTorch
  and the trainer already (forkserver.py: training starts in a fraction of a second instead of seconds),
  or where that fails a fresh `python -m vae`; never a copy of the Streamlit server's `__main__`. A process
  rather than a thread: the server's pages do not stutter, and a process can be stopped for sure.
- Where jobs run is a runner, chosen once when the manager is made (default_runner): LocalRunner, or with
  $STUDIO_RAY_ADDRESS set, ray_jobs.RayRunner (tasks on a Ray cluster, the model sent back and saved
  here). Both give the manager the same RunningJob: the CLI's report events, stop, outcome. The queue, the
  limits, ownership and messages below are the manager's, wherever the jobs run.
- The child prints one JSON line per report (at most every cli.REPORT_EVERY_S, and at every epoch end)
  and a last `done` line naming the checkpoint; on failure it exits non-zero with one `error:` line
  on stderr, which becomes the job's message. A daemon thread per job reads the lines and records the
  outcome whether or not anyone watches, so jobs outlive the browser tab.
- If the server stops, its jobs stop too: a child ends when its stdin (a pipe from the server) closes.
- Cancel terminates the child. That is safe: the CLI writes nothing until training has ended. Once
  the last epoch has been reported the model is being scored and saved, and a job can no longer be
  cancelled (`cancel` says so); a save killed anyway (kill -9) leaves only a temp file named after
  the dead process, removed when the job ends.
- CPU threads are split between the running jobs (cores // jobs, at least one) and rebalanced while
  they run: the manager writes {"threads": n} to a child's stdin, applied at its next step.
- A server shared by a group: the limits on jobs (slots, per visitor and per address, cost, time) are
  limits.LIMITS. A job that may not start yet waits in one queue (QUEUED, its place shown); when a slot
  frees, the oldest waiting job of the address that has started the fewest jobs starts, among addresses
  under their running limit (turn by turn over addresses). Jobs run at `job_nice`, below
  the pages. Before a job is queued, the per-address and server-wide model caps make room by expiring the
  longest-unused visitors' models (registry.expire_unused), or refuse.
- What a job says to a visitor (its error) never holds the server's paths or errno codes (for_visitors).
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Protocol

from ..checkpoint import OWNER_PATTERN, check_writable_folder, checkpoint_dir, clean_stale_temp_files
from ..data import default_data_root
from ..model import VARIATIONAL_KINDS
from ..train import Progress, format_duration
from ..training_run import TrainingSpec
from . import forkserver, limits, registry
from .limits import ALL_TRAINING_IMAGES, TRAINING_IMAGES_PER_DIGIT, available_cores

CANCEL_GRACE_S = 2.0  # after SIGTERM, the time a child gets before it is killed
KEEP_FINISHED = 20  # finished jobs remembered (their messages), oldest forgotten first

log = logging.getLogger(__name__)  # the server's log: failures are recorded there too, not only shown

QUEUED, STARTING, RUNNING, SAVING = "queued", "starting", "running", "saving"
DONE, FAILED, CANCELLED = "done", "failed", "cancelled"
IN_SLOT = (STARTING, RUNNING, SAVING)  # a process is training, or about to
ACTIVE_STATES = (QUEUED, *IN_SLOT)  # counts against the visitor's and the address's jobs


class JobLimitReached(RuntimeError):
    """The server or this visitor already runs as many trainings as allowed, or has too many models."""


def training_images(spec: TrainingSpec) -> int:
    """How many images the job trains on (an upper bound: the offline subset has fewer)."""
    available = sum(TRAINING_IMAGES_PER_DIGIT[d] for d in (spec.digits or range(10)))
    return min(available, spec.train_size or available)


def check_job_cost(spec: TrainingSpec) -> None:
    """ValueError unless the job fits the server's limit on epochs × images."""
    cost = spec.epochs * training_images(spec)
    most_cost = limits.LIMITS.max_image_epochs
    if cost > most_cost:
        most = max(1, most_cost // training_images(spec))
        raise ValueError(f"this job is too big for a shared server: {spec.epochs} epochs × "
                         f"{training_images(spec):,} images = {cost:,} image-epochs, the limit is "
                         f"{most_cost:,}; use at most {most} epochs, or fewer images")


def spec_from_form(kind: str, latent_dim: int, epochs: int, batch_size: int, lr: float, beta: float,
                   digits, train_size: int | None) -> TrainingSpec:
    """The app's choices as a TrainingSpec; ValueError with one clear sentence if any is out of range.

    digits: an iterable of 0–9 (empty: all ten). train_size: None or ALL_TRAINING_IMAGES: every image.
    beta only matters for a VAE, so an AE gets the default whatever the form held.
    """
    values = {"latent_dim": latent_dim, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "beta": beta if kind in VARIATIONAL_KINDS else 1.0, "train_size": train_size}
    for name, (low, high, _, label) in limits.LIMITS.form.items():
        value = values[name]
        if name == "train_size" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"{label} must be between {low:g} and {high:,g}, got {value!r}")
    try:
        digits = tuple(sorted(set(int(d) for d in digits))) if digits else None
    except (TypeError, ValueError):
        raise ValueError(f"digits must be 0–9, got {digits!r}") from None
    if train_size is not None and train_size >= ALL_TRAINING_IMAGES:
        train_size = None
    spec = TrainingSpec(kind=kind, latent_dim=int(latent_dim), epochs=int(epochs), batch_size=int(batch_size),
                        lr=float(lr), beta=float(values["beta"]), digits=digits,
                        train_size=None if train_size is None else int(train_size))
    check_job_cost(spec)
    return spec


def train_command(spec: TrainingSpec, folder, data_root: str | None, owner: str | None, threads: int,
                  origin: str | None = None) -> list[str]:
    """The `python -m vae train` command line that runs `spec` as a job."""
    command = [sys.executable, "-m", "vae", "train", "--model", spec.kind, "--latent", str(spec.latent_dim),
               "--epochs", str(spec.epochs), "--batch-size", str(spec.batch_size), "--lr", repr(spec.lr),
               "--beta", repr(spec.beta), "--seed", str(spec.seed), "--out-dir", str(folder),
               "--progress", "json", "--threads", str(threads), "--nice", str(limits.LIMITS.job_nice)]
    if spec.digits:
        command += ["--digits", ",".join(map(str, spec.digits))]
    if spec.train_size:
        command += ["--train-size", str(spec.train_size)]
    if data_root:
        command += ["--data-root", str(data_root)]
    if owner:
        command += ["--owner", owner]
    if origin:
        command += ["--origin", origin]
    return command


_ABSOLUTE_PATH = re.compile(r"""(?<![\w.])/(?:[^\s'":/]+/)+([^\s'":/]*)""")
_ERRNO = re.compile(r"\[Errno \d+\] ")


def for_visitors(message: str) -> str:
    """A message as a visitor may see it: an absolute path becomes its last part (a model's file name; a
    temp file or a folder is named as such), Python's "[Errno 28] " prefixes go, and a full disk is called
    that. The server's log keeps the full text."""
    def short(match) -> str:
        name = match.group(1)
        if not name:
            return "a folder on the server"
        return "a temporary file" if name.startswith(".") and name.endswith(".tmp") else name

    message = _ERRNO.sub("", _ABSOLUTE_PATH.sub(short, message))
    return message.replace("No space left on device", "the server's disk is full")


def describe_spec(spec: TrainingSpec) -> str:
    """'VAE z=16 · 5 epochs · digits 0,1 · 1,000 images' for lists and messages."""
    parts = [f"{spec.kind.upper()} z={spec.latent_dim}", f"{spec.epochs} epoch{'s' if spec.epochs != 1 else ''}"]
    if spec.kind in VARIATIONAL_KINDS and spec.beta != 1.0:
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
    first_report: float | None = None  # time.time() of the first training step's report
    place: int | None = None  # while QUEUED: 1 for the next to start

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def fraction_done(self) -> float:
        return 0.0 if self.progress is None else min(max(self.progress.fraction_done, 0.0), 1.0)

    @property
    def status_line(self) -> str:
        """'Epoch 2/5 · 7,812 img/s · ETA 1m05s', or what the job is doing or how it ended."""
        if self.state == QUEUED:
            ahead = f"{self.place - 1} ahead of it" if self.place and self.place > 1 else "next in line"
            return f"Waiting for a free training slot: {ahead}"
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
    address: str | None  # traffic.address_key of the visitor who started it (None: unknown, or the server)
    run: RunningJob | None = None  # None while it waits
    threads: int = 1
    state: str = QUEUED
    progress: Progress | None = None
    curve: list = field(default_factory=list)
    path: Path | None = None
    error: str | None = None
    cancel_requested_at: float | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    first_report: float | None = None

    def view(self, place: int | None = None) -> JobView:
        return JobView(self.id, self.spec, self.owner, self.state, self.progress, tuple(self.curve), self.path,
                       self.error, self.cancel_requested_at is not None, self.started, self.finished,
                       self.first_report, place)


_PROGRESS_FIELDS = {f.name for f in fields(Progress)}


def _last_error_line(stderr_file) -> str | None:
    """The child's `error: …` line (the CLI's one-line failure), without the prefix."""
    stderr_file.seek(0)
    lines = stderr_file.read().decode("utf-8", "replace").splitlines()
    errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else None


class RunningJob(Protocol):
    """One job on its way, wherever it runs (LocalJob: a process here; ray_jobs.RayJob: a task on a cluster)."""

    pid: int | None  # a local process's id (None on a cluster, or before it has forked)

    def reports(self) -> Iterator[dict]:
        """Its events as `python -m vae train --progress json` writes them ({"event": "progress", …}, then
        {"event": "done", "path": …} once the model is saved in the folder), until it has ended."""

    def set_threads(self, threads: int) -> None:
        """Use this many CPU threads from its next step (where the runner shares cores)."""

    def stop(self) -> None:
        """Ask it to end now, saving nothing; it is made to end for sure CANCEL_GRACE_S later."""

    def outcome(self) -> tuple[bool, str | None]:
        """Once reports() has ended: (whether it ended well, the reason if not)."""


class JobRunner(Protocol):
    """Where jobs run; the JobManager chooses one when it is made (default_runner) and keeps it."""

    slots: int | None  # how many jobs it runs at once now; None: LIMITS.job_slots
    shares_cores: bool  # jobs share this machine's cores: the manager splits them (set_threads)

    def when_ready(self, callback) -> None:
        """Call callback() when its slots have grown (a cluster connected), if they ever do."""

    def launch(self, spec: TrainingSpec, folder: Path, data_root: str | None, owner: str | None,
               origin: str | None, threads: int) -> RunningJob:
        """Start the job (without waiting for it to load anything); it saves its model into `folder`."""


class LocalJob:
    """A job in a process on this machine, running the CLI: JSON lines on its stdout, {"threads": n} lines on
    its stdin, its `error:` line on stderr (a temp file). The process is a subprocess.Popen, or a
    forkserver.ForkedProcess with the same surface."""

    def __init__(self, process, stderr_file):
        self.process, self._stderr = process, stderr_file

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def reports(self) -> Iterator[dict]:
        for line in self.process.stdout:  # ends when the child closes its stdout: it has exited
            try:
                event = json.loads(line)
            except ValueError:  # a line cut off by a kill
                continue
            if isinstance(event, dict):
                yield event

    def set_threads(self, threads: int) -> None:
        try:
            self.process.stdin.write(json.dumps({"threads": threads}) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):  # it has exited meanwhile
            pass

    def stop(self) -> None:
        """SIGTERM now, SIGKILL if it has not gone CANCEL_GRACE_S later."""
        if self.process.poll() is None:
            self.process.terminate()
            timer = threading.Timer(CANCEL_GRACE_S, lambda: self.process.poll() is None and self.process.kill())
            timer.daemon = True
            timer.start()

    def outcome(self) -> tuple[bool, str | None]:
        returncode = self.process.wait()
        error = _last_error_line(self._stderr)
        self._stderr.close()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if returncode == 0:
            return True, None
        return False, error or f"the training process ended unexpectedly (exit code {returncode}); nothing was saved"


_warm: forkserver.ForkServer | None = None
_warm_lock = threading.Lock()


def warm_fork_server() -> forkserver.ForkServer:
    """This server's warm process (one for all its managers), started when first asked for, and again if it
    has gone."""
    global _warm
    with _warm_lock:
        if _warm is None or not _warm.alive:
            _warm = forkserver.ForkServer()
        return _warm


class LocalRunner:
    """Jobs as processes on this machine, one per job: forked from the warm process (forkserver.py), which
    has imported PyTorch and the trainer already, or, with warm=False or where that fails, a fresh
    `python -m vae train` (seconds slower to its first step)."""

    slots = None
    shares_cores = True

    def __init__(self, warm: bool = True):
        self.warm = warm
        if warm:
            warm_fork_server()  # importing starts now, before the first job

    def when_ready(self, callback) -> None:
        """Its slots never change: nothing to call back for."""

    def launch(self, spec, folder, data_root, owner, origin, threads) -> LocalJob:
        command = train_command(spec, folder, data_root, owner, threads, origin)
        stderr = tempfile.TemporaryFile()
        if self.warm:
            try:
                return LocalJob(warm_fork_server().start_job(command[3:], stderr), stderr)  # argv after `-m vae`
            except OSError as exc:  # it has just gone: a fresh process instead
                log.warning("the warm process could not start a job (%s); starting a fresh process", exc)
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, bufsize=1)
        return LocalJob(process, stderr)


RAY_ADDRESS_SETTING = "STUDIO_RAY_ADDRESS"


def default_runner() -> JobRunner:
    """Jobs on the Ray cluster at $STUDIO_RAY_ADDRESS (host:port) when it is set, else on this machine."""
    address = os.environ.get(RAY_ADDRESS_SETTING, "").strip()
    if address:
        from .ray_jobs import RayRunner  # Ray is imported only here: the app runs without it

        return RayRunner(address)
    return LocalRunner()


class JobManager:
    """Starts and tracks training jobs; safe to use from many Streamlit sessions (threads) at once."""

    def __init__(self, folder: str | os.PathLike | None = None, data_root: str | None = None,
                 max_jobs: int | None = None, cores: int | None = None, runner: JobRunner | None = None):
        self.folder = Path(folder or checkpoint_dir())
        self.data_root = data_root or default_data_root()
        self.runner = runner or default_runner()
        self._max_jobs = max_jobs
        self.cores = cores or available_cores()
        self._jobs: dict[str, _Job] = {}
        self._started: dict[str | None, int] = {}  # address → jobs started from it (the queue's turns)
        self._lock = threading.Lock()
        clean_stale_temp_files(self.folder)
        self.runner.when_ready(self._slots_grew)

    @property
    def max_jobs(self) -> int:
        """Jobs running at once: as made, else as many as the runner has room for now."""
        if self._max_jobs:
            return self._max_jobs
        return limits.LIMITS.job_slots if self.runner.slots is None else self.runner.slots

    def _slots_grew(self) -> None:
        with self._lock:
            self._start_waiting()

    # --- asking -------------------------------------------------------------------------------
    def jobs(self, owner: str | None = None) -> list[JobView]:
        """Snapshots, oldest first; only those started by `owner` if given."""
        with self._lock:
            places = self._places()
            return [job.view(places.get(job.id)) for job in self._jobs.values() if owner is None or job.owner == owner]

    def get(self, job_id: str) -> JobView:
        with self._lock:
            return self._jobs[job_id].view(self._places().get(job_id))

    def active_count(self) -> int:
        with self._lock:
            return sum(job.state in ACTIVE_STATES for job in self._jobs.values())

    def waiting_count(self) -> int:
        with self._lock:
            return sum(job.state == QUEUED for job in self._jobs.values())

    def wait(self, job_id: str, timeout: float) -> JobView:
        """Block until the job has ended or `timeout` seconds passed; its latest snapshot either way."""
        deadline = time.monotonic() + timeout
        view = self.get(job_id)
        while view.active and time.monotonic() < deadline:
            time.sleep(0.1)
            view = self.get(job_id)
        return view

    # --- acting -------------------------------------------------------------------------------
    def start(self, spec: TrainingSpec, owner: str | None = None, address: str | None = None) -> JobView:
        """Queue training in the background, as `owner` (a registry.owner_key, or None for the server) from
        `address` (a traffic.address_key, or None if unknown); it starts at once if a slot is free for it.

        Raises JobLimitReached when this owner or address may not have another job now, the queue is full, or
        there is no room for its model; ValueError for a job over the cost limit; OSError (for visitors) when
        the disk cannot hold its model.
        """
        if not isinstance(spec, TrainingSpec):
            raise TypeError("start() needs a TrainingSpec")
        check_job_cost(spec)
        if owner is not None and not OWNER_PATTERN.fullmatch(owner):
            raise ValueError("a job's owner is a registry.owner_key")
        try:
            check_writable_folder(self.folder)  # the CLI checks again; a visitor hears it before queueing
        except OSError as exc:
            raise JobLimitReached(f"the server cannot save models now: {for_visitors(str(exc))}") from None
        with self._lock:
            active = [job for job in self._jobs.values() if job.state in ACTIVE_STATES]
            L = limits.LIMITS
            if owner is not None and sum(job.owner == owner for job in active) >= L.jobs_per_visitor:
                raise JobLimitReached("you already have a training running or waiting; wait for it or cancel it "
                                      "first (one at a time per visitor)")
            if address is not None and sum(job.address == address for job in active) >= L.jobs_per_address:
                raise JobLimitReached(f"{L.jobs_per_address} trainings from your network address are already running "
                                      f"or waiting, the most one address may have; wait for one to finish")
            if sum(job.state == QUEUED for job in active) >= L.waiting_jobs:
                raise JobLimitReached(f"{L.waiting_jobs} trainings are already waiting on this server; try again later")
            pending = [job for job in active if job.owner is not None]  # each will add a visitor's model
        if owner is not None:
            self._make_room(owner, address, pending)
        with self._lock:
            job = _Job(uuid.uuid4().hex[:12], spec, owner, address)
            self._jobs[job.id] = job
            self._start_waiting()
            self._forget_oldest_finished()
            return job.view(self._places().get(job.id))

    def _make_room(self, owner: str, address: str | None, pending: list[_Job]) -> None:
        """Refuse, or expire unused models, so that this job's model fits the per-visitor, per-address and
        server-wide caps (counting the models that jobs now running or waiting will add)."""
        L = limits.LIMITS
        entries = registry.scan(self.folder)
        saved = len(registry.owned(entries, owner))
        if saved >= L.models_per_visitor:
            raise JobLimitReached(f"you have {saved} models on this server, the most a visitor may keep; "
                                  f"delete one under My models first")
        if address is not None:
            origin = registry.origin_key(address)
            count = sum(e.ok and e.owner is not None and e.metadata.get("origin") == origin for e in entries)
            count += sum(job.address == address for job in pending)
            if count >= L.models_per_address:
                expired = registry.expire_unused(entries, count - L.models_per_address + 1, origin, self.folder)
                if count - len(expired) >= L.models_per_address:
                    raise JobLimitReached(f"your network address has {L.models_per_address} models on this server, "
                                          f"the most one address may keep, all used within the last "
                                          f"{L.model_idle_s / 3600:g} h; delete some under My models first")
                entries = registry.scan(self.folder)
        count = sum(e.owner is not None for e in entries) + len(pending)
        if count >= L.visitor_models_on_server:
            expired = registry.expire_unused(entries, count - L.visitor_models_on_server + 1, None, self.folder)
            if count - len(expired) >= L.visitor_models_on_server:
                raise JobLimitReached(f"this server holds {L.visitor_models_on_server} visitors' models, its limit, "
                                      f"all used within the last {L.model_idle_s / 3600:g} h; try again later")

    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """Stop a job; it saves nothing. False if it has ended, is already saving its model, or (when
        `owner` is given) is someone else's."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or (owner is not None and job.owner != owner) or job.state not in (QUEUED, STARTING, RUNNING):
                return False
            if job.state == QUEUED:  # nothing runs yet: it simply leaves the queue
                job.cancel_requested_at = time.monotonic()
                job.state, job.finished = CANCELLED, time.time()
                return True
            if job.cancel_requested_at is None:
                job.cancel_requested_at = time.monotonic()
                self._stop(job)
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
    def _queue_order(self) -> list[_Job]:
        """Called with the lock held: the waiting jobs in the order they would start, as far as known now.
        Turn by turn over the addresses: the next is the oldest waiting job of the address that has started
        the fewest jobs, among those with fewer than `running_jobs_per_address` running. So a second token
        of one person waits behind everyone else's first."""
        running: dict[str | None, int] = {}
        for job in self._jobs.values():
            if job.state in IN_SLOT:
                running[job.address] = running.get(job.address, 0) + 1
        started = dict(self._started)
        waiting = [job for job in self._jobs.values() if job.state == QUEUED]  # oldest first
        order = []
        while waiting:  # as if each chosen one had started
            eligible = [j for j in waiting if j.address is None
                        or running.get(j.address, 0) < limits.LIMITS.running_jobs_per_address] or waiting
            job = min(eligible, key=lambda j: started.get(j.address, 0))  # min keeps the oldest of equals
            waiting.remove(job)
            order.append(job)
            running[job.address] = running.get(job.address, 0) + 1
            started[job.address] = started.get(job.address, 0) + 1
        return order

    def _places(self) -> dict[str, int]:
        return {job.id: place for place, job in enumerate(self._queue_order(), 1)}

    def _start_waiting(self) -> None:
        """Called with the lock held: start waiting jobs while slots are free, in queue order."""
        while sum(job.state in IN_SLOT for job in self._jobs.values()) < self.max_jobs:
            running = [job.address for job in self._jobs.values() if job.state in IN_SLOT]
            job = next((j for j in self._queue_order() if j.address is None
                        or running.count(j.address) < limits.LIMITS.running_jobs_per_address), None)
            if job is None:
                return
            self._launch(job)

    def _launch(self, job: _Job) -> None:
        """Called with the lock held: the job starts on the runner (a local one's `--nice` lowers its priority
        first thing). A runner that cannot start it fails the job, with a message."""
        in_slot = sum(j.state in IN_SLOT for j in self._jobs.values())
        job.threads = max(1, self.cores // (in_slot + 1))
        origin = registry.origin_key(job.address) if job.address is not None and job.owner is not None else None
        job.state, job.started = STARTING, time.time()
        self._started[job.address] = self._started.get(job.address, 0) + 1
        try:
            job.run = self.runner.launch(job.spec, self.folder, self.data_root, job.owner, origin, job.threads)
        except Exception as exc:  # no process, no cluster: the job ends here, the server goes on
            log.warning("training job %s (%s) could not start: %r", job.id, describe_spec(job.spec), exc)
            job.state, job.finished = FAILED, time.time()
            job.error = "the training could not be started on this server; try again later"
            return
        self._rebalance_threads()
        threading.Thread(target=self._watch, args=(job,), name=f"watch-{job.id}", daemon=True).start()

    def _stop(self, job: _Job) -> None:
        job.run.stop()

    def _time_out(self, job: _Job) -> None:
        with self._lock:
            if job.state in (STARTING, RUNNING) and job.cancel_requested_at is None:
                job.error = (f"stopped after {format_duration(limits.LIMITS.max_job_s)}, this server's limit for one job; "
                             f"nothing was saved")
                self._stop(job)

    def _rebalance_threads(self) -> None:
        """Called with the lock held: share the cores among the running jobs."""
        if not self.runner.shares_cores:
            return
        active = [job for job in self._jobs.values() if job.state in IN_SLOT and job.run is not None]
        for job in active:
            threads = max(1, self.cores // len(active))
            if threads != job.threads:
                job.threads = threads
                job.run.set_threads(threads)

    def _forget_oldest_finished(self) -> None:
        finished = [job for job in self._jobs.values() if job.state not in ACTIVE_STATES]
        for job in sorted(finished, key=lambda j: j.finished or 0.0)[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]

    def _record(self, job: _Job, event: dict) -> None:
        with self._lock:
            if event.get("event") == "progress" and set(event.get("progress", {})) == _PROGRESS_FIELDS:
                progress = Progress(**event["progress"])
                job.progress = progress
                job.first_report = job.first_report or time.time()
                job.curve.extend(curve_points(progress))
                # After the last epoch the job scores, calibrates and saves (Progress.phase): past cancelling.
                after_training = progress.phase != "training" or (progress.epoch_end and progress.epoch == progress.epochs)
                job.state = SAVING if after_training else RUNNING
            elif event.get("event") == "done" and isinstance(event.get("path"), str):
                job.path = Path(event["path"])

    def _watch(self, job: _Job) -> None:
        """Read the child's reports until it exits, then record how it ended."""
        deadline = threading.Timer(limits.LIMITS.max_job_s, self._time_out, args=(job,))
        deadline.daemon = True
        deadline.start()
        for event in job.run.reports():
            self._record(job, event)
        deadline.cancel()
        ended_well, error = job.run.outcome()
        clean_stale_temp_files(self.folder)  # a save killed midway leaves its temp file behind
        with self._lock:
            if job.path is not None and ended_well:
                job.state = DONE
            elif job.cancel_requested_at is not None and job.error is None:
                job.state = CANCELLED
            else:
                job.state = FAILED
                error = job.error or error or "the training ended unexpectedly; nothing was saved"
                log.warning("training job %s (%s) failed: %s", job.id, describe_spec(job.spec), error)
                job.error = for_visitors(error)
            job.finished = time.time()
            self._rebalance_threads()
            self._start_waiting()


_shared: JobManager | None = None
_shared_lock = threading.Lock()


def shared_manager() -> JobManager:
    """The server's one JobManager, saving into checkpoints/ with MNIST from $MNIST_ROOT."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = JobManager()
        return _shared
