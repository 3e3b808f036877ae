"""The background job runner: real child processes training tiny models into a temp folder."""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import pytest

from vae import load_checkpoint
from vae.checkpoint import SHIPPED, clean_stale_temp_files, save_checkpoint
from vae.data import default_data_root
from vae.model import build_model
from vae.server import jobs, limits
from vae.train import Progress
from vae.training_run import TrainingSpec

# ~4 steps of training: the cost of a job is mostly starting Python and loading MNIST
TINY = TrainingSpec(kind="vae", latent_dim=2, epochs=1, batch_size=128, train_size=512)
JOB_TIMEOUT_S = 240  # generous: the machine is shared; no test asserts on time


@pytest.fixture
def manager(tmp_path):
    # one torch thread per job: on a busy 2-core machine a second thread mostly spins
    (tmp_path / "models").mkdir()
    m = jobs.JobManager(folder=tmp_path / "models", data_root=default_data_root(), cores=1)
    yield m
    m.shutdown()


def saved_files(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# --- pure helpers -------------------------------------------------------------------------------

def test_spec_from_form_builds_the_spec_and_reads_all_as_none():
    spec = jobs.spec_from_form("vae", 16, 5, 256, 1e-2, 2.0, [7, 1], 60_000)
    assert spec == TrainingSpec(kind="vae", latent_dim=16, epochs=5, batch_size=256, lr=1e-2, beta=2.0,
                                digits=(1, 7), train_size=None)
    assert jobs.spec_from_form("vae", 2, 1, 128, 1e-3, 1.0, [], 1000).digits is None
    assert jobs.spec_from_form("vae", 2, 1, 128, 1e-3, 1.0, [], 1000).train_size == 1000
    assert jobs.spec_from_form("ae", 2, 1, 128, 1e-3, 55.0, None, None).beta == 1.0  # an AE has no KL term


@pytest.mark.parametrize("field, value, words", [
    ("latent_dim", 300, "latent size must be between 1 and 256"),
    ("epochs", 0, "epochs must be between 1 and 100"),
    ("batch_size", 8, "batch size must be between 16 and 4,096"),
    ("lr", 0.2, "learning rate must be between 1e-05 and 0.1"),
    ("beta", -1.0, "KL weight β must be between 0 and 100"),
    ("train_size", 50, "training-set size must be between 100 and 60,000"),
])
def test_spec_from_form_names_the_value_out_of_range(field, value, words):
    choices = dict(kind="vae", latent_dim=16, epochs=5, batch_size=256, lr=1e-2, beta=1.0, digits=[],
                   train_size=None)
    choices[field] = value
    with pytest.raises(ValueError, match=words):
        jobs.spec_from_form(**choices)


def test_spec_from_form_passes_on_training_spec_messages():
    with pytest.raises(ValueError, match="model kind"):
        jobs.spec_from_form("gan", 16, 5, 256, 1e-2, 1.0, [], None)


def test_curve_points_place_train_within_the_epoch_and_test_at_its_end():
    mid = Progress(2, 3, 5, 10, 1500, 100.0, 15.0, {"total": 150.0, "recon": 140.0, "kl": 10.0})
    assert jobs.curve_points(mid) == [(1.5, "train", 150.0)]
    end = Progress(2, 3, 10, 10, 2000, 100.0, 10.0, {"total": 140.0, "recon": 130.0, "kl": 10.0},
                   {"total": 145.0, "recon": 135.0, "kl": 10.0}, epoch_end=True)
    assert jobs.curve_points(end) == [(2.0, "train", 140.0), (2.0, "test", 145.0)]


def test_describe_spec():
    assert jobs.describe_spec(TINY) == "VAE z=2 · 1 epoch · all digits · 512 images"
    spec = TrainingSpec(kind="vae", latent_dim=16, epochs=5, beta=4.0, digits=(1,))
    assert jobs.describe_spec(spec) == "VAE z=16 · 5 epochs · β=4 · digits 1 · all images"


def test_status_line_and_outcome_say_what_a_job_is_doing():
    progress = Progress(2, 5, 3, 10, 1300, 7812.4, 65.0, {"total": 150.0, "recon": 140.0, "kl": 10.0})
    running = jobs.JobView("id", TINY, None, jobs.RUNNING, progress, (), None, None, False, 0.0, None)
    assert running.status_line == "Epoch 2/5 · 7,812 img/s · ETA 1m05s"
    assert running.fraction_done == pytest.approx(13 / 50)
    failed = jobs.JobView("id", TINY, None, jobs.FAILED, progress, (), None, "disk full", False, 0.0, 1.0)
    assert not failed.active and failed.status_line == failed.outcome == "Training failed: disk full"
    late = jobs.JobView("id", TINY, None, jobs.DONE, progress, (), Path("/m/vae-z2-1.pt"), None, True, 0.0, 1.0)
    assert late.outcome == "Saved vae-z2-1.pt (it had finished before the cancel arrived)."


def test_a_job_past_its_last_epoch_is_saving_and_no_longer_offered_a_cancel():
    """The phases after training (scoring, calibrating) report with epoch_end False: still past cancelling."""
    holder = type("Holder", (), {"_lock": threading.Lock()})()  # _record reads only the job and the lock
    job = jobs._Job("id", TINY, None, None, state=jobs.RUNNING)
    losses = {"total": 150.0, "recon": 140.0, "kl": 10.0}
    training = Progress(1, 2, 3, 10, 1300, 7812.4, 65.0, losses)
    jobs.JobManager._record(holder, job, {"event": "progress", "progress": dataclasses.asdict(training)})
    assert job.state == jobs.RUNNING
    calibrating = Progress(2, 2, 10, 10, 2600, 7812.4, 5.0, losses, phase="calibrating", phase_total=100)
    jobs.JobManager._record(holder, job, {"event": "progress", "progress": dataclasses.asdict(calibrating)})
    assert job.state == jobs.SAVING


def test_stale_temp_files_are_removed_and_fresh_ones_and_checkpoints_kept(tmp_path):
    old, fresh, model = tmp_path / ".vae-z2.pt.ab12.tmp", tmp_path / ".ae-z2.pt.cd34.tmp", tmp_path / "vae-z2.pt"
    for path in (old, fresh, model):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(model, (two_hours_ago, two_hours_ago))
    assert clean_stale_temp_files(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, model.name]


KILLED_MID_SAVE = """
import sys, time, torch
from vae.checkpoint import clean_stale_temp_files, save_checkpoint
from vae.model import ConvVAE
real_save = torch.save
def slow_save(obj, f):
    real_save(obj, f)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)  # killed here, between writing the temp file and renaming it
torch.save = slow_save
save_checkpoint(ConvVAE(2), sys.argv[1])
"""


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_a_save_killed_midway_leaves_a_temp_file_that_the_next_scan_removes(tmp_path):
    import subprocess
    import sys

    from vae.server import registry

    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_SAVE, str(tmp_path / "vae-z2-x.pt")],
                             cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.kill()  # SIGKILL: no cleanup code runs
    child.wait()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".vae-z2-x.pt.") and leftovers[0].endswith(".tmp")
    assert registry.scan(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_save_without_overwrite_refuses_a_taken_name_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "vae-z2.pt"
    first, second = build_model("vae", 2), build_model("vae", 2)
    save_checkpoint(first, path, {"which": "first"})
    with pytest.raises(FileExistsError):
        save_checkpoint(second, path, {"which": "second"}, overwrite=False)
    assert load_checkpoint(path)[1]["which"] == "first"
    assert saved_files(tmp_path) == ["vae-z2.pt"]


# --- real jobs ----------------------------------------------------------------------------------

@pytest.mark.slow  # a training job: a `python -m vae` process
def test_two_jobs_at_once_report_progress_and_save_two_distinct_checkpoints(manager):
    first = manager.start(TINY, owner="a" * 32)
    second = manager.start(TINY, owner="b" * 32)  # the same spec: the same name, unless kept apart
    third = manager.start(TINY)  # both slots taken: it waits its turn, and says so
    assert third.state == jobs.QUEUED and third.place == 1 and "next in line" in third.status_line
    assert manager.cancel(third.id) and manager.get(third.id).state == jobs.CANCELLED
    assert [job.id for job in manager.jobs(owner="a" * 32)] == [first.id]

    done = [manager.wait(job.id, JOB_TIMEOUT_S) for job in (first, second)]
    assert [job.state for job in done] == [jobs.DONE, jobs.DONE], [job.error for job in done]
    assert done[0].path != done[1].path
    for job in done:
        assert job.progress.epoch == 1 and job.fraction_done == 1.0  # its last report: a phase after training
        assert {series for _, series, _ in job.curve} == {"train", "test"}
        assert job.path.name not in SHIPPED and job.path.name.startswith("vae-z2-")
        model, metadata = load_checkpoint(job.path)
        assert (model.kind, model.latent_dim, metadata["train_images"]) == ("vae", 2, 512)
    assert saved_files(manager.folder) == sorted(job.path.name for job in done)  # no temp files left


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_cancel_while_training_stops_and_saves_nothing(manager):
    long_job = TrainingSpec(kind="ae", latent_dim=2, epochs=50, batch_size=16, train_size=4096)
    job = manager.start(long_job)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while manager.get(job.id).state == jobs.STARTING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager.get(job.id).state == jobs.RUNNING
    assert manager.cancel(job.id)
    ended = manager.wait(job.id, JOB_TIMEOUT_S)
    assert ended.state == jobs.CANCELLED and ended.outcome == "Cancelled: nothing was saved."
    assert ended.progress.epoch < 50
    assert saved_files(manager.folder) == []
    assert not manager.cancel(job.id)  # nothing left to cancel


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_cancel_before_training_starts_ends_the_process(manager):
    job = manager.start(TINY)
    assert manager.cancel(job.id)  # the child is still starting Python: it is terminated
    ended = manager.wait(job.id, JOB_TIMEOUT_S)
    assert ended.state == jobs.CANCELLED
    assert saved_files(manager.folder) == []


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_exploding_loss_fails_with_a_clear_message_and_saves_nothing(manager):
    job = manager.start(TrainingSpec(kind="vae", latent_dim=2, epochs=3, batch_size=128, lr=10.0, train_size=512))
    ended = manager.wait(job.id, JOB_TIMEOUT_S)
    assert ended.state == jobs.FAILED
    assert "nothing was saved" in ended.error and "smaller learning rate" in ended.error
    assert saved_files(manager.folder) == []


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_an_unwritable_folder_fails_before_training_with_a_clear_message(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # root ignores permissions, but not a file in the path
    manager = jobs.JobManager(folder=blocker / "models", data_root=default_data_root(), cores=1)
    with pytest.raises(jobs.JobLimitReached) as refused:  # before it is even queued
        manager.start(TINY)
    # The server's paths stay on the server: the folder is named, not where it is.
    assert str(refused.value) == "the server cannot save models now: the folder models does not exist (create it first)"
    assert not manager.jobs() and sorted(os.listdir(tmp_path)) == ["a-file"]


# --- limits for a shared server -----------------------------------------------------------------

def test_a_job_over_the_cost_limit_is_refused_by_the_form_and_by_the_manager(manager):
    # the example: latent 256, batch 16, 200 epochs of everything; 16 h of one core
    with pytest.raises(ValueError, match="epochs must be between 1 and 100"):
        jobs.spec_from_form("vae", 256, 200, 16, 1e-3, 1.0, [], None)
    with pytest.raises(ValueError, match="too big for a shared server: 11 epochs × 60,000 images"):
        jobs.spec_from_form("vae", 256, 11, 16, 1e-3, 1.0, [], None)
    assert jobs.spec_from_form("vae", 256, 10, 16, 1e-3, 1.0, [], None).epochs == 10
    assert jobs.spec_from_form("vae", 16, 100, 256, 1e-3, 1.0, [1], 6000).epochs == 100  # one digit: small
    with pytest.raises(ValueError, match="at most 88 epochs"):
        jobs.spec_from_form("vae", 16, 100, 256, 1e-3, 1.0, [1], None)  # 6,742 ones
    with pytest.raises(ValueError, match="too big"):  # a spec that never went through the form
        manager.start(TrainingSpec(kind="vae", latent_dim=256, epochs=200, batch_size=16))
    assert manager.jobs() == []


@pytest.mark.slow  # starts a real `python -m vae` process
def test_one_running_job_per_visitor_and_only_its_owner_may_cancel_it(manager):
    first = manager.start(TINY, owner="a" * 32)
    with pytest.raises(jobs.JobLimitReached, match="one at a time per visitor"):
        manager.start(TINY, owner="a" * 32)
    assert not manager.cancel(first.id, owner="b" * 32)  # someone else's
    assert not manager.get(first.id).cancel_requested
    assert manager.cancel(first.id, owner="a" * 32)
    assert manager.wait(first.id, JOB_TIMEOUT_S).state == jobs.CANCELLED


def test_a_visitor_with_too_many_models_must_delete_one_first(manager):

    for i in range(limits.LIMITS.models_per_visitor):
        save_checkpoint(build_model("vae", 2), manager.folder / f"m{i}.pt", {"owner": "c" * 32})
    with pytest.raises(jobs.JobLimitReached, match="delete one"):
        manager.start(TINY, owner="c" * 32)
    assert manager.jobs() == []


FAKE_APP = """
from pathlib import Path
Path(__file__).with_name("app-ran.txt").write_text("the job ran the app's main script")
"""


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_a_job_is_the_cli_and_never_runs_the_servers_main_script(manager, tmp_path, monkeypatch):
    """Under Streamlit, __main__ is app.py; a job must not execute it again (it loaded MNIST twice,
    all checkpoints, and logged ~90 warnings before its first batch)."""
    import sys
    import types

    fake_app = tmp_path / "fake_app.py"
    fake_app.write_text(FAKE_APP)
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(fake_app)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    job = manager.wait(manager.start(TINY).id, JOB_TIMEOUT_S)
    assert job.state == jobs.DONE, job.error
    assert not (tmp_path / "app-ran.txt").exists()
    assert job.first_report is not None and job.started < job.first_report < job.finished


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_a_job_that_ends_removes_the_temp_files_of_dead_saves(manager):
    import subprocess
    import sys

    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True).stdout)
    stale = manager.folder / f".vae-z2-old.pt.{dead_pid}.x1y2.tmp"
    stale.write_bytes(b"half a checkpoint")
    job = manager.wait(manager.start(TINY).id, JOB_TIMEOUT_S)
    assert job.state == jobs.DONE and not stale.exists()


