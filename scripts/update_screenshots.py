"""Copy the browser test's page screenshots into docs/, small enough for the README.

    pytest -m browser                    # writes test-artifacts/page-<name>-<size>.png, draw.png, latent-3d-<width>.png
    python scripts/update_screenshots.py # → docs/<name>.png, 1,000 px wide
    python scripts/update_screenshots.py home draw   # only these pages
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
# docs/<name>.png ← test-artifacts/<file>: each page at 1400×1000; Draw with the 7 the browser test draws
# and the Latent page's plots (tests/test_browser_latent.py) at both window sizes; the pages at 1024×768 too.
PAGES = {"home": "page-home-1400x1000.png", "draw": "draw.png", "latent": "latent-3d-1400.png",
         "latent-1024": "latent-3d-1024.png", "histograms": "page-histograms-1400x1000.png",
         "home-1024": "page-home-1024x768.png", "draw-1024": "page-draw-1024x768.png",
         "histograms-1024": "page-histograms-1024x768.png", "benchmark": "page-benchmark-1400x1000.png",
         "benchmark-1024": "page-benchmark-1024x768.png"}
WIDTH = 1000  # px in docs/
MAX_HEIGHT = 1600  # a long page is cut here: the README shows its top


def main(names: list[str]) -> int:
    (ROOT / "docs").mkdir(exist_ok=True)
    unknown = set(names) - set(PAGES)
    if unknown:
        print(f"error: no page {', '.join(sorted(unknown))}; the pages are {', '.join(PAGES)}", file=sys.stderr)
        return 2
    for name, file in PAGES.items():
        if names and name not in names:
            continue
        source = ROOT / "test-artifacts" / file
        if not source.exists():
            print(f"error: {source} is missing; run: pytest -m browser", file=sys.stderr)
            return 1
        image = Image.open(source).convert("RGB")
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
        image = image.crop((0, 0, WIDTH, min(image.height, MAX_HEIGHT)))
        target = ROOT / "docs" / f"{name}.png"
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
        print(f"{target.relative_to(ROOT)}: {image.width}×{image.height}, {target.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
