"""How long each Latent page control takes to idle, in chromium: page switch, digit filter, box select, lasso,
slider step, projection switch each way, a new visit's first switch to 2-D. Medians (and the slowest) of --runs tries;
one markdown table on stdout.

    MNIST_ROOT=/path/to/data python scripts/latent_timing.py                  # this working tree
    MNIST_ROOT=/path/to/data python scripts/latent_timing.py --before main    # and `main`, alternating

--before REF checks REF out into a temporary `git worktree`, serves both versions (`streamlit run app.py`, each
from its own folder, each with its own copy of the checkpoints) and measures them in turns, control by control,
so that a busy machine slows both alike; the tab not being timed is frozen meanwhile (one visitor at a time, as
the goal is stated). The servers watch no files: an edited source would show "Source file
changed" and the page would never count as idle. "To idle" is from the click until the app's script state is
"notRunning" with no running widget for 0.5 s (the browser's drawing of the plots blocks that check, so it
counts); the 0.5 s is taken off. The load average is printed beside the table: compare ratios on a busy machine.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from streamlit_server import CHROMIUM_ARGS, IDLE_SELECTOR, QUIET_S, chromium_path, drag, running_app  # noqa: E402
from streamlit_server import SHOWN_PLOT as PLOT  # noqa: E402

TWO_D = "2-D: z₁ vs z₂ (select points)"
THREE_D = "3-D (drag to rotate)"
CONTROLS = ("page switch", "digit filter", "box select", "lasso", "slider step", "projection switch to 2-D",
            "projection switch to 3-D", "first switch to 2-D")


# Notes in the page when the script starts running: a run shorter than one poll would otherwise go unseen, and
# the idle page before it would be timed instead.
SEE_RUNS = """
window.__sawRun = false;
new MutationObserver(() => {
  if (document.querySelector('[data-testid="stApp"][data-test-script-state="running"]')) window.__sawRun = true;
}).observe(document, {attributes: true, subtree: true, attributeFilter: ["data-test-script-state"]});
"""
NO_RUN_S = 10  # a click that has started no run by then never will: the try is reported as "no run"


class NoRun(RuntimeError):
    """The control started no run of the app: nothing to time (an old version whose control did nothing)."""


def wait_until_idle(page, timeout_s: float = 120) -> float:
    """Seconds until the app is idle (see the module's docstring) after a run that started since the last wait,
    QUIET_S not counted."""
    start = time.perf_counter()
    quiet_since = None
    while time.perf_counter() - start < timeout_s:
        ran = page.evaluate("window.__sawRun === true")
        if not ran and time.perf_counter() - start > NO_RUN_S:
            raise NoRun()
        if not ran or page.locator('[data-testid="stStatusWidget"]').count() or not page.locator(IDLE_SELECTOR).count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.perf_counter()
        elif time.perf_counter() - quiet_since > QUIET_S:
            page.evaluate("window.__sawRun = false")
            return quiet_since - start
        time.sleep(0.05)
    raise RuntimeError("the app kept running for too long")


@contextmanager
def served(folder: Path, port: int, log_name: str):
    """`streamlit run app.py` from `folder` (its own code and a temp copy of its checkpoints) on `port`."""
    checkpoints = Path(tempfile.mkdtemp(prefix="latent-timing-")) / "checkpoints"
    shutil.copytree(folder / "checkpoints", checkpoints)
    env = {"PYTHONPATH": str(folder), "STUDIO_CHECKPOINTS": str(checkpoints)}
    try:
        with running_app(folder, log_name, port, timeout_s=180, env=env) as (url, _):
            yield url
    finally:
        shutil.rmtree(checkpoints.parent, ignore_errors=True)


@contextmanager
def worktree_of(ref: str):
    folder = Path(tempfile.mkdtemp(prefix="latent-timing-ref-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False)
        shutil.rmtree(folder.parent, ignore_errors=True)


def click_radio(page, label: str) -> None:
    page.locator('[data-testid="stRadio"] label').filter(has_text=label).first.click()


def first_plot_box(page) -> dict:
    plot = page.locator(PLOT).first
    plot.scroll_into_view_if_needed()
    return plot.locator(".nsewdrag").first.bounding_box()


class Visitor:
    """One browser tab on one server, set up for the controls."""

    def __init__(self, browser, url: str, size: tuple[int, int]):
        self.url = url
        self.page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        self.page.add_init_script(SEE_RUNS)
        self.devtools = self.page.context.new_cdp_session(self.page)
        self.page.goto(url)
        wait_until_idle(self.page)
        self.open_latent()  # the first visit fills the server's caches: not measured
        self.open_home()

    def freeze(self, frozen: bool) -> None:
        """A frozen tab runs no script and no animation frame (chromium's lifecycle state, as for a background
        tab): the version not being timed leaves the CPU to the one that is, as with one visitor."""
        self.devtools.send("Page.setWebLifecycleState", {"state": "frozen" if frozen else "active"})

    def open_latent(self) -> float:
        self.page.get_by_role("link", name="Latent space").first.click()
        seconds = wait_until_idle(self.page)
        self.page.locator(PLOT).first.wait_for(timeout=120_000)
        return seconds

    def open_home(self) -> None:
        self.page.get_by_role("link", name="Home").first.click()
        wait_until_idle(self.page)

    def page_switch(self, turn: int) -> float:
        self.open_home()
        return self.open_latent()

    def digit_filter(self, turn: int) -> float:
        self.page.locator('[data-testid="stButtonGroup"] button').filter(has_text="3").first.click()
        return wait_until_idle(self.page)

    def select(self, lasso: bool) -> float:
        if lasso:
            self.page.locator(PLOT).first.hover()
            self.page.locator(f'{PLOT} .modebar-btn[data-val="lasso"]').first.click()
        box = first_plot_box(self.page)
        x, y, w, h = box["x"], box["y"], box["width"], box["height"]
        if lasso:
            points = [(x + w * 0.4, y + h * 0.4), (x + w * 0.6, y + h * 0.35), (x + w * 0.65, y + h * 0.6),
                      (x + w * 0.45, y + h * 0.65), (x + w * 0.4, y + h * 0.41)]
        else:
            points = [(x + w * 0.4, y + h * 0.4), (x + w * 0.6, y + h * 0.6)]
        drag(self.page, points, steps=4)
        return wait_until_idle(self.page)

    def box_select(self, turn: int) -> float:
        return self.select(lasso=False)

    def lasso(self, turn: int) -> float:
        return self.select(lasso=True)

    def slider_step(self, turn: int) -> float:
        slider = self.page.locator('[data-testid="stSlider"]').filter(has_text="z₁").get_by_role("slider").first
        slider.scroll_into_view_if_needed()
        slider.focus()
        slider.press("ArrowRight" if turn % 2 == 0 else "ArrowLeft")
        return wait_until_idle(self.page)

    def projection_switch_to_2_d(self, turn: int) -> float:
        """From the 3-D view; the first turn is the visit's first 2-D view (the later ones may find it drawn)."""
        click_radio(self.page, TWO_D)
        seconds = wait_until_idle(self.page)
        click_radio(self.page, THREE_D)
        wait_until_idle(self.page)
        return seconds

    def projection_switch_to_3_d(self, turn: int) -> float:
        click_radio(self.page, TWO_D)
        wait_until_idle(self.page)
        click_radio(self.page, THREE_D)
        return wait_until_idle(self.page)

    def first_switch_to_2_d(self, turn: int) -> float:
        """A new visit's first switch to the 2-D view: nothing of it is drawn yet."""
        self.page.goto(f"{self.url}/latent")
        wait_until_idle(self.page)
        self.page.locator(PLOT).nth(1).wait_for(timeout=120_000)
        click_radio(self.page, TWO_D)
        return wait_until_idle(self.page)

    def prepare(self, control: str) -> None:
        """Where each control starts: the Latent page, latent 3; the 2-D view for selections."""
        if control in ("page switch", "first switch to 2-D"):
            return
        if not urlparse(self.page.url).path.rstrip("/").endswith("latent"):
            self.open_latent()
        view = TWO_D if control in ("box select", "lasso") else THREE_D if control.startswith("projection") else None
        if view is not None:
            click_radio(self.page, view)
            try:
                wait_until_idle(self.page)
            except NoRun:  # the view was on already
                pass

    def measure(self, control: str, turn: int) -> float:
        return getattr(self, control.replace(" ", "_").replace("-", "_").lower())(turn)


def shown(seconds: float) -> str:
    return "> 120 (never idle)" if seconds == float("inf") else f"{seconds:.1f}"


def summary(tries: list) -> str:
    """"median (slowest)" of the timed tries, and how many started no run."""
    timed = [t for t in tries if t is not None]
    text = f"{shown(statistics.median(timed))} ({shown(max(timed))})" if timed else "no run"
    return text + (f", {len(tries) - len(timed)} of {len(tries)} no run" if timed and len(timed) < len(tries) else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REF", help="also measure this git ref (a temporary worktree), alternating")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port", type=int, default=8630, help="first port; the version before uses the next")
    parser.add_argument("--size", default="1400x1000", help="the browser window, WIDTHxHEIGHT")
    parser.add_argument("--only", action="append", choices=CONTROLS, help="time this control only (repeatable)")
    args = parser.parse_args()
    controls = args.only or CONTROLS
    size = tuple(int(v) for v in args.size.split("x"))
    from playwright.sync_api import sync_playwright

    versions = {}
    with ExitStack() as stack:
        folders = {"now": ROOT}
        if args.before:
            folders = {f"before ({args.before})": stack.enter_context(worktree_of(args.before)), **folders}
        urls = {name: stack.enter_context(served(folder, args.port + i, f"latent-timing-{i}.log"))
                for i, (name, folder) in enumerate(folders.items())}
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        visitors = {name: Visitor(browser, url, size) for name, url in urls.items()}
        times = {name: {control: [] for control in controls} for name in visitors}
        load_before = os.getloadavg()

        def alone(visitor: Visitor) -> Visitor:
            for other in visitors.values():
                other.freeze(other is not visitor)
            return visitor

        for control in controls:
            for visitor in visitors.values():
                alone(visitor).prepare(control)
            for turn in range(args.runs):
                for name, visitor in visitors.items():  # alternating: one try of each version in turn
                    alone(visitor)
                    try:
                        times[name][control].append(visitor.measure(control, turn))
                    except NoRun:
                        times[name][control].append(None)
                    except RuntimeError:  # never idle within the limit: counted as the limit, and said so
                        times[name][control].append(float("inf"))
            print(f"{control}: " + ", ".join(f"{name} {[t if t is None else round(t, 2) for t in times[name][control]]}"
                                            for name in visitors), file=sys.stderr)
        load_after = os.getloadavg()
        browser.close()
        versions = times
    names = list(versions)
    print(f"| control (s to idle, {args.size}: median of {args.runs} (slowest)) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for control in controls:
        print(f"| {control} | " + " | ".join(summary(versions[n][control]) for n in names) + " |")
    print(f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after; {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
