"""How long the Draw page's computing takes for one drawn digit, on CPU, with the vae-z64 model.

    python scripts/bench_correction.py [--checkpoint checkpoints/vae-z64.pt] [--repeats 300]

Times the whole path a canvas drawing takes: prepare_array (crop, scale, centre a 280×280 RGBA
drawing) + correct (reconstruction and anomaly score) + difference_map + spots_in, and
prints the median and 90th percentile in milliseconds, once with torch's default thread count and
once with one thread. The budget is 20 ms per image.

Why both: one 28×28 image is far too little work to split across threads, and on a busy machine
OpenMP's spin-waiting threads make the default setting many times slower than one thread.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae import load_checkpoint, prepare_array  # noqa: E402
from vae.correction import DEFAULT_LEVEL, correct, difference_map, spots_in  # noqa: E402


def canvas_like_drawing(size: int = 280) -> np.ndarray:
    """A white '7' stroked on black, RGBA uint8, the shape st_canvas hands the page."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (size, size), (0, 0, 0, 255))
    draw = ImageDraw.Draw(image)
    draw.line([(70, 60), (210, 60), (120, 230)], fill=(255, 255, 255, 255), width=20, joint="curve")
    return np.asarray(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/vae-z64.pt")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    model, _ = load_checkpoint(args.checkpoint)
    drawing = canvas_like_drawing()

    def one_image() -> None:
        image28 = prepare_array(drawing)
        result = correct(model, image28)
        diff = difference_map(result.input, result.reconstruction)
        spots_in(diff, DEFAULT_LEVEL)

    print(f"{args.checkpoint}: prepare + reconstruct + score + difference + regions, one image on CPU, "
          f"{args.repeats} runs (budget 20 ms)")
    for threads in (torch.get_num_threads(), 1):
        torch.set_num_threads(threads)
        for _ in range(20):  # warm-up: first calls allocate and pick kernels
            one_image()
        times_ms, cpu_ms = [], []
        for _ in range(args.repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            one_image()
            times_ms.append((time.perf_counter() - start) * 1000)
            cpu_ms.append((time.process_time() - cpu_start) * 1000)
        times_ms.sort()
        # CPU time is what the work costs; wall time adds whatever else the machine is doing.
        print(f"  torch threads {threads}: median {statistics.median(times_ms):.2f} ms wall "
              f"(90th percentile {times_ms[int(0.9 * len(times_ms))]:.2f} ms), "
              f"median {statistics.median(cpu_ms):.2f} ms CPU")


if __name__ == "__main__":
    main()
