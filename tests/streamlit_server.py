"""A real `streamlit run app.py` on a free local port, and Debian's chromium to visit it.

Used by the browser tests (through conftest's fixtures) and by scripts/load_test.py.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the networking flags, chromium's background connections are refused by a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_path() -> str:
    """Debian's chromium, or an error that says how to get it (Playwright cannot download browsers here)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Debian chromium is not installed at {CHROMIUM}: apt-get install chromium")
    return CHROMIUM


@contextlib.contextmanager
def running_app(repo: Path = ROOT, log_name: str = "streamlit.log", port: int | None = None,
                timeout_s: float = 120, mnist_root: str | os.PathLike | None = None, env: dict | None = None):
    """Start `streamlit run app.py` in `repo`, wait for its health check, yield (url, process); stop it after.

    The app reads MNIST from `mnist_root` if given, else from $MNIST_ROOT as set; `env` adds to the environment.
    The file watcher is off: an edit to the code while a test runs must not leave the page showing "File change"
    forever.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    port = port or free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    if mnist_root is not None:
        env["MNIST_ROOT"] = str(mnist_root)
    with open(ARTIFACTS / log_name, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout_s
            while not _healthy(url):
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"streamlit did not start (exit code {process.poll()}); "
                                       f"see {ARTIFACTS / log_name}")
                time.sleep(0.5)
            yield url, process
        finally:
            _stop(process)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (its training jobs too), then SIGKILL."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


IDLE_SELECTOR = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# How long the script must stay stopped before a page counts as idle: the script state already tells a
# pending rerun ("rerunRequested") from the end of the run, so this only has to outlast a message in flight.
QUIET_S = 0.5


def wait_until_idle(page, timeout_s: float = 180) -> None:
    """Wait until the script has run and stopped, and stayed so for QUIET_S. (Playwright's sync API.)

    Idle is the app's own script state "notRunning" (not "initial": a visitor's first run can start seconds
    late while other sessions import PyTorch; not "rerunRequested": a click's rerun may not have begun yet)
    with no 'running' status widget shown."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_s * 1000)
    deadline = time.time() + timeout_s
    quiet_since = None
    while time.time() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() or not page.locator(IDLE_SELECTOR).count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > QUIET_S:
            return
        time.sleep(0.1)
    raise AssertionError("the app kept running for too long")


# A Plotly graph on screen: a view switched away from stays in the page, hidden (studio/plotly_view.py).
SHOWN_PLOT = '.js-plotly-plot:not([style*="display: none"])'


def drag(page, points, steps: int = 6) -> None:
    """Press the mouse at the first point, move through the others, release."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process (not its children) has used, in seconds (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB (Linux's /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")
