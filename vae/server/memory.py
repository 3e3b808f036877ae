"""The server's memory policy: big blocks go back to the OS as soon as they are freed.

glibc serves a large allocation with its own mmap and unmaps it on free, but only above a threshold that
it raises, by default, to the size of the largest block freed so far (up to 32 MB): after the first big
image or array, blocks of that size come from per-thread heaps and stay there once freed. Streamlit runs
each visitor's script on a thread of its own, so five uploads decoded on five threads kept 322 MB resident
instead of the 148 MB that two at a time ever need (tests/test_uploads.py). A fixed threshold keeps every
block of 1 MB or more out of those heaps. (Training jobs, separate processes, do the opposite: train.py's
keep_freed_memory.)
"""
from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # mallopt(3)
MMAP_THRESHOLD = 1 << 20


def return_big_blocks_to_the_os() -> bool:
    """Process-wide; False where the C library is not glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
