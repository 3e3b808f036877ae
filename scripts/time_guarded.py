"""How long a cold server's first "guarded" verdict waits on its detector: fitting it (as before the shipped
state) against loading checkpoints/precomputed/<model>.guarded.npz, alternating in one run.

Usage: MNIST_ROOT=/path/to/data python scripts/time_guarded.py [model.pt] [rounds] [torch threads]
(default vae-z64.pt 2, torch's own thread count: on a busy 2-core machine 1 thread embeds ~15× faster than 2)
Prints a markdown table: wall and CPU seconds (this process) per round, and the load average beside each.
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vae import load_checkpoint, load_mnist  # noqa: E402
from vae.checkpoint import checkpoint_dir  # noqa: E402
from vae.data import rows_seen_by  # noqa: E402
from vae.detector import Detector  # noqa: E402
from vae.precomputed import guarded_detector  # noqa: E402


def main(name: str = "vae-z64.pt", rounds: str = "2", threads: str = "") -> int:
    if threads:
        torch.set_num_threads(int(threads))
    data = load_mnist(download=False, allow_fallback=False)
    checkpoint = checkpoint_dir() / name
    model, metadata = load_checkpoint(checkpoint, "cpu")
    train = data.train_images[torch.from_numpy(rows_seen_by(metadata, data.train_labels.numpy(), data.source))]
    probe = data.test_images[:1]
    ways = {"fit (before)": lambda: Detector(model, "guarded").fit(train),
            "load shipped (after)": lambda: guarded_detector(model, checkpoint, data.source, train)}
    print(f"{name}, {len(train)} training images, torch threads {torch.get_num_threads()}\n")
    print("| round | way | wall s | CPU s | load average (1 min) |\n|---|---|---|---|---|")
    results = {way: [] for way in ways}
    for round_ in range(int(rounds)):
        for way, make in ways.items():
            wall, cpu = time.perf_counter(), time.process_time()
            detector = make()
            if detector is None:
                print(f"error: no shipped guarded state matches {name}: run scripts/write_guarded.py", file=sys.stderr)
                return 1
            detector.decision_function(probe)  # the first verdict itself
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results[way].append((wall, cpu))
            print(f"| {round_ + 1} | {way} | {wall:.1f} | {cpu:.1f} | {os.getloadavg()[0]:.1f} |", flush=True)
    before, after = (np.median([c for _, c in results[w]]) for w in ways)
    print(f"\nmedian CPU s: fit {before:.1f}, load {after:.1f} ({before / after:.0f}× less)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
