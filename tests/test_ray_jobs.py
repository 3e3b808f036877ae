"""Training jobs on a real Ray cluster: a head started on 127.0.0.1 with `ray start` (one CPU), the app's
JobManager connected to it by address, as $STUDIO_RAY_ADDRESS does in the app. Needs the ray extra
(pip install -e .[ray]; scripts/test.sh installs it)."""
from __future__ import annotations

import atexit
import os
import pickle
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from vae import load_checkpoint
from vae.checkpoint import CheckpointError, save_checkpoint
from vae.model import build_model
from vae.server import jobs, registry
from vae.training_run import TrainingSpec

from streamlit_server import free_port

# Ray's token authentication, as the README asks for: one token for the head and for this process (the
# studio's server), in the environment before ray is imported (it reads them then).
TOKEN_FOLDER = Path(tempfile.mkdtemp(prefix="ray-token-"))
(TOKEN_FOLDER / "token").write_text(secrets.token_hex(32))
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(TOKEN_FOLDER / "token"))
atexit.register(shutil.rmtree, TOKEN_FOLDER, ignore_errors=True)

try:
    from vae.server import ray_jobs  # it imports ray, set so that no call ever starts a cluster of its own

    ray = ray_jobs.ray
except ImportError:  # fail, naming the fix, rather than skip silently
    ray = ray_jobs = None
NO_RAY = "Ray is not installed: pip install -e '.[ray]' (or deselect these tests with -m 'not cluster')"

