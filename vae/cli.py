"""python -m vae {train,evaluate,bench,benchmark}: one readable line and a non-zero exit on any bad input
(2 for a bad command line, 1 for a failure while running)."""
from __future__ import annotations

import _thread
import argparse
import json
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from . import __version__, shift_benchmark
from . import benchmark as benchmark_module
from . import speed as bench_module
from .checkpoint import OWNER_PATTERN, CheckpointError, checkpoint_dir, load_checkpoint
from .data import DataUnavailable, default_data_root, load_mnist
from .devices import DEVICE_CHOICES, device_name, pick_device
from .model import MODEL_KINDS
from .train import TrainConfig, TrainingDiverged, evaluate_loss, format_duration
from .training_run import TrainingSpec, check_destination, parse_digits, run_training

REPORT_EVERY_S = 0.2  # --progress json: the app redraws once a second; 5 points a second draw a smooth curve


USAGE_ERROR, RUNTIME_ERROR = 2, 1


class UsageError(ValueError):
    """An argument's value is out of range: the command line is wrong (exit 2), not the run."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, formatter_class=argparse.ArgumentDefaultsHelpFormatter, **kwargs)

    def error(self, message):  # one line instead of argparse's usage block
        raise SystemExit(_fail(f"{message} (see: {self.prog} --help)", USAGE_ERROR))


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


class ProgressBar:
    """epoch 3/30 [#######.............] 35% loss 134.20 | 7,600 img/s | ETA 2m13s (on stderr)."""

    def __init__(self, stream=sys.stderr, every_s: float = 0.25):
        self.stream, self.every_s, self.last = stream, every_s, 0.0
        self.line_open = False  # a '\r' line without its newline: an error must not be glued to it

    def __call__(self, p) -> None:
        now = time.perf_counter()
        if not p.epoch_end and now - self.last < self.every_s:
            return
        self.last = now
        self.line_open = not p.epoch_end
        width = 20
        filled = int(width * p.step / p.steps_per_epoch)
        line = (f"epoch {p.epoch}/{p.epochs} [{'#' * filled}{'.' * (width - filled)}] "
                f"{100 * p.fraction_done:3.0f}% loss {p.train_loss['total']:.2f} | "
                f"{p.images_per_s:,.0f} img/s | ETA {format_duration(p.eta_s)}")
        if p.epoch_end and p.test_loss is not None:
            line += f" | test {p.test_loss['total']:.2f}"
        self.stream.write("\r" + line.ljust(100) + ("\n" if p.epoch_end else ""))
        self.stream.flush()

    def close(self) -> None:
        if self.line_open:
            self.stream.write("\n")
            self.stream.flush()
            self.line_open = False


class JsonReports:
    """--progress json, for the app's job runner: one JSON line per report on stdout, at most every
    REPORT_EVERY_S and at each epoch end, then {"event": "done", "path": …}. It reads {"threads": n}
    lines from stdin, applied at the next step (the runner shares the cores between its jobs). When
    stdin closes, the runner (the app's server) has gone: training stops and nothing is saved."""

    def __init__(self, stream=sys.stdout, control=sys.stdin):
        self.stream, self.last, self.threads = stream, 0.0, None
        threading.Thread(target=self._read_control, args=(control,), daemon=True).start()

    def _read_control(self, control) -> None:
        for line in control:
            try:
                threads = int(json.loads(line)["threads"])
            except (ValueError, TypeError, KeyError):
                continue
            self.threads = min(max(threads, 1), 64)
        _thread.interrupt_main()  # end of input: nobody is left to use the model

    def _send(self, message: dict) -> None:
        self.stream.write(json.dumps(message) + "\n")
        self.stream.flush()

    def __call__(self, p) -> None:
        import torch

        if self.threads is not None and self.threads != torch.get_num_threads():
            torch.set_num_threads(self.threads)  # here, in the training thread, between two steps
        now = time.perf_counter()
        if p.epoch_end or now - self.last >= REPORT_EVERY_S:
            self.last = now
            self._send({"event": "progress", "progress": asdict(p)})

    def done(self, path, metadata: dict, result) -> None:
        self._send({"event": "done", "path": str(path), "test_loss": metadata["test_loss"]["total"],
                    "images_per_s": result.images_per_s, "seconds": result.seconds})


def cmd_train(args) -> int:
    try:  # every choice validated here: a bad one is a usage error
        spec = TrainingSpec(kind=args.model, latent_dim=args.latent, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, beta=args.beta, digits=parse_digits(args.digits),
                            train_size=args.train_size, seed=args.seed, device=args.device)
        device = pick_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)  # first: every thread torch starts from here on inherits it
    check_destination(args.out, args.out_dir, args.force)  # before minutes of training, not after
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = load_mnist(args.data_root)
    print(f"data: {data.source_label}", file=sys.stderr)
    if device.type != "cpu":
        print(f"device: {device_name(device)}", file=sys.stderr)
    reports = JsonReports() if args.progress == "json" else ProgressBar()
    try:
        path, metadata, result = run_training(spec, out=args.out, folder=args.out_dir, data=data, force=args.force,
                                              owner=args.owner, origin=args.origin, on_progress=reports)
    finally:
        if isinstance(reports, ProgressBar):
            reports.close()  # ends the bar's line, also when training stopped with an error
    if args.progress == "json":
        reports.done(path, metadata, result)
        return 0
    print(f"saved {path}: test loss {metadata['test_loss']['total']:.2f} nats/image, "
          f"trained on {metadata['train_images']:,} images ({result.images_per_s:,.0f} img/s, "
          f"{format_duration(result.seconds)})")
    return 0


