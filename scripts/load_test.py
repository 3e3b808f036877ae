"""Load test: N first visitors open /draw on a fresh `streamlit run app.py` at the same moment; or one flooding
client (--flood); or two big trainings watched from open tabs (--jobs).

    python scripts/load_test.py --sessions 5 [--warm] [--profile] [--port P] [--repo PATH] [--json out.json]
    python scripts/load_test.py --flood 20 [--visits 3] [--warmup 30] [--repo PATH]
    python scripts/load_test.py --jobs [--visits 3] [--window 30] [--repo PATH]

Starts its own server (cwd = --repo, MNIST_ROOT passed through, default <repo>/../shared/data), then one
headless chromium with N contexts. Each session opens /draw, picks Input → "Test digit", a synthetic flaw,
waits for the anomaly score, then opens "Latent space". Errors on screen (stException, st.error) and the
text "ImportError" are recorded at every step. The server's RSS (its process and children) is sampled every
0.2 s. CPU seconds per session: the server's (its process, from /proc) and the browsers' (every other process
this script started: chromium and Playwright's driver); with --profile, py-spy samples the server and the
script says where its CPU went. Exit status 1 if any session did not complete or saw an error. Not a pytest test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from streamlit_client import StreamlitClient  # noqa: E402

from streamlit_server import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM_ARGS,
    ERROR_SELECTOR,
    IDLE_SELECTOR,
    QUIET_S,
    ROOT,
    chromium_path,
    cpu_seconds,
    running_app,
)

FLAW = "scratch: a stray stroke"
STEP_TIMEOUT_S = 180


@dataclass
class Session:
    index: int
    completed: bool = False
    step: str = "start"  # the last step begun
    errors: list[str] = field(default_factory=list)  # distinct error texts seen (first 200 chars)
    import_error: bool = False
    time_to_idle_s: float | None = None
    total_s: float | None = None
    failure: str | None = None  # why it did not complete

    @property
    def exceptions(self) -> int:
        return len(self.errors)


def tree_rss_kb(pid: int) -> int:
    """VmRSS of a process and all its descendants, in kB (0 for processes that are gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak_kb = pid, every_s, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (not its children), or None once it is gone."""
    try:
        return cpu_seconds(pid)
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                out += children
                todo += children
        except (OSError, ValueError):
            pass
    return out


class BrowserCpu(threading.Thread):
    """CPU seconds of every process this load test started other than the server (Playwright's driver, chromium
    and its renderers and GPU/utility processes), sampled every 0.25 s: a process that exits keeps its last
    sample (at most 0.25 s of it is missed)."""

    def __init__(self, server_pid: int, every_s: float = 0.25):
        super().__init__(daemon=True)
        self.server_pid, self.every_s = server_pid, every_s
        self.last: dict[int, float] = {}
        self._halt = threading.Event()
        self.base = self._sample()

    def _sample(self) -> dict[int, float]:
        skip = {self.server_pid, *descendants(self.server_pid)}
        return {p: c for p in descendants(os.getpid()) if p not in skip and (c := process_cpu_s(p)) is not None}

    def run(self) -> None:
        while not self._halt.is_set():
            self.last.update(self._sample())
            self._halt.wait(self.every_s)

    def stop(self) -> float:
        """Stop sampling; the CPU seconds used since it was made."""
        self._halt.set()
        self.join()
        self.last.update(self._sample())
        return sum(c - self.base.get(p, 0.0) for p, c in self.last.items())


WAITING = frozenset({"_hold_compute_lock", "acquire", "wait", "_wait_for_tstate_lock", "sleep", "select", "poll"})
# Leaf frames that sit in a C call that waits (time.sleep, queue.get), which --nonblocking py-spy counts as busy
WAITING_AT = ("(streamlit/watcher/polling_path_watcher.py:90)", "(concurrent/futures/thread.py:81)")


class ServerProfile:
    """py-spy sampling the server process (every thread that is not idle) while the sessions run; `top()` says
    where its CPU went: by the innermost function of this repo on the stack, and by area."""

    def __init__(self, pid: int, out: Path, rate: int = 100):
        import shutil
        import subprocess

        spy = shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.out = out
        self.process = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                                         "--output", str(out), "--nonblocking", "--threads"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        import signal

        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)

    def top(self, repo: Path, n: int = 15) -> dict:
        """Samples by the innermost frame of this repo's code (pages/, studio/, vae/, app.py) and by area."""
        from collections import Counter

        # py-spy names a file by its path under the sys.path entry it was found from: a page by its bare name
        files = {f"{p.parent.name}/{p.name}": f"{p.parent.name}/{p.name}" for d in ("studio", "vae", "vae/server")
                 for p in (repo / d).glob("*.py")}
        files.update({p.name: f"pages/{p.name}" for p in (repo / "pages").glob("*.py")})
        files.update({f"pages/{p.name}": f"pages/{p.name}" for p in (repo / "pages").glob("*.py")})
        ours, areas, total = Counter(), Counter(), 0
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            count = int(count)
            frames = stack.split(";")
            if frames[-1].split(" (")[0] in WAITING or frames[-1].endswith(WAITING_AT):  # waiting, not working
                areas["waiting (locks, sleeps): not CPU, left out of the shares"] += count
                continue
            total += count
            mine = [(m.group(1), files[name], i) for i, f in enumerate(frames)
                    if (m := re.search(r"^(.*) \((.*):(\d+)\)$", f)) and (name := m.group(2).replace(str(repo) + "/", ""))
                    in files and files[name]]
            # The guard wraps Streamlit's whole websocket handler: below its frame, Streamlit's work is the server's
            if mine and mine[-1][1] == "studio/guard.py" and any("streamlit/" in f for f in frames[mine[-1][2] + 1:]):
                mine = []
            if mine and mine[-1][1] == "studio/guard.py":
                ours[f"studio/guard.py: {mine[-1][0]}"] += count
                areas["the websocket guard"] += count
            elif mine:
                function, file, _ = mine[-1]
                ours[f"{file}: {function}"] += count
                areas["the app's script runs"] += count
            elif any("scriptrunner" in f for f in frames):
                areas["script runs, in Streamlit (widgets, session state, before/after the page)"] += count
            else:
                areas["the server, other (event loop, websocket, protobuf, static files)"] += count
        return {"samples": total, "areas": areas.most_common(), "innermost_app_function": ours.most_common(n)}


async def wait_until_idle(page, timeout_s: float = STEP_TIMEOUT_S) -> None:
    """As tests/streamlit_server.wait_until_idle: the script has run and stopped, and stayed so for QUIET_S."""
    await page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if await page.locator('[data-testid="stStatusWidget"]').count() or not await page.locator(IDLE_SELECTOR).count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > QUIET_S:
            return
        await asyncio.sleep(0.25)
    raise TimeoutError("the app kept running for too long")


async def check_errors(page, session: Session) -> None:
    errors = page.locator(ERROR_SELECTOR)
    for i in range(await errors.count()):
        text = " ".join((await errors.nth(i).inner_text()).split())[:200]
        if text not in session.errors:
            session.errors.append(text)
    if "ImportError" in await page.locator("body").inner_text():
        session.import_error = True
        if not any("ImportError" in e for e in session.errors):
            session.errors.append("ImportError (text on the page)")


async def run_session(browser, url: str, session: Session, start: asyncio.Event) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await start.wait()
    t0 = time.monotonic()
    try:
        session.step = "open /draw"
        await page.goto(f"{url}/draw")
        await wait_until_idle(page)
        session.time_to_idle_s = round(time.monotonic() - t0, 2)
        await check_errors(page, session)

        session.step = "Input: Test digit"
        radio = page.locator('[data-testid="stRadio"]').filter(has_text="Input")
        await radio.get_by_text("Test digit", exact=True).click()
        await wait_until_idle(page)
        await check_errors(page, session)

        session.step = f"Synthetic flaw: {FLAW}"
        await page.locator('[data-testid="stSelectbox"]').filter(has_text="Synthetic flaw").click()
        await page.get_by_role("option", name=FLAW).click()
        await wait_until_idle(page)
        score = page.locator('[data-testid="stMetric"]').filter(has_text="Anomaly score")
        await score.first.wait_for(timeout=STEP_TIMEOUT_S * 1000)
        await check_errors(page, session)

        session.step = "open Latent space"
        nav = page.locator('[data-testid="stSidebarNav"]')
        link = (nav if await nav.count() else page).get_by_role("link", name="Latent space")
        if not await link.count():  # e.g. Streamlit's automatic pages/ navigation instead of app.py's
            names = [" ".join(t.split()) for t in await nav.get_by_role("link").all_inner_texts()]
            raise RuntimeError(f"no 'Latent space' link in the navigation; it lists {names}")
        await link.first.click()
        await wait_until_idle(page)
        await check_errors(page, session)
        session.completed = True
    except Exception as exc:  # noqa: BLE001 - a failed session is a result, not a crash of the load test
        session.failure = f"{session.step}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        try:
            await check_errors(page, session)
        except Exception:  # noqa: BLE001
            pass
    finally:
        session.total_s = round(time.monotonic() - t0, 2)
        if not session.completed or session.errors:
            ARTIFACTS.mkdir(exist_ok=True)
            try:
                await page.screenshot(path=str(ARTIFACTS / f"load-test-{session.index}.png"), full_page=True)
            except Exception:  # noqa: BLE001
                pass
        await context.close()


async def run_sessions(url: str, n: int) -> list[Session]:
    sessions = [Session(i) for i in range(n)]
    start = asyncio.Event()
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        tasks = [asyncio.create_task(run_session(browser, url, s, start)) for s in sessions]
        await asyncio.sleep(2)  # every context and page is made; then all open /draw at once
        start.set()
        await asyncio.gather(*tasks)
        await browser.close()
    return sessions


def report(sessions: list[Session], peak_kb: int) -> dict:
    print(f"{'#':>2}  {'done':4}  {'errors':>6}  {'idle s':>7}  {'total s':>7}  first error / failure")
    for s in sessions:
        note = s.failure or (s.errors[0] if s.errors else "")
        idle = f"{s.time_to_idle_s:.1f}" if s.time_to_idle_s is not None else "-"
        print(f"{s.index:>2}  {'yes' if s.completed else 'NO':4}  {s.exceptions:>6}  {idle:>7}  {s.total_s:>7.1f}  {note[:120]}")
    idles = [s.time_to_idle_s for s in sessions if s.time_to_idle_s is not None]
    summary = {
        "sessions": len(sessions),
        "completed": sum(s.completed for s in sessions),
        "exceptions": sum(s.exceptions for s in sessions),
        "sessions_with_import_error": sum(s.import_error for s in sessions),
        "time_to_idle_median_s": round(statistics.median(idles), 2) if idles else None,
        "time_to_idle_max_s": round(max(idles), 2) if idles else None,
        "server_peak_rss_mb": round(peak_kb / 1024, 1),
    }
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    summary["line"] = (f"sessions {summary['sessions']}: completed {summary['completed']}/{summary['sessions']}, "
                       f"exceptions {summary['exceptions']}, time to idle median {fmt(summary['time_to_idle_median_s'])} s"
                       f" / max {fmt(summary['time_to_idle_max_s'])} s, server peak RSS {summary['server_peak_rss_mb']:.0f} MB")
    print(summary["line"])
    return {"summary": summary, "per_session": [dict(asdict(s), exceptions=s.exceptions) for s in sessions]}


# --- flood mode -------------------------------------------------------------------------------------------

FLOOD_SOURCES = (f"127.0.0.{i}" for i in range(2, 255))  # any 127.x reaches the server, and counts apart


class Flooder(threading.Thread):
    """A plain websocket client from an address of its own (`FLOOD_SOURCES`, a fresh one each: a full burst of
    credit) asking for a rerun of `page` `rate` times a second, reading every reply. It connects and finishes
    its own first visit when made (an ordinary visit, not timed against anyone); `start()` starts the flood."""

    def __init__(self, url: str, rate: float, page: str = ""):
        super().__init__(daemon=True)
        self.rate, self.source = rate, next(FLOOD_SOURCES)
        self.client = StreamlitClient(url, page=page, source=self.source)
        self.client.run(STEP_TIMEOUT_S)
        self.sent = self.finished = 0
        self.failure: str | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            due = time.monotonic()
            while not self._halt.is_set():
                self.client.send_rerun()
                self.sent += 1
                due += 1 / self.rate
                while (left := due - time.monotonic()) > 0:
                    self.client.receive(min(left, 0.05))
                self.finished = len(self.client.finished_statuses) - 1
        except Exception as exc:  # noqa: BLE001 - reported with the results
            self.failure = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.client.close()


def flood_test(url: str, pid: int, rate: float, visits: int, warmup_s: float, page: str) -> dict:
    """Another visitor's first visit (a fresh browser context opening /, until idle) with no flood; in the flood's
    first seconds (a fresh flooder for each visit, its burst of credit unspent: the flood and the visit start
    together); and once a flood has gone on for `warmup_s`. Medians, and the server's CPU meanwhile."""
    from first_visit import TIMEOUT_S
    from first_visit import visit as first_visit
    from playwright.sync_api import sync_playwright

    def visit(browser, url):  # (first text, idle); a visit still running after TIMEOUT_S counts as TIMEOUT_S
        try:
            return first_visit(browser, url)
        except Exception as exc:  # noqa: BLE001 - the page did not load or finish: that is the result
            print(f"  a first visit did not finish ({type(exc).__name__}); counted as {TIMEOUT_S} s", file=sys.stderr)
            return TIMEOUT_S, TIMEOUT_S

    times: dict[str, list[float]] = {"no flood": [], "flood's first seconds": [], "flood going on": []}
    flooders = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        visit(browser, url)  # the server's own first visit: caches filled, as for any later visitor
        for _ in range(visits):
            times["no flood"].append(visit(browser, url)[1])
        cpu_first = 0.0
        for _ in range(visits):
            flooder = Flooder(url, rate, page)
            cpu_before, started = cpu_seconds(pid), time.monotonic()
            flooder.start()
            times["flood's first seconds"].append(visit(browser, url)[1])
            cpu_first += (cpu_seconds(pid) - cpu_before) / (time.monotonic() - started) / visits
            flooder.stop()
            flooders.append(flooder)
            time.sleep(2)  # its last runs end
        flooder = Flooder(url, rate, page)
        started = time.monotonic()
        flooder.start()
        while time.monotonic() - started < warmup_s:
            time.sleep(0.5)
        cpu_warm, warm_at = cpu_seconds(pid), time.monotonic()
        for _ in range(visits):
            times["flood going on"].append(visit(browser, url)[1])
        cpu_end, ended = cpu_seconds(pid), time.monotonic()
        flooder.stop()
        flooders.append(flooder)
        browser.close()
    base = statistics.median(times["no flood"])
    summary = {name: {"median_s": round(statistics.median(t), 2), "all_s": [round(x, 2) for x in t],
                      "ratio": round(statistics.median(t) / base, 2), "worst_ratio": round(max(t) / base, 2)}
               for name, t in times.items()}
    summary["flooders"] = [{"rate": rate, "page": page or "home", "source": f.source, "sent": f.sent,
                            "runs_ended": f.finished, "failure": f.failure} for f in flooders]
    summary["server_cpu_cores"] = {"first_seconds": round(cpu_first, 2),
                                   "going_on": round((cpu_end - cpu_warm) / (ended - warm_at), 2)}
    summary["load_average"] = round(os.getloadavg()[0], 1)
    for name, t in times.items():
        print(f"{name:>22}: first visit idle after {summary[name]['median_s']:.1f} s (median of {len(t)}: "
              f"{', '.join(f'{x:.1f}' for x in t)}) = {summary[name]['ratio']:.2f}× no flood, "
              f"worst {summary[name]['worst_ratio']:.2f}×")
    for f in flooders:
        print(f"flooder {f.source} at {rate:g} msgs/s on {page or 'home'}: {f.sent} sent, {f.finished} runs ended"
              f"{'; ' + f.failure if f.failure else ''}")
    print(f"server CPU: {summary['server_cpu_cores']['first_seconds']} cores in the flood's first seconds, "
          f"{summary['server_cpu_cores']['going_on']} after {warmup_s:g} s; load average {summary['load_average']}")
    return summary


# --- two big jobs watched from open tabs ----------------------------------------------------------------

BIG_JOB = (("Latent size", "256"), ("Batch size", "16"), ("Epochs", "10"))  # the slowest the form allows


def start_job_in_a_tab(browser, url: str):
    """A visitor of their own opens the app and starts the biggest job the form allows; (context, page)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url)
    wait_for_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Retrain a model").click()
    for label, value in BIG_JOB:
        field = sidebar.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")
    sidebar.get_by_role("button", name="Train in the background").click()
    sidebar.get_by_text("Cancel", exact=True).first.wait_for(timeout=STEP_TIMEOUT_S * 1000)
    return context, page


def wait_for_idle(page) -> None:
    from streamlit_server import wait_until_idle as wait_sync

    wait_sync(page, STEP_TIMEOUT_S)


def job_processes(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def server_cores(pid: int, seconds: float) -> float:
    """The server process's own CPU use (its jobs not counted) over `seconds`, in cores."""
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


def jobs_test(url: str, pid: int, visits: int, window_s: float) -> dict:
    """A fresh visitor's first visit, and the server's own CPU, with no job; with two big jobs whose owners'
    tabs are open (each refreshing its progress); with the same jobs and those tabs closed."""
    from first_visit import visit
    from playwright.sync_api import sync_playwright

    result: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        visit(browser, url)  # the server's own first visit: caches filled, as for any later visitor
        result["no jobs"] = {"server_cores": server_cores(pid, window_s),
                             "first_visits_s": [visit(browser, url)[1] for _ in range(visits)]}
        tabs = [start_job_in_a_tab(browser, url) for _ in range(2)]
        time.sleep(10)  # the tabs' own runs after pressing Train are over; only their progress refreshes go on
        jobs = job_processes(pid)
        result["jobs"] = {"processes": len(jobs), "nice": [nice_of(j) for j in jobs]}
        result["two jobs, owners' tabs open"] = {"server_cores": server_cores(pid, window_s),
                                                  "first_visits_s": [visit(browser, url)[1] for _ in range(visits)]}
        for context, _ in tabs:
            context.close()
        time.sleep(3)
        result["two jobs, tabs closed"] = {"server_cores": server_cores(pid, window_s),
                                           "first_visits_s": [visit(browser, url)[1] for _ in range(visits)]}
        result["jobs"]["still running"] = len(job_processes(pid))
        browser.close()
    open_tabs, closed = result["two jobs, owners' tabs open"], result["two jobs, tabs closed"]
    result["cores_per_open_tab"] = round((open_tabs["server_cores"] - closed["server_cores"]) / 2, 3)
    for name in ("no jobs", "two jobs, owners' tabs open", "two jobs, tabs closed"):
        r = result[name]
        r["server_cores"] = round(r["server_cores"], 3)
        r["median_s"] = round(statistics.median(r["first_visits_s"]), 2)
        print(f"{name:>28}: first visit idle after {r['median_s']:.1f} s (of {len(r['first_visits_s'])}: "
              f"{', '.join(f'{x:.1f}' for x in r['first_visits_s'])}); server {r['server_cores']:.2f} cores")
    print(f"jobs: {result['jobs']}; server CPU per open progress tab: {result['cores_per_open_tab']:.3f} cores")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=None, help="simultaneous browser sessions")
    parser.add_argument("--flood", type=float, metavar="MSGS_PER_S",
                        help="flood mode: one client asks for reruns this often; other visitors' first visits timed")
    parser.add_argument("--flood-page", default="", help="the page the flooder reruns (default: home)")
    parser.add_argument("--visits", type=int, default=3, help="flood mode: first visits timed in each phase")
    parser.add_argument("--warmup", type=float, default=30.0, help="flood mode: seconds of flood before timing")
    parser.add_argument("--warm", action="store_true",
                        help="sessions mode: one session first, not counted (the server's once-per-model work done)")
    parser.add_argument("--profile", action="store_true",
                        help="sessions mode: sample the server with py-spy and say where its CPU went")
    parser.add_argument("--jobs", action="store_true",
                        help="two big trainings whose owners' tabs stay open; other visitors' first visits timed")
    parser.add_argument("--window", type=float, default=30.0, help="jobs mode: seconds of CPU measured per phase")
    parser.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the app's repo root (default: this script's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if sum((args.sessions is not None, args.flood is not None, args.jobs)) != 1:
        parser.error("give one of --sessions N, --flood RATE, --jobs")
    if args.sessions is not None and args.sessions < 1:
        parser.error("--sessions must be at least 1")
    try:
        chromium_path()
    except RuntimeError as exc:
        parser.error(str(exc))

    repo = args.repo.resolve()
    if args.jobs:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        with running_app(repo, "load-test-jobs-server.log", args.port) as (url, process):
            print(f"server {url} (repo {repo}); two jobs of {dict(BIG_JOB)} with their tabs open")
            result = jobs_test(url, process.pid, args.visits, args.window)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0
    if args.flood is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        with running_app(repo, "load-test-flood-server.log", args.port) as (url, process):
            print(f"server {url} (repo {repo}); flood at {args.flood:g} msgs/s, each flooder from an address of its own")
            result = flood_test(url, process.pid, args.flood, args.visits, args.warmup, args.flood_page)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0
    with running_app(repo, "load-test-server.log", args.port) as (url, process):
        if args.warm:  # one session first, untimed: what the server computes once (models, fits) is done
            print(f"server {url}: a first session warms it: {asyncio.run(run_sessions(url, 1))[0].failure or 'done'}")
        sampler = RssSampler(process.pid)
        sampler.start()
        browsers = BrowserCpu(process.pid)
        browsers.start()
        profile = ServerProfile(process.pid, ARTIFACTS / "load-test-profile.txt") if args.profile else None
        server_before = cpu_seconds(process.pid)
        try:
            print(f"server {url} (repo {repo}); {args.sessions} sessions open /draw at once")
            sessions = asyncio.run(run_sessions(url, args.sessions))
        finally:
            server_cpu = cpu_seconds(process.pid) - server_before
            browser_cpu = browsers.stop()
            if profile:
                profile.stop()
            sampler.stop()
    result = report(sessions, sampler.peak_kb)
    n = len(sessions)
    result["cpu_s_per_session"] = {"server": round(server_cpu / n, 2), "browsers": round(browser_cpu / n, 2),
                                   "load_average": round(os.getloadavg()[0], 1)}
    print(f"CPU seconds per session: server {server_cpu / n:.2f}, browsers (chromium, Playwright) {browser_cpu / n:.2f}"
          f"; load average {os.getloadavg()[0]:.1f}")
    if profile:
        result["server_profile"] = top = profile.top(repo)
        total = max(1, top["samples"])
        print(f"where the server's CPU went ({top['samples']} samples of busy threads, py-spy; "
              f"raw stacks in {profile.out}):")
        for area, count in top["areas"]:
            print(f"  {100 * count / total:5.1f} %  {area}")
        print("  by the innermost function of this repo on the stack:")
        for frame, count in top["innermost_app_function"]:
            print(f"  {100 * count / total:5.1f} %  {frame}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(s.completed and not s.errors for s in sessions) else 1


if __name__ == "__main__":
    sys.exit(main())
