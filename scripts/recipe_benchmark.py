"""Nats vs epochs for the default training recipe (vae/train.py's TrainConfig) against the one before it.

Trains ConvVAE(64) the way `python -m vae train --model vae --latent 64 --epochs N` does, once per
recipe × seed × epoch count, alternating the recipes so that both see the same machine load, and
prints a markdown table: loss after N epochs (mean ± sd over the seeds) and training wall time.

    MNIST_ROOT=/abs/path/to/data python scripts/recipe_benchmark.py            # the README's table
    python scripts/recipe_benchmark.py --split validation --recipe bs128=batch_size=128,lr=0.01

--split validation (for choosing a recipe) trains on 50,000 training images and scores on the other
10,000, so a choice never sees the test images; --split test (for the README) trains on all 60,000
and scores on the test set. Each run is a fresh process-free call to vae.train.train on one thread
(how the app's jobs train), and every run of N epochs is its own N-epoch schedule, as the CLI's is.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vae.data import MnistData, load_mnist  # noqa: E402
from vae.model import build_model  # noqa: E402
from vae.train import TrainConfig, train  # noqa: E402

VALIDATION_SIZE = 10_000
VALIDATION_SEED = 20_260_312  # fixed: every recipe is scored on the same held-out images

# The recipe the trainer used before (issue 19): batch 256, one-cycle peaking at 1e-2, 10% warm-up from lr/10.
OLD_RECIPE = dict(batch_size=256, lr=1e-2)
RECIPES = {"old": OLD_RECIPE, "new": {}}  # "new": TrainConfig's defaults as they are now


def validation_split(data: MnistData) -> MnistData:
    """The training split cut in two, seeded: 50,000 images to train on, 10,000 in place of the test set."""
    order = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(VALIDATION_SEED))
    held, kept = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:].sort().values
    return replace(data, train_images=data.train_images[kept], train_labels=data.train_labels[kept],
                   test_images=data.train_images[held], test_labels=data.train_labels[held],
                   source=data.source + "-validation")


def parse_recipe(text: str) -> tuple[str, dict]:
    """'name=key=value,key=value' → (name, {key: value}); values as JSON (numbers, true/false) or text."""
    name, _, settings = text.partition("=")
    overrides = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


def one_run(data: MnistData, overrides: dict, epochs: int, seed: int) -> dict:
    """Train a fresh ConvVAE(64) (as vae.training_run does); loss per epoch and training seconds, evaluations
    left out of the time."""
    config = TrainConfig(**{**overrides, "epochs": epochs, "seed": seed, "device": "cpu"})
    torch.manual_seed(seed)
    model = build_model("vae", 64)
    evaluating = {"since": 0.0, "total": 0.0}

    def clock(p):
        now = time.perf_counter()
        if p.epoch_end:
            evaluating["total"] += now - evaluating["since"]
        elif p.step == p.steps_per_epoch:
            evaluating["since"] = now

    result = train(model, data, config, clock)
    return {"losses": [row["test_total"] for row in result.history],
            "seconds": result.seconds - evaluating["total"], "images_per_s": result.images_per_s}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def table(results: dict, epoch_counts: list[int], split: str) -> str:
    label = "validation loss" if split == "validation" else "test loss"
    head = "| recipe | " + " | ".join(f"{label}, {n} epochs | time, {n} epochs" for n in epoch_counts) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(epoch_counts))]
    for name, by_epochs in results.items():
        cells = []
        for n in epoch_counts:
            runs = by_epochs.get(n, [])
            cells.append(mean_sd([r["losses"][-1] for r in runs]) if runs else "–")
            cells.append(f"{statistics.mean(r['seconds'] for r in runs):.0f} s" if runs else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["validation", "test"], default="test")
    parser.add_argument("--epochs", default="2,6,10", help="epoch counts, each its own run, e.g. 2,6,10")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--recipe", action="append", default=None,
                        help="name=key=value,… (TrainConfig fields); repeatable; default: old and new")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's jobs train on one)")
    parser.add_argument("--json", default=None, help="also write every run's numbers here")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    recipes = dict(parse_recipe(r) for r in args.recipe) if args.recipe else RECIPES
    epoch_counts = [int(n) for n in args.epochs.split(",")]
    data = load_mnist(args.data_root, download=False, allow_fallback=False)
    if args.split == "validation":
        data = validation_split(data)
    print(f"{len(data.train_images):,} training images, {args.split} on {len(data.test_images):,}; "
          f"{args.threads} thread(s); recipes: {json.dumps(recipes)}", file=sys.stderr)

    results = {name: {} for name in recipes}
    for seed in range(args.seeds):
        for epochs in epoch_counts:
            for name, overrides in recipes.items():  # alternating: both recipes see the same load
                run = one_run(data, overrides, epochs, seed)
                results[name].setdefault(epochs, []).append(run)
                print(f"{name} seed {seed} {epochs} epochs: {' '.join(f'{x:.2f}' for x in run['losses'])} "
                      f"({run['seconds']:.0f} s)", file=sys.stderr, flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps({"split": args.split, "recipes": recipes,
                                                           "results": results}, indent=1))
    print(table(results, epoch_counts, args.split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
