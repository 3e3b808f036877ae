"""Uploads a visitor can send: a small file must not cost the server gigabytes, whatever its mode, bit depth
or chunks, nor five of them at once.

Each case runs in a fresh Python process that builds the file, frees everything, resets the kernel's
peak-RSS counter, then takes the upload through the Draw page's path (`load_uploaded_image`, then
`prepare_array`) and reports how far its peak memory rose, under the server's memory policy
(vae/server/memory.py). Every mode is tried at the largest size accepted.
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
from vae.server.memory import return_big_blocks_to_the_os
return_big_blocks_to_the_os()  # as the server does (app.py)

fmt, width, height, mode, extra, at_once = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                            sys.argv[5], int(sys.argv[6]))
image = Image.new(mode, (width, height), 0)
ink = {"L": 255, "1": 1, "P": 1, "I;16": 65535}.get(mode, (255,) * len(mode))
ImageDraw.Draw(image).line((width * 0.3, height * 0.2, width * 0.6, height * 0.8), fill=ink,
                           width=max(1, min(width, height) // 12))
if mode == "P":
    image.putpalette([0, 0, 0, 255, 255, 255] + [128] * 762)
buffer = io.BytesIO()
if fmt == "progressive JPEG":
    image.save(buffer, "JPEG", progressive=True)
else:
    image.save(buffer, fmt, **({"transparency": 0} if extra == "tRNS" else {}))
if extra == "64 MB of zTXt":  # text chunks are decompressed while the header is read
    import struct, zlib
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    text = b"".join(chunk(b"zTXt", b"k%d\x00\x00" % i + zlib.compress(b"a" * 1_000_000, 9)) for i in range(64))
    png = buffer.getvalue()
    buffer = io.BytesIO(png[:33] + text + png[33:])  # after the 8-byte signature and the 25-byte IHDR chunk
data = buffer.getvalue()
del image, buffer
gc.collect()

def kb(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1])

def upload():
    try:
        prepare_array(load_uploaded_image(data))
    except ValueError as exc:
        return str(exc)

import threading
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from the current RSS
before = kb("VmRSS")
errors = []
threads = [threading.Thread(target=lambda: errors.append(upload())) for _ in range(at_once)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"file_kb": len(data) / 1024, "peak_mb": (kb("VmHWM") - before) / 1024, "error": errors[0]}))
"""

CASES = {  # name → (format, width, height, mode, extra, None if accepted else words of the refusal)
    "6300x6300 RGBA PNG (185 KB)": ("PNG", 6300, 6300, "RGBA", "", "too large"),
    "39,000,000x1 PNG strip": ("PNG", 39_000_000, 1, "L", "", "too long and thin"),
    "4000x3000 RGBA PNG": ("PNG", 4000, 3000, "RGBA", "", "too large"),
    "3264x2448 RGBA PNG": ("PNG", 3264, 2448, "RGBA", "", None),
    "2828x2828 gray+alpha PNG": ("PNG", 2828, 2828, "LA", "", None),
    "3999x3999 RGB PNG": ("PNG", 3999, 3999, "RGB", "", None),
    "6324x6324 gray PNG": ("PNG", 6324, 6324, "L", "", None),
    "6400x6400 gray PNG": ("PNG", 6400, 6400, "L", "", "too large"),
    "5656x5656 1-bit PNG": ("PNG", 5656, 5656, "1", "", None),
    "5600x5600 1-bit PNG with tRNS (4.7 KB)": ("PNG", 5600, 5600, "1", "tRNS", "too large"),  # was +286 MB
    "2828x2828 1-bit PNG with tRNS": ("PNG", 2828, 2828, "1", "tRNS", None),
    "5656x5656 palette PNG": ("PNG", 5656, 5656, "P", "", None),
    "2828x2828 palette PNG with tRNS": ("PNG", 2828, 2828, "P", "tRNS", None),
    "5656x5656 16-bit gray PNG": ("PNG", 5656, 5656, "I;16", "", None),
    "64 MB of zTXt in a 60 KB PNG": ("PNG", 100, 100, "L", "64 MB of zTXt", "not an image"),
    "7000x5000 JPEG photo": ("JPEG", 7000, 5000, "RGB", "", None),
    "6324x6324 progressive CMYK JPEG": ("progressive JPEG", 6324, 6324, "CMYK", "", "too large"),
    "2800x2800 progressive JPEG": ("progressive JPEG", 2800, 2800, "RGB", "", None),
}


def upload_peak(case: str, at_once: int = 1) -> dict:
    fmt, width, height, mode, extra, _ = CASES[case]
    run = subprocess.run([sys.executable, "-c", CHILD, fmt, str(width), str(height), mode, extra, str(at_once)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", list(CASES))
def test_an_upload_peaks_under_100_mb_and_is_used_or_refused_clearly(case):
    refusal = CASES[case][-1]
    result = upload_peak(case)
    assert result["peak_mb"] <= PEAK_LIMIT_MB, f"{case}: peak {result['peak_mb']:.0f} MB for {result['file_kb']:.0f} KB"
    if refusal is None:
        assert result["error"] is None, result["error"]
    else:
        assert result["error"] is not None and refusal in result["error"], result["error"]


def test_five_uploads_at_once_peak_under_300_mb():
    """The costliest accepted file (RGBA, every copy at full size), five at once: decodes take turns."""
    result = upload_peak("3264x2448 RGBA PNG", at_once=5)
    assert result["error"] is None, result["error"]
    assert result["peak_mb"] <= 300, f"five at once peaked at {result['peak_mb']:.0f} MB"