TINY = TrainingSpec(kind="vae", latent_dim=2, epochs=1, batch_size=128, train_size=512)
LONG = TrainingSpec(kind="vae", latent_dim=2, epochs=5, batch_size=128)  # minutes: cancelled long before
DIVERGES = TrainingSpec(kind="vae", latent_dim=2, epochs=3, batch_size=128, lr=10.0, train_size=512)
TIMEOUT_S = 300  # a head and a worker importing torch on a busy shared machine; no test asserts on time


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 with one CPU, in its own temp folder; `--block` keeps `ray start` in the
    foreground, so that ending it (by its pid) stops the head's processes and only those."""
    if ray is None:
        pytest.fail(NO_RAY)
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    command = [str(ray_cli) if ray_cli.exists() else shutil.which("ray"), "start", "--head", "--block",
               "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0",
               "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", folder,
               "--object-store-memory", str(200 * 2**20)]
    with open(Path(folder) / "head.log", "w") as head_log:
        head = subprocess.Popen(command, stdout=head_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while head.poll() is None and time.monotonic() < deadline:  # until its GCS listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        assert head.poll() is None, (Path(folder) / "head.log").read_text()[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.terminate()
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def runner(ray_head, mnist_root):
    runner = ray_jobs.RayRunner(ray_head, data_root=str(mnist_root))
    assert runner.wait_ready(TIMEOUT_S), "the runner did not connect to the head"  # it connects in the background
    return runner


@pytest.fixture
def manager(runner, tmp_path):
    (tmp_path / "models").mkdir()
    m = jobs.JobManager(folder=tmp_path / "models", runner=runner)
    yield m
    m.shutdown(timeout=TIMEOUT_S)


@pytest.mark.cluster
@pytest.mark.slow
def test_a_job_on_the_cluster_reports_progress_and_the_server_saves_its_model(manager):
    assert manager.max_jobs == 1  # the head has one CPU, a job asks for one
    job = manager.start(TINY, owner="a" * 32, address="198.51.100.1")
    ended = manager.wait(job.id, TIMEOUT_S)
    assert ended.state == jobs.DONE, ended.error
    assert ended.progress.epoch == 1 and ended.fraction_done == 1.0  # its last report: a phase after training
    assert ended.first_report is not None and ended.started < ended.first_report < ended.finished
    assert {series for _, series, _ in ended.curve} == {"train", "test"}
    assert ended.path.parent == manager.folder and ended.path.name.startswith("vae-z2-")
    assert os.listdir(manager.folder) == [ended.path.name]  # no temp file beside it
    model, metadata = load_checkpoint(ended.path)
    assert (model.kind, model.latent_dim, metadata["train_images"]) == ("vae", 2, 512)
    assert metadata["owner"] == "a" * 32 and metadata["origin"] == registry.origin_key("198.51.100.1")
    assert {"train_loss", "test_loss", "spot_level", "history", "created"} <= set(metadata)
    assert [e.path for e in registry.owned(registry.scan(manager.folder), "a" * 32)] == [ended.path]


@pytest.mark.cluster
@pytest.mark.slow
def test_a_cancelled_job_frees_its_cpu_for_the_next_in_the_queue(manager):
    long_job = manager.start(LONG, owner="b" * 32)
    waiting = manager.start(TINY, owner="c" * 32)
    assert manager.get(waiting.id).state == jobs.QUEUED and manager.get(waiting.id).place == 1  # one CPU
    deadline = time.monotonic() + TIMEOUT_S
    while manager.get(long_job.id).state == jobs.STARTING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager.get(long_job.id).state == jobs.RUNNING
    assert not manager.cancel(long_job.id, owner="c" * 32)  # someone else's
    assert manager.cancel(long_job.id, owner="b" * 32)
    cancelled = manager.wait(long_job.id, TIMEOUT_S)
    assert cancelled.state == jobs.CANCELLED and cancelled.outcome == "Cancelled: nothing was saved."
    assert cancelled.progress.epoch < LONG.epochs
    done = manager.wait(waiting.id, TIMEOUT_S)  # it got the CPU the cancelled task gave back
    assert done.state == jobs.DONE, done.error
    assert os.listdir(manager.folder) == [done.path.name]


@pytest.mark.cluster
@pytest.mark.slow
def test_a_failing_job_on_the_cluster_says_why_and_saves_nothing(manager):
    ended = manager.wait(manager.start(DIVERGES).id, TIMEOUT_S)
    assert ended.state == jobs.FAILED
    assert "nothing was saved" in ended.error and "smaller learning rate" in ended.error  # the CLI's words
    assert os.listdir(manager.folder) == []


@pytest.mark.cluster
@pytest.mark.slow  # starts the head
def test_the_setting_chooses_the_cluster_and_without_it_jobs_stay_local(runner, ray_head, monkeypatch):
    monkeypatch.setenv(jobs.RAY_ADDRESS_SETTING, ray_head)
    chosen = jobs.default_runner()
    assert isinstance(chosen, ray_jobs.RayRunner) and chosen.address == ray_head
    assert chosen.wait_ready(TIMEOUT_S)  # its connecting thread ends here, not after the head has gone
    monkeypatch.delenv(jobs.RAY_ADDRESS_SETTING)
    assert isinstance(jobs.default_runner(), jobs.LocalRunner)


# --- what comes back from the cluster is checked like an upload -------------------------------------------

def test_a_returned_checkpoint_gets_the_owner_the_server_decides(tmp_path):
    if ray is None:
        pytest.fail(NO_RAY)
    sent = tmp_path / "sent.pt"
    save_checkpoint(build_model("vae", 2), sent, {"owner": "f" * 32, "origin": "e" * 32, "epochs": 1})
    (tmp_path / "models").mkdir()
    path = ray_jobs.save_returned_checkpoint(sent.read_bytes(), TINY, tmp_path / "models", "a" * 32, None)
    metadata = load_checkpoint(path)[1]
    assert metadata["owner"] == "a" * 32 and "origin" not in metadata and metadata["epochs"] == 1
    second = ray_jobs.save_returned_checkpoint(sent.read_bytes(), TINY, tmp_path / "models", None, None)
    assert second != path and "owner" not in load_checkpoint(second)[1]  # never over another's file


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ran",))


@pytest.mark.parametrize("payload", [b"not a checkpoint", pickle.dumps(RunsCode()), "other model"])
def test_bytes_that_are_not_the_asked_model_are_refused_and_nothing_is_written(tmp_path, payload):
    if ray is None:
        pytest.fail(NO_RAY)
    if payload == "other model":
        save_checkpoint(build_model("ae", 4), tmp_path / "ae.pt")
        payload = (tmp_path / "ae.pt").read_bytes()
    (tmp_path / "models").mkdir()
    with pytest.raises(CheckpointError):
        ray_jobs.save_returned_checkpoint(payload, TINY, tmp_path / "models", "a" * 32, None)
    assert os.listdir(tmp_path / "models") == [] and not Path("ran").exists()