def test_the_server_holds_a_limited_number_of_visitors_models(manager, monkeypatch):

    monkeypatch.setattr(limits, "LIMITS", dataclasses.replace(limits.LIMITS, visitor_models_on_server=3))
    for i in range(3):  # three visitors, one model each: each visitor is under their own limit
        save_checkpoint(build_model("vae", 2), manager.folder / f"v{i}.pt", {"owner": f"{i}" * 32})
    with pytest.raises(jobs.JobLimitReached, match="visitors' models, its limit"):
        manager.start(TINY, owner="d" * 32)
    assert manager.jobs() == []


def test_a_rescan_reads_only_files_that_changed(tmp_path, monkeypatch):
    from vae.server import registry

    for i in range(3):
        save_checkpoint(build_model("vae", 2), tmp_path / f"m{i}.pt")
    registry.scan(tmp_path)
    loads = []
    real_load = registry.load_checkpoint
    monkeypatch.setattr(registry, "load_checkpoint", lambda path: loads.append(path) or real_load(path))
    registry.scan(tmp_path)
    assert loads == []
    save_checkpoint(build_model("vae", 2), tmp_path / "m1.pt", {"digits": [1]})  # a new version of one file
    entries = {e.path.name: e for e in registry.scan(tmp_path)}
    assert [p.name for p in loads] == ["m1.pt"] and entries["m1.pt"].metadata["digits"] == [1]


