"""Nats vs epochs for the default training recipe (vae/train.py's TrainConfig) against the one before it.

Trains ConvVAE(64) the way `python -m vae train --model vae --latent 64 --epochs 10` does, once per
recipe × seed, alternating the recipes so that both see the same machine load, and prints a markdown
table: the loss after epochs 2, 6 and 10 of those runs (mean ± sd over the seeds) and the training
wall time up to each (evaluations left out).

    MNIST_ROOT=/abs/path/to/data python scripts/recipe_benchmark.py            # the README's table
    python scripts/recipe_benchmark.py --split validation --recipe bs128=batch_size=128,lr=0.01

--split validation (for choosing a recipe) trains on 50,000 training images and scores on the other
10,000, so a choice never sees the test images; --split test (for the README) trains on all 60,000
and scores on the test set. Runs are in-process calls to vae.train.train on one thread (how the app's
jobs train); a run of N epochs has its own N-epoch schedule, as the CLI's has. On a busy machine, one
process per recipe and seed (--first-seed, --seeds 1, --json) and then --merge of their files gives
the same table sooner.
"""
from __future__ import annotations

import argparse
import json
import os
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
OLD_RECIPE = dict(batch_size=256, lr=1e-2, warmup=0.1)
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


def one_run(data: MnistData, overrides: dict, epochs: int, seed: int, label: str = "") -> dict:
    """Train a fresh ConvVAE(64) (as vae.training_run does): the loss after each epoch and the training seconds
    up to it, evaluations left out."""
    config = TrainConfig(**{**overrides, "epochs": epochs, "seed": seed, "device": "cpu"})
    torch.manual_seed(seed)
    model = build_model("vae", 64)
    clock = {"start": None, "evaluating": 0.0, "since": 0.0, "seconds": []}

    def watch(p):
        now = time.perf_counter()
        if clock["start"] is None:  # from the end of the first step: a process's first step pays one-off set-ups
            clock["start"] = now
        if p.epoch_end:
            clock["evaluating"] += now - clock["since"]
            if label:  # a long run on a busy machine: show how far it got
                print(f"  {label} epoch {p.epoch}: {p.test_loss['total']:.2f} ({clock['seconds'][-1]:.0f} s)",
                      file=sys.stderr, flush=True)
        elif p.step == p.steps_per_epoch:
            clock["since"] = now
            clock["seconds"].append(now - clock["start"] - clock["evaluating"])

    result = train(model, data, config, watch)
    return {"losses": [row["test_total"] for row in result.history], "seconds": clock["seconds"]}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def table(results: dict, epochs: int, at: list[int], split: str) -> str:
    """Loss and training time after each epoch in `at` of the `epochs`-epoch runs, per recipe."""
    label = "validation loss" if split == "validation" else "test loss"
    head = "| recipe | " + " | ".join(f"{label} after {k} | time to {k}" for k in at) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(at))]
    for name, by_epochs in results.items():
        runs = by_epochs.get(str(epochs), [])
        cells = []
        for k in at:
            done = [r for r in runs if len(r["losses"]) >= k]
            cells.append(mean_sd([r["losses"][k - 1] for r in done]) if done else "–")
            cells.append(f"{statistics.mean(r['seconds'][k - 1] for r in done):.0f} s" if done else "–")
        lines.append(f"| {name} ({len(runs)} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["validation", "test"], default="test")
    parser.add_argument("--epochs", default="10", help="run lengths, each its own schedule, e.g. 6,10")
    parser.add_argument("--at", default="2,6,10", help="the table's epochs (of the longest runs)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, first-seed + 1, …")
    parser.add_argument("--recipe", action="append", default=None,
                        help="name=key=value,… (TrainConfig fields); repeatable; default: old and new")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's jobs train on one)")
    parser.add_argument("--json", default=None, help="also write every run's numbers here")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--merge", nargs="+", default=None,
                        help="print the table of these --json files (runs made apart, e.g. one process per recipe)")
    args = parser.parse_args(argv)
    at = [int(k) for k in args.at.split(",")]
    epoch_counts = [int(n) for n in args.epochs.split(",")]
    if args.merge:
        saved = [json.loads(Path(f).read_text()) for f in args.merge]
        results = {}
        for one in saved:  # the same recipe's runs from several files (e.g. one seed per process) join
            for name, by_epochs in one["results"].items():
                for epochs, runs in by_epochs.items():
                    results.setdefault(name, {}).setdefault(epochs, []).extend(runs)
        print(table(results, max(epoch_counts), at, saved[0]["split"]))
        return 0

    torch.set_num_threads(args.threads)
    recipes = dict(parse_recipe(r) for r in args.recipe) if args.recipe else RECIPES
    data = load_mnist(args.data_root, download=False, allow_fallback=False)
    if args.split == "validation":
        data = validation_split(data)
    print(f"{len(data.train_images):,} training images, {args.split} on {len(data.test_images):,}; "
          f"{args.threads} thread(s); recipes: {json.dumps(recipes)}", file=sys.stderr)

    results = {name: {} for name in recipes}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for epochs in epoch_counts:
            for name, overrides in recipes.items():  # alternating: both recipes see the same load
                run = one_run(data, overrides, epochs, seed, label=f"{name} seed {seed}")
                results[name].setdefault(str(epochs), []).append(run)
                print(f"{name} seed {seed} {epochs} epochs: {' '.join(f'{x:.2f}' for x in run['losses'])} "
                      f"({run['seconds'][-1]:.0f} s; load average {os.getloadavg()[0]:.1f})",
                      file=sys.stderr, flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps({"split": args.split, "recipes": recipes,
                                                           "results": results}, indent=1))
    print(table(results, max(epoch_counts), at, args.split))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
