"""The README's GPU figures in one run of at most ~8 minutes: the same training on the GPU and on this CPU.

    MNIST_ROOT=/abs/path/to/data python scripts/gpu_measure.py            # on a machine with CUDA (or MPS)
    MNIST_ROOT=/abs/path/to/data python scripts/gpu_measure.py --smoke    # anywhere, in a minute: proves it runs

For each device (the GPU first, then the CPU):
1. `python -m vae train --model vae --latent 64 --epochs 10`'s training — the default recipe of
   vae/train.py, full MNIST, test loss after every epoch — timed: training images/s (evaluations left
   out) and time-to-quality, the wall time from the start of training until the test loss is at most 105 and
   100 nats (evaluations included). A phase that would run past its share of the time budget stops and
   says how far it got.
2. `python -m vae bench --device …` (vae/speed.py): a textbook DataLoader loop against this trainer for
   one epoch, and embedding + reconstructing the 10,000 test images.
Then it prints one markdown table (and --json writes every number). The GPU runs the report's modules
in float32 as they are (no AMP: the loss must stay the one the CPU computes), with the data on the GPU
once; nothing here is part of the test suite or CI.

--smoke trains on 2,048 images for 2 epochs with loose targets, on whatever devices exist (the CPU alone
here): it checks that the script works end to end, and its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vae import speed  # noqa: E402
from vae.data import load_mnist  # noqa: E402
from vae.devices import device_name, pick_device  # noqa: E402
from vae.model import build_model  # noqa: E402
from vae.train import TrainConfig, train  # noqa: E402

FULL = dict(epochs=10, targets=(105.0, 100.0), train_images=None, test_images=None, budget_s=480)
SMOKE = dict(epochs=2, targets=(540.0, 500.0), train_images=2048, test_images=1000, budget_s=240)
TRAIN_SHARE = 0.3  # of the whole budget, at most, for one device's training


def devices_present() -> list[str]:
    """The GPU (CUDA, else MPS) if there is one, then the CPU."""
    accelerator = pick_device("auto")
    return ([accelerator.type] if accelerator.type != "cpu" else []) + ["cpu"]


def timed_training(data, device: str, epochs: int, targets, budget_s: float) -> dict:
    """The default recipe for `epochs` on `device`; stops once past budget_s (at the next step)."""
    torch.manual_seed(0)
    model = build_model("vae", 64)
    marks = {"eval_s": 0.0, "eval_since": 0.0, "epochs": [], "images": 0}
    start = time.perf_counter()  # moving the model and the data to the device counts too

    def watch(p):
        now = time.perf_counter()
        marks["images"] = p.images_seen
        if p.epoch_end:
            marks["eval_s"] += now - marks["eval_since"]
            marks["epochs"].append({"epoch": p.epoch, "test_loss": p.test_loss["total"],
                                    "elapsed_s": now - start})
        elif p.step == p.steps_per_epoch:
            marks["eval_since"] = now
        return now - start > budget_s

    result = train(model, data, TrainConfig(epochs=epochs, device=device), watch)
    train_s = result.seconds - marks["eval_s"]
    reached = {}
    for target in targets:
        hit = next((e for e in marks["epochs"] if e["test_loss"] <= target), None)
        reached[str(target)] = None if hit is None else {"seconds": hit["elapsed_s"], "epoch": hit["epoch"]}
    return {"device": device, "name": device_name(torch.device(device)), "stopped_early": result.stopped,
            "epochs_done": result.epochs_done, "epochs": marks["epochs"], "time_to": reached,
            "train_images_per_s": marks["images"] / max(train_s, 1e-9),
            "final_test_loss": marks["epochs"][-1]["test_loss"] if marks["epochs"] else None}


def markdown(runs: list[dict], benches: dict, targets, epochs: int) -> str:
    head = ["device", "training images/s"] + [f"time to ≤ {t:g} nats" for t in targets] + [
        f"test loss after {epochs} epochs", "bench: textbook loop images/s", "bench: this trainer images/s",
        "embed + reconstruct 10,000 test images"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        cells = [run["name"], f"{run['train_images_per_s']:,.0f}"]
        for target in targets:
            hit = run["time_to"][str(target)]
            best = min((e["test_loss"] for e in run["epochs"]), default=float("nan"))
            cells.append(f"{hit['seconds']:.1f} s (epoch {hit['epoch']})" if hit else
                         f"not reached (best {best:.2f} after {run['epochs_done']} epochs)")
        done = f"{run['final_test_loss']:.2f}" if run["epochs_done"] == epochs else \
            f"stopped after {run['epochs_done']} epochs (time budget)"
        cells.append(done)
        bench = benches.get(run["device"])
        cells += ([f"{bench['baseline_images_per_s']:,}", f"{bench['train_images_per_s']:,}",
                   f"{bench['test_set_inference_s']:.3f} s"] if bench else ["not run (time budget)"] * 3)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny: check that the script runs (numbers mean nothing)")
    parser.add_argument("--budget-s", type=float, default=None, help="the whole run's time budget (default 480; smoke 240)")
    parser.add_argument("--json", default=None, help="also write every number to this file")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    budget_s = args.budget_s or plan["budget_s"]
    began = time.perf_counter()

    data = load_mnist(args.data_root, download=False, allow_fallback=False)
    if plan["train_images"]:
        data = data.select(train_size=plan["train_images"])
    if plan["test_images"]:
        data = type(data)(data.train_images, data.train_labels, data.test_images[:plan["test_images"]],
                          data.test_labels[:plan["test_images"]], data.source)
    devices = devices_present()
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {torch.get_num_threads()} CPU threads; "
          f"devices: {', '.join(device_name(torch.device(d)) for d in devices)}; "
          f"{len(data.train_images):,} training images, {plan['epochs']} epochs"
          + (" (smoke: the numbers mean nothing)" if args.smoke else ""), file=sys.stderr, flush=True)

    runs = []
    for device in devices:
        left = budget_s - (time.perf_counter() - began)
        share = min(TRAIN_SHARE * budget_s, left / (len(devices) - len(runs) + 1))
        run = timed_training(data, device, plan["epochs"], plan["targets"], share)
        runs.append(run)
        print(f"{device}: {run['train_images_per_s']:,.0f} images/s, "
              f"losses {[round(e['test_loss'], 2) for e in run['epochs']]}", file=sys.stderr, flush=True)

    benches = {}
    for run in runs:
        left = budget_s - (time.perf_counter() - began)
        # textbook loop (~2-3x slower than the trainer) + trainer + inference: one epoch each
        need = 4 * len(data.train_images) / run["train_images_per_s"] + 15
        if need > left:
            print(f"{run['device']}: bench skipped, ~{need:.0f} s needed, {left:.0f} s left", file=sys.stderr)
            continue
        benches[run["device"]] = speed.run(args.data_root, epochs=1, device=run["device"],
                                           images=plan["train_images"])

    table = "\n" + markdown(runs, benches, plan["targets"], plan["epochs"])
    print(table)
    print(f"\nwhole run: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"smoke": args.smoke, "torch": torch.__version__, "runs": runs,
                                               "benches": benches, "table": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
