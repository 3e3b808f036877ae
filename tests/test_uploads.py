"""Uploads a visitor can send: a small file must not cost the server gigabytes.

Each case runs in a fresh Python process that builds the file, frees everything, resets the kernel's
peak-RSS counter, then takes the upload through the Draw page's path (`load_uploaded_image`, then
`prepare_array`) and reports how far its peak memory rose.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEAK_LIMIT_MB = 100

pytestmark = pytest.mark.slow  # a Python process per case

CHILD = r"""
import gc, io, json, sys
from PIL import Image, ImageDraw
from vae.server.uploads import load_uploaded_image
from vae.preprocess import prepare_array

fmt, width, height, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
image = Image.new(mode, (width, height), 0)
ImageDraw.Draw(image).line((width * 0.3, height * 0.2, width * 0.6, height * 0.8), fill=255 if mode == "L" else
                           (255,) * len(mode), width=max(1, min(width, height) // 12))
buffer = io.BytesIO()
image.save(buffer, "JPEG", progressive=True) if fmt == "progressive JPEG" else image.save(buffer, fmt)
data = buffer.getvalue()
del image, buffer
gc.collect()

def kb(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1])

open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from the current RSS
before = kb("VmRSS")
try:
    digit = prepare_array(load_uploaded_image(data))
    error = None
except ValueError as exc:
    error = str(exc)
print(json.dumps({"file_kb": len(data) / 1024, "peak_mb": (kb("VmHWM") - before) / 1024, "error": error}))
"""

CASES = {  # name → (format, width, height, mode, None if accepted else words of the refusal)
    "6300x6300 RGBA PNG (185 KB)": ("PNG", 6300, 6300, "RGBA", "too large"),
    "39,000,000x1 PNG strip": ("PNG", 39_000_000, 1, "L", "too long and thin"),
    "4000x3000 RGBA PNG": ("PNG", 4000, 3000, "RGBA", "too large"),
    "3264x2448 RGBA PNG": ("PNG", 3264, 2448, "RGBA", None),
    "5000x6000 gray PNG": ("PNG", 5000, 6000, "L", None),
    "6000x6000 gray PNG": ("PNG", 6000, 6000, "L", "too large"),
    "7000x5000 JPEG photo": ("JPEG", 7000, 5000, "RGB", None),
    "6324x6324 progressive CMYK JPEG": ("progressive JPEG", 6324, 6324, "CMYK", "too large"),
    "2800x2800 progressive JPEG": ("progressive JPEG", 2800, 2800, "RGB", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_upload_peaks_under_100_mb_and_is_used_or_refused_clearly(case):
    fmt, width, height, mode, refusal = CASES[case]
    run = subprocess.run([sys.executable, "-c", CHILD, fmt, str(width), str(height), mode], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["peak_mb"] <= PEAK_LIMIT_MB, f"{case}: peak {result['peak_mb']:.0f} MB for {result['file_kb']:.0f} KB"
    if refusal is None:
        assert result["error"] is None, result["error"]
    else:
        assert result["error"] is not None and refusal in result["error"], result["error"]