def _owner_key(text: str) -> str:
    if not OWNER_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"a key is 8 to 64 lowercase hex digits, got {text!r}")
    return text


def _threads(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"threads must be 1 to 64, got {text!r}")
    return int(text)


def cmd_evaluate(args) -> int:
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    model, meta = load_checkpoint(args.checkpoint, device)
    data = load_mnist(args.data_root)
    train_loss = evaluate_loss(model, data.train_images)
    test_loss = evaluate_loss(model, data.test_images)

    def fmt(loss):
        return f"{loss['total']:.2f} nats/image (recon {loss['recon']:.2f}, kl {loss['kl']:.2f})"

    print(f"checkpoint  {args.checkpoint}")
    print(f"model       {model.kind}, latent {model.latent_dim}, beta {model.config.beta:g}, "
          f"trained {meta.get('epochs', '?')} epochs on {meta.get('data_source', '?')}")
    source = data.source_label if data.source_label.startswith(data.source) else f"{data.source}: {data.source_label}"
    print(f"data        {source}")
    print(f"train loss  {fmt(train_loss)}")
    print(f"test loss   {fmt(test_loss)}")
    return 0


def cmd_data(args) -> int:
    """Full MNIST under the data root: found there, else downloaded by torchvision; never the offline subset."""
    root = args.data_root or default_data_root()
    data = load_mnist(root, download=True, allow_fallback=False)
    print(f"{data.source_label}: {len(data.train_images):,} training and {len(data.test_images):,} test images "
          f"under {Path(root).resolve() / 'MNIST' / 'raw'}")
    return 0


def cmd_bench(args) -> int:
    try:
        pick_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    bench_module.run(data_root=args.data_root, epochs=args.epochs, device=args.device)
    return 0


def _model_ref(text: str) -> str:
    return text if text.endswith(".pt") else str(checkpoint_dir() / f"{text}.pt")


