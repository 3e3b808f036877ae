"""How long a visitor waits for the first verdict on a cold server: a fresh `streamlit run app.py`, the Draw page,
a 7 drawn with the mouse, seconds until "Anomaly score" shows (the default verdict score, "guarded").

Usage: MNIST_ROOT=/path/to/data python scripts/first_verdict.py [--rounds 2] [--port 8663]
Each round serves the shipped checkpoints twice, alternating: as shipped (the fitted "guarded" detector read from
checkpoints/precomputed/) and from a copy without the <model>.guarded.npz files (the detector fitted, as before).
Prints a markdown table with the load average beside each time.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_browser import draw_seven  # noqa: E402

from streamlit_server import CHROMIUM_ARGS, chromium_path, running_app, wait_until_idle  # noqa: E402

TIMEOUT_S = 300


def first_verdict(browser, port: int, label: str) -> float:
    with running_app(log_name=f"first-verdict-{label}.log", port=port) as (url, _):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/draw")
        wait_until_idle(page)
        start = time.perf_counter()
        draw_seven(page)
        page.get_by_text("Anomaly score").first.wait_for(state="visible", timeout=TIMEOUT_S * 1000)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=8663, help="the servers' port (one at a time)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from vae.checkpoint import checkpoint_dir

    with tempfile.TemporaryDirectory() as tmp:
        unshipped = Path(tmp) / "checkpoints"
        shutil.copytree(checkpoint_dir(), unshipped, ignore=shutil.ignore_patterns("*.guarded.npz"))
        ways = {"fitted (no shipped state)": str(unshipped), "shipped state": str(checkpoint_dir())}
        print("| round | guarded detector | draw → 'Anomaly score' | load average (1 min) |\n|---|---|---|---|")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
            for round_ in range(args.rounds):
                for label, folder in ways.items():
                    os.environ["STUDIO_CHECKPOINTS"] = folder  # the app's one setting for the folder
                    seconds = first_verdict(browser, args.port, label.split()[0])
                    print(f"| {round_ + 1} | {label} | {seconds:.1f} s | {os.getloadavg()[0]:.1f} |", flush=True)
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