# --- a fair queue, limits per address, priority, expiry ----------------------------------------------------

LONG = TrainingSpec(kind="vae", latent_dim=2, epochs=5, batch_size=128)  # a minute or more: cancelled long before


def test_jobs_wait_in_one_queue_fairly_across_addresses_and_see_their_place(tmp_path, monkeypatch):
    """One slot. Two visitors of one address (two tokens, one person) and one of another: the other address
    goes first, the second token of the first address waits behind it; a third token of that address is
    refused. So minting tokens does not capture the slots."""
    (tmp_path / "models").mkdir()
    manager = jobs.JobManager(folder=tmp_path / "models", data_root=default_data_root(), max_jobs=1, cores=1)
    try:
        first = manager.start(LONG, owner="a" * 32, address="198.51.100.1")
        second = manager.start(LONG, owner="b" * 32, address="198.51.100.1")
        other = manager.start(LONG, owner="c" * 32, address="203.0.113.9")
        assert first.state == jobs.STARTING
        views = {v.id: v for v in manager.jobs()}
        assert (views[other.id].state, views[other.id].place) == (jobs.QUEUED, 1)
        assert (views[second.id].state, views[second.id].place) == (jobs.QUEUED, 2)
        assert "1 ahead of it" in views[second.id].status_line
        with pytest.raises(jobs.JobLimitReached, match="network address"):
            manager.start(LONG, owner="d" * 32, address="198.51.100.1")
        with pytest.raises(jobs.JobLimitReached, match="running or waiting"):
            manager.start(LONG, owner="c" * 32, address="203.0.113.10")  # one job per token, wherever from
        assert manager.cancel(first.id)
        assert manager.wait(first.id, JOB_TIMEOUT_S).state == jobs.CANCELLED
        deadline = time.monotonic() + 30
        while manager.get(other.id).state == jobs.QUEUED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert manager.get(other.id).state in jobs.IN_SLOT  # the slot went to the other address
        assert manager.get(second.id).place == 1
    finally:
        manager.shutdown()


