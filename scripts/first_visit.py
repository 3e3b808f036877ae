"""How long a visitor waits on a cold server: each page opened first, by a fresh browser, on a freshly started
`streamlit run app.py`; prints a table.

Usage: MNIST_ROOT=/path/to/data python scripts/first_visit.py [--pages home draw latent histograms] [--rounds 1]

Per page: "first text", when the main area first shows anything (a spinner's text or the page itself), and
"idle", when the script has run and stopped and stayed so for QUIET_S (as tests/streamlit_server.wait_until_idle
waits), less that wait. Both from the moment the browser is sent to the page's URL.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from streamlit_server import CHROMIUM_ARGS, IDLE_SELECTOR, QUIET_S, chromium_path, running_app  # noqa: E402

PAGES = {"home": "/", "draw": "/draw", "latent": "/latent", "histograms": "/histograms"}
GOALS_S = {"home": 5.0, "draw": 5.0, "latent": 10.0, "histograms": 5.0}
TIMEOUT_S = 180


def visit(browser, url: str) -> tuple[float, float]:
    """(seconds to the main area's first text, seconds to idle) for one first visit in a fresh context."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        first_text = quiet_since = None
        while time.perf_counter() - start < TIMEOUT_S:
            now = time.perf_counter()
            if first_text is None and page.evaluate(
                    "() => (document.querySelector('[data-testid=\"stMain\"]')?.innerText || '').trim().length > 0"):
                first_text = now - start
            # Before the script's first run starts the app shows nothing and no running indicator either:
            # quiet counts only once the main area holds something and the script has run and stopped.
            running = page.locator('[data-testid="stStatusWidget"]').count() > 0 or not page.locator(IDLE_SELECTOR).count()
            if running or first_text is None:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > QUIET_S:
                return first_text, quiet_since - start
            time.sleep(0.05)
        raise RuntimeError(f"{url} was still running after {TIMEOUT_S} s")
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES))
    parser.add_argument("--rounds", type=int, default=1, help="fresh servers per page (the table shows medians)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout to serve, e.g. an older one to compare")
    args = parser.parse_args()
    if not os.environ.get("MNIST_ROOT"):
        print("note: MNIST_ROOT is not set; the app reads data/ (or falls back to the 5k subset)", file=sys.stderr)
    from playwright.sync_api import sync_playwright

    results = {name: [] for name in args.pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        for _ in range(args.rounds):
            for name in args.pages:
                with running_app(args.repo, log_name=f"first-visit-{name}.log") as (url, _):
                    results[name].append(visit(browser, url + PAGES[name]))
                print(f"  {name}: first text {results[name][-1][0]:.1f} s, idle {results[name][-1][1]:.1f} s",
                      file=sys.stderr)
        browser.close()

    load = os.getloadavg()[0]
    print(f"{args.repo}: load average {load:.1f} on {os.cpu_count()} cores at the end", file=sys.stderr)
    print("| page | first text in the main area | idle (first visit, fresh server) | goal |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        first = statistics.median(r[0] for r in runs)
        idle = statistics.median(r[1] for r in runs)
        worst = f" (max {max(r[1] for r in runs):.1f} s)" if len(runs) > 1 else ""
        print(f"| {name} | {first:.1f} s | {idle:.1f} s{worst} | ≤ {GOALS_S[name]:g} s "
              f"{'✓' if idle <= GOALS_S[name] else '✗'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
