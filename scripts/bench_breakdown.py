"""Where `python -m vae bench`'s two loops spend their time per image, and what a 4× ratio would take.

    MNIST_ROOT=/work/shared/data python scripts/bench_breakdown.py [--rounds 3]

The bench's speed-up is (data + textbook step) / trainer step, each per image:
- data: the textbook DataLoader (ToTensor, batches of 128) run with no model;
- textbook step: the same ConvVAE(64) and Adam(1e-3) on batches of 128 already in memory;
- trainer step: `vae.train.train` for one epoch on 20,480 MNIST images (its own images/s).
Both loops train the same ConvVAE class, so a faster model (new kernels) divides both steps by the
same factor f and leaves the data time alone: ratio(f) = (data × f + textbook step) / trainer step.
The script prints the f that 4× needs that way, and the f needed if only the trainer got faster.
Everything runs with glibc keeping freed memory (vae.train.keep_freed_memory), which the textbook
loop does not get in the bench: that makes its step faster here, so the f printed is a lower bound.
Not a test: it only measures. Rounds interleave the three parts; medians are printed.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae.data import default_data_root, load_mnist, to_float  # noqa: E402
from vae.model import ConvVAE  # noqa: E402
from vae.speed import textbook_loader, textbook_step  # noqa: E402
from vae.train import TrainConfig, keep_freed_memory, train  # noqa: E402

BATCHES = 80  # of 128 images, for the two textbook parts
TRAINER_IMAGES = 20_480  # 80 steps of the trainer's 256


def data_us_per_image(loader) -> float:
    start = time.perf_counter()
    seen = sum(len(x) for x, _ in itertools.islice(loader, BATCHES))
    return (time.perf_counter() - start) / seen * 1e6


def textbook_step_us_per_image(images: torch.Tensor) -> float:
    torch.manual_seed(0)
    model = ConvVAE(64).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [to_float(images[i * 128:(i + 1) * 128]) for i in range(BATCHES)]
    textbook_step(model, optimizer, batches[0])  # warm-up
    start = time.perf_counter()
    for x in batches:
        textbook_step(model, optimizer, x)
    return (time.perf_counter() - start) / (128 * BATCHES) * 1e6


def trainer_us_per_image(data) -> float:
    torch.manual_seed(0)
    result = train(ConvVAE(64), data, TrainConfig(epochs=1, evaluate_each_epoch=False))
    return 1e6 / result.images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()
    root = default_data_root()
    data = load_mnist(root, download=False, allow_fallback=False)
    subset = data.select(train_size=TRAINER_IMAGES)
    loader = textbook_loader(root)
    times = {"data": [], "textbook step": [], "trainer step": []}
    for _ in range(args.rounds):
        times["data"].append(data_us_per_image(loader))
        times["textbook step"].append(textbook_step_us_per_image(data.train_images))
        times["trainer step"].append(trainer_us_per_image(subset))
    data_us, textbook_us, trainer_us = (statistics.median(v) for v in times.values())
    print(f"µs per image, median of {args.rounds} rounds, {torch.get_num_threads()} threads:")
    for name, values in times.items():
        print(f"  {name:14s} {statistics.median(values):6.1f}   (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    print(f"predicted speed-up (data + textbook step) / trainer step: {(data_us + textbook_us) / trainer_us:.2f}×")
    print(f"for 4×, the model's step must get {(4 * trainer_us - textbook_us) / data_us:.2f}× faster in both loops, "
          f"or the trainer alone {4 * trainer_us / (data_us + textbook_us):.2f}× faster")


if __name__ == "__main__":
    main()