def test_a_waiting_job_is_cancelled_at_once(tmp_path):
    (tmp_path / "models").mkdir()
    manager = jobs.JobManager(folder=tmp_path / "models", data_root=default_data_root(), max_jobs=1, cores=1)
    try:
        manager.start(TINY, owner="a" * 32)
        waiting = manager.start(TINY, owner="b" * 32)
        assert manager.cancel(waiting.id, owner="b" * 32)
        assert manager.get(waiting.id).state == jobs.CANCELLED and manager.get(waiting.id).outcome.startswith("Cancelled")
    finally:
        manager.shutdown()


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no CPU priorities on this system")
def test_a_job_runs_at_the_lowest_cpu_priority(manager):
    job = manager.start(TINY, owner="a" * 32)
    run = manager._jobs[job.id].run
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while run.pid is None and time.monotonic() < deadline:  # forked from the warm process: on its way
        time.sleep(0.01)
    process = run.process
    nice = None
    while process.poll() is None and time.monotonic() < deadline:
        try:
            nice = int(Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        except (OSError, IndexError, ValueError):
            break
        if nice == limits.LIMITS.job_nice:
            break
        time.sleep(0.05)
    assert nice == limits.LIMITS.job_nice


def test_models_expire_longest_unused_first_to_make_room_for_an_address(manager, monkeypatch):
    from vae.server import registry

    monkeypatch.setattr(limits, "LIMITS", dataclasses.replace(limits.LIMITS, models_per_address=2))
    origin, now = registry.origin_key("198.51.100.7"), time.time()
    for name, used_h_ago in (("old.pt", 30), ("older.pt", 50), ("recent.pt", 0.2)):
        save_checkpoint(build_model("vae", 2), manager.folder / name, {"owner": "e" * 32, "origin": origin})
        os.utime(manager.folder / name, (now - 100 * 3600,) * 2)  # all saved long ago
        registry._noted.pop(str(manager.folder / name), None)
        registry.note_use(manager.folder / name, now=now - used_h_ago * 3600)
    save_checkpoint(build_model("vae", 2), manager.folder / "elsewhere.pt", {"owner": "f" * 32})
    os.utime(manager.folder / "elsewhere.pt", (now - 100 * 3600,) * 2)  # unused, but not from this address
    manager.start(TINY, owner="1" * 32, address="198.51.100.7")
    # three from the address, one more on its way: two expire, the longest unused first
    assert saved_files(manager.folder) == [".last-used.json", "elsewhere.pt", "recent.pt"]


def test_an_address_whose_models_are_all_in_use_is_refused(manager, monkeypatch):
    from vae.server import registry

    monkeypatch.setattr(limits, "LIMITS", dataclasses.replace(limits.LIMITS, models_per_address=1))
    origin = registry.origin_key("198.51.100.8")
    save_checkpoint(build_model("vae", 2), manager.folder / "fresh.pt", {"owner": "e" * 32, "origin": origin})
    with pytest.raises(jobs.JobLimitReached, match="your network address has 1 models"):
        manager.start(TINY, owner="2" * 32, address="198.51.100.8")
    assert saved_files(manager.folder) == ["fresh.pt"]


def test_what_a_visitor_reads_holds_no_server_path_or_errno():
    assert jobs.for_visitors("[Errno 28] No space left on device: '/srv/store/.vae-z2.pt.77.x1.tmp'") == \
        "the server's disk is full: 'a temporary file'"
    assert jobs.for_visitors("cannot write checkpoints in /srv/store/checkpoints: Permission denied") == \
        "cannot write checkpoints in checkpoints: Permission denied"
    assert jobs.for_visitors("loss 1/2 of 3/4") == "loss 1/2 of 3/4"
