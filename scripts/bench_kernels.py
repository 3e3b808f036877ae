"""Each strided layer of the model, forward + backward on a 256-image batch: PyTorch's module
against vae/kernels.py, interleaved, median of several rounds, one thread.

    python scripts/bench_kernels.py [--batch 256] [--rounds 7]

This is where the model's choice comes from: it uses the kernels for the three layers where they
win (encoder.conv2, decoder.conv2, decoder.conv1) and PyTorch's modules for the other three.
Timings on a shared machine are noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae.kernels import strided_conv, strided_conv_transpose  # noqa: E402
from vae.model import ConvVAE  # noqa: E402


def _layers(model: ConvVAE):
    """(name, module, input shape, the kernels' version, whether the input needs a gradient)."""
    enc, dec = model.encoder, model.decoder
    return [
        ("encoder.conv1  1→4, 28→14", enc.conv1, (1, 28, 28), lambda x: strided_conv(x, enc.conv1), False),
        ("encoder.conv2  4→16, 14→7", enc.conv2, (4, 14, 14), lambda x: strided_conv(x, enc.conv2), True),
        ("encoder.conv3  16→64, 7→3", enc.conv3, (16, 7, 7), lambda x: strided_conv(x, enc.conv3), True),
        ("decoder.conv3  64→16, 3→7", dec.conv3, (64, 3, 3), lambda x: strided_conv_transpose(x, dec.conv3, 7), True),
        ("decoder.conv2  16→4, 7→14", dec.conv2, (16, 7, 7), lambda x: strided_conv_transpose(x, dec.conv2, 14), True),
        ("decoder.conv1  4→1, 14→28", dec.conv1, (4, 14, 14), lambda x: strided_conv_transpose(x, dec.conv1, 28), True),
    ]


def _seconds(fn, x: torch.Tensor, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn(x)
        out.backward(torch.ones_like(out))
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ConvVAE(64)
    print(f"forward + backward, batch {args.batch}, 1 thread, median of {args.rounds} rounds (ms)")
    print(f"{'layer':28s} {'PyTorch':>8s} {'kernels':>8s} {'speed-up':>9s}")
    for name, module, shape, fast, input_grad in _layers(model):
        x = torch.rand(args.batch, *shape).requires_grad_(input_grad)
        module_times, fast_times = [], []
        for fn in (module, fast):  # warm-up
            _seconds(fn, x, 3)
        for _ in range(args.rounds):
            module_times.append(_seconds(module, x, 10))
            fast_times.append(_seconds(fast, x, 10))
        slow, quick = statistics.median(module_times), statistics.median(fast_times)
        print(f"{name:28s} {slow * 1e3:8.2f} {quick * 1e3:8.2f} {slow / quick:8.2f}×")


if __name__ == "__main__":
    main()