def cmd_benchmark(args) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    which = args.benchmark
    digits = parse_digits(args.digits) if which == "one-class" else None
    if which == "one-class" and not digits:
        digits = list(range(10))
    for option in ("shift_epochs", "shift_seeds", "shift_train_images", "shift_images"):
        if which == "shift" and getattr(args, option) < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    models = {}
    if which != "one-class":
        for ref in args.model or benchmark_module.DEFAULT_MODELS[which]:
            models[Path(ref).stem] = load_checkpoint(_model_ref(ref))[0]
    data = load_mnist(args.data_root)
    print(f"data: {data.source_label}", file=sys.stderr)

    def log(line: str) -> None:
        bar.close()
        print(line, file=sys.stderr, flush=True)

    bar = ProgressBar()
    start = time.perf_counter()
    if which == "one-class":
        results = benchmark_module.one_class(
            data, kind=args.kind, latent=args.latent, epochs=args.epochs, seeds=args.seeds, digits=digits,
            batch_size=args.batch_size, beta=args.beta, train_models=not args.evaluate_only, log=log, on_progress=bar)
        summary = results["summary"]
        for score in sorted(summary, key=lambda k: -summary[k]["mean"]):
            print(f"{score:15s} mean AUROC {summary[score]['mean']:.2f} ± {summary[score]['sd']:.2f}, "
                  f"worst digit {summary[score]['worst_digit']} {summary[score]['worst']:.2f}")
    elif which == "shift":
        classifier = benchmark_module.classifier(data, log=log)
        one_class = {d: load_checkpoint(benchmark_module.one_class_path("vae", 64, d))[0] for d in range(10)
                     if benchmark_module.one_class_path("vae", 64, d).exists()}
        results = shift_benchmark.shift_benchmark(data, classifier, models, one_class, epochs=args.shift_epochs,
                                                  seeds=args.shift_seeds, train_images=args.shift_train_images,
                                                  n=args.shift_images, log=log, on_progress=bar)
    elif which == "identity":
        classifier = benchmark_module.classifier(data, retrain=args.retrain_classifier, log=log)
        results = benchmark_module.identity(models, data, classifier, log=log)
    else:
        run = benchmark_module.flaws if which == "flaws" else benchmark_module.ood
        extra = {"n": args.images} if which == "flaws" else {}
        results = {"models": {}}
        for name, model in models.items():
            log(f"{name}:")
            results["models"][name] = run(model, data, log=log, **extra)
    path = benchmark_module.write_results(which, results, args.results_dir or benchmark_module.results_dir(),
                                          time.perf_counter() - start)
    print(f"wrote {path} ({format_duration(time.perf_counter() - start)})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m vae", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    data_root = "MNIST folder, holding MNIST/raw; if not given: $MNIST_ROOT, else data/"
    device = "where to compute: auto picks CUDA, then Apple MPS, else the CPU"

    t = sub.add_parser("train", help="train an AE or VAE and save a checkpoint")
    t.add_argument("--model", choices=MODEL_KINDS, default="vae",
                   help="the report's conv autoencoder or VAE, or the fully-connected baseline (fc-ae, fc-vae)")
    t.add_argument("--latent", type=int, default=64, help="latent size")
    t.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="passes over the training images")
    t.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (VAE)")
    t.add_argument("--lr", type=float, default=TrainConfig.lr, help="peak learning rate (one-cycle)")
    t.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="images per step")
    t.add_argument("--digits", default=None, help="train only on these digits, e.g. 0,1,7; all ten if not given")
    t.add_argument("--train-size", type=int, default=None, help="use a random subset of this many images; all if not given")
    t.add_argument("--seed", type=int, default=0, help="initial weights and shuffling")
    t.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help=device)
    t.add_argument("--data-root", default=None, help=data_root)
    t.add_argument("--out", default=None, help="checkpoint path; if not given: <out-dir>/<kind>-z<N>-…-<time>.pt; "
                   "its folder must exist, and an existing file is refused unless --force")
    t.add_argument("--out-dir", default=None, help="folder for the default file name; if not given: checkpoints/")
    t.add_argument("--force", action="store_true", help="overwrite --out if it exists (never a shipped model)")
    t.add_argument("--owner", type=_owner_key, default=None,
                   help="owner key stored in the checkpoint (the app's visitors); without one, nobody may change it in the app")
    t.add_argument("--origin", type=_owner_key, default=None,
                   help="origin key stored in the checkpoint (the app counts its visitors' models per address by it)")
    t.add_argument("--nice", type=int, default=0, help="run at this lower CPU priority (how the app runs its jobs)")
    t.add_argument("--progress", choices=["bar", "json"], default="bar",
                   help="a progress bar on stderr, or JSON lines on stdout (how the app runs its jobs)")
    t.add_argument("--threads", type=_threads, default=None, help="CPU threads for torch; torch's own choice if not given")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="print a checkpoint's train and test loss")
    e.add_argument("checkpoint", help="a .pt file written by train")
    e.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help=device)
    e.add_argument("--data-root", default=None, help=data_root)
    e.set_defaults(func=cmd_evaluate)

    d = sub.add_parser("data", help="make sure full MNIST is under the data root (downloads it if missing)")
    d.add_argument("--data-root", default=None, help=data_root)
    d.set_defaults(func=cmd_data)

    b = sub.add_parser("bench", help="this trainer vs a textbook DataLoader loop, same model, data and device")
    b.add_argument("--data-root", default=None, help=data_root)
    b.add_argument("--epochs", type=int, default=1, help="epochs each loop trains")
    b.add_argument("--device", choices=DEVICE_CHOICES, default="cpu", help="where both loops train")
    b.set_defaults(func=cmd_bench)

    m = sub.add_parser("benchmark", help="measure anomaly detection: one-class AUROC, synthetic flaws, "
                       "out-of-distribution digits, identity of reconstructions, position shifts (conv vs "
                       "fully-connected); writes JSON the app shows")
    m.add_argument("benchmark", choices=benchmark_module.BENCHMARKS)
    m.add_argument("--kind", choices=["ae", "vae"], default=benchmark_module.ONE_CLASS_CONFIG["kind"],
                   help="one-class: model kind")
    m.add_argument("--latent", type=int, default=benchmark_module.ONE_CLASS_CONFIG["latent"], help="one-class: latent size")
    m.add_argument("--epochs", type=int, default=benchmark_module.ONE_CLASS_CONFIG["epochs"],
                   help="one-class: epochs per model")
    m.add_argument("--batch-size", type=int, default=benchmark_module.ONE_CLASS_CONFIG["batch_size"],
                   help="one-class: images per step")
    m.add_argument("--beta", type=float, default=benchmark_module.ONE_CLASS_CONFIG["beta"], help="one-class: KL weight")
    m.add_argument("--seeds", type=int, default=1, help="one-class: seeds per digit (the first seed's models are saved)")
    m.add_argument("--digits", default=None, help="one-class: digits to run, e.g. 2,8; all ten if not given")
    m.add_argument("--evaluate-only", action="store_true",
                   help="one-class: score the saved models in checkpoints/one-class/ instead of training")
    m.add_argument("--model", action="append", default=None,
                   help="flaws/ood/identity/shift: a model name in checkpoints/ or a .pt path; repeatable; "
                        "if not given: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in benchmark_module.DEFAULT_MODELS.items()))
    m.add_argument("--images", type=int, default=benchmark_module.FLAW_SAMPLE, help="flaws: test digits per flaw kind")
    m.add_argument("--shift-epochs", type=int, default=shift_benchmark.EPOCHS, help="shift: epochs per trained model")
    m.add_argument("--shift-seeds", type=int, default=shift_benchmark.SEEDS, help="shift: seeds per model and training")
    m.add_argument("--shift-train-images", type=int, default=shift_benchmark.TRAIN_IMAGES,
                   help="shift: training images per trained model (a seeded random subset)")
    m.add_argument("--shift-images", type=int, default=shift_benchmark.SAMPLE, help="shift: test digits moved")
    m.add_argument("--retrain-classifier", action="store_true", help="identity: train the judging CNN again")
    m.add_argument("--results-dir", default=None, help="folder for the JSON; if not given: checkpoints/benchmark/")
    m.add_argument("--threads", type=_threads, default=None, help="CPU threads for torch; torch's own choice if not given")
    m.add_argument("--data-root", default=None, help=data_root)
    m.set_defaults(func=cmd_benchmark)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail("interrupted: nothing was saved", RUNTIME_ERROR)
    except UsageError as exc:
        return _fail(f"{exc} (see: python -m vae {args.command} --help)", USAGE_ERROR)
    except (ValueError, CheckpointError, DataUnavailable, TrainingDiverged, OSError) as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, RUNTIME_ERROR)
