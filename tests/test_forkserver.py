"""Jobs forked from the warm process (vae/server/forkserver.py) against fresh `python -m vae train` processes:
the same reports, the same saved model, the same cancel and failure. How much sooner they start is a
benchmark (scripts/bench_jobs.py), not a test."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from vae import load_checkpoint
from vae.server import jobs
from vae.training_run import TrainingSpec

TINY = TrainingSpec(kind="vae", latent_dim=2, epochs=1, batch_size=128, train_size=512)
LONG = TrainingSpec(kind="ae", latent_dim=2, epochs=50, batch_size=16, train_size=4096)  # cancelled long before
DIVERGES = TrainingSpec(kind="vae", latent_dim=2, epochs=3, batch_size=128, lr=10.0, train_size=512)
READY_TIMEOUT_S = 240  # importing torch on a busy shared machine; no test asserts on time
TIMING = {"images_per_s", "eta_s", "seconds", "train_seconds", "created", "reported_at"}  # the clock's, not the training's


@pytest.fixture(scope="module")
def warm():
    server = jobs.warm_fork_server()
    assert server.ready.wait(READY_TIMEOUT_S), "the warm process did not finish importing"
    return server


def run_to_end(spec: TrainingSpec, folder: Path, warm: bool, stop_after_first_report: bool = False):
    """(events, outcome, pid) of one job launched by the app's local runner, forked or fresh."""
    folder.mkdir(exist_ok=True)
    job = jobs.LocalRunner(warm=warm).launch(spec, folder, None, "a" * 32, None, threads=1)
    events = []
    for event in job.reports():
        events.append(event)
        if stop_after_first_report and len(events) == 1:
            job.stop()
    return events, job.outcome(), job.pid


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING}
    return value


def test_the_warm_process_has_imported_torch_and_started_no_thread(warm):
    assert warm.threads_when_ready == 1
    if os.path.isdir(f"/proc/{warm.process.pid}/task"):
        assert len(os.listdir(f"/proc/{warm.process.pid}/task")) == 1


@pytest.mark.slow  # two training jobs
def test_a_forked_job_reports_and_saves_exactly_what_a_fresh_process_does(warm, tmp_path):
    forked_events, forked_outcome, forked_pid = run_to_end(TINY, tmp_path / "forked", warm=True)
    fresh_events, fresh_outcome, _ = run_to_end(TINY, tmp_path / "fresh", warm=False)
    assert forked_outcome == fresh_outcome == (True, None)
    # one process per job, forked by the warm process
    assert forked_pid not in (os.getpid(), warm.process.pid)

    # the same kinds of lines, with the same fields; reports between the first step and the epoch's end, and
    # those of the phases after it, come at most every 0.2 s, so how many there are depends on the clock
    for events in (forked_events, fresh_events):
        assert {e["event"] for e in events[:-1]} == {"progress"} and events[-1]["event"] == "done"
        assert all(set(e["progress"]) == jobs._PROGRESS_FIELDS for e in events[:-1])
    assert set(forked_events[-1]) == set(fresh_events[-1])
    def first_and_epoch_end(events):  # the phases after training report by the clock too: compare these two
        return events[0]["progress"], next(e["progress"] for e in events if e["progress"]["epoch_end"])

    for forked, fresh in zip(first_and_epoch_end(forked_events), first_and_epoch_end(fresh_events)):
        assert without_timing(forked) == without_timing(fresh)  # the same numbers

    forked_path, fresh_path = Path(forked_events[-1]["path"]), Path(fresh_events[-1]["path"])
    assert forked_path.parent == tmp_path / "forked" and fresh_path.parent == tmp_path / "fresh"
    assert os.listdir(tmp_path / "forked") == [forked_path.name]  # no temp file left beside it
    forked_model, forked_metadata = load_checkpoint(forked_path)
    fresh_model, fresh_metadata = load_checkpoint(fresh_path)
    assert set(forked_metadata) == set(fresh_metadata)
    assert without_timing(forked_metadata) == without_timing(fresh_metadata)  # owner, losses, history…
    assert forked_metadata["owner"] == "a" * 32
    forked_weights, fresh_weights = forked_model.state_dict(), fresh_model.state_dict()
    assert forked_weights.keys() == fresh_weights.keys()
    assert all(torch.equal(forked_weights[k], fresh_weights[k]) for k in forked_weights)  # one thread: bit for bit


@pytest.mark.slow  # two training jobs
def test_a_forked_job_cancels_and_fails_as_a_fresh_process_does(warm, tmp_path):
    forked = run_to_end(LONG, tmp_path / "forked", warm=True, stop_after_first_report=True)
    fresh = run_to_end(LONG, tmp_path / "fresh", warm=False, stop_after_first_report=True)
    for events, outcome, _ in (forked, fresh):
        assert outcome == (False, "the training process ended unexpectedly (exit code -15); nothing was saved")
        assert events[-1]["event"] == "progress" and events[-1]["progress"]["epoch"] < LONG.epochs
    assert os.listdir(tmp_path / "forked") == os.listdir(tmp_path / "fresh") == []

    forked_failure = run_to_end(DIVERGES, tmp_path / "forked", warm=True)[1]
    fresh_failure = run_to_end(DIVERGES, tmp_path / "fresh", warm=False)[1]
    assert forked_failure == fresh_failure and forked_failure[0] is False
    assert "smaller learning rate" in forked_failure[1]
    assert os.listdir(tmp_path / "forked") == os.listdir(tmp_path / "fresh") == []


@pytest.mark.slow  # training jobs
def test_when_the_warm_process_dies_its_job_fails_and_the_next_job_gets_a_new_one(warm, tmp_path):
    (tmp_path / "models").mkdir()
    manager = jobs.JobManager(folder=tmp_path / "models", cores=1)
    try:
        job = manager.start(LONG)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while manager.get(job.id).state == jobs.STARTING and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manager.get(job.id).state == jobs.RUNNING
        os.kill(warm.process.pid, signal.SIGKILL)  # the warm process this test module started
        ended = manager.wait(job.id, READY_TIMEOUT_S)
        assert ended.state == jobs.FAILED and "ended unexpectedly" in ended.error and "-9" in ended.error
        again = manager.wait(manager.start(TINY).id, READY_TIMEOUT_S)
        assert again.state == jobs.DONE, again.error
        assert jobs.warm_fork_server() is not warm and jobs.warm_fork_server().alive
    finally:
        manager.shutdown()
