"""Write checkpoints/precomputed/<model>.npz for the shipped models, from full MNIST (vae/precomputed.py).

Usage: MNIST_ROOT=/path/to/data python scripts/write_precomputed.py
Run it again after replacing a shipped checkpoint: the app ignores a file whose checkpoint hash differs.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vae import load_checkpoint, load_mnist  # noqa: E402
from vae.checkpoint import SHIPPED, checkpoint_dir  # noqa: E402
from vae.data import FULL_MNIST  # noqa: E402
from vae.precomputed import compute, file_sha256, precomputed_dir, precomputed_path, write  # noqa: E402


def main() -> int:
    torch.set_num_threads(1)  # as the app computes: the same sums in the same order
    data = load_mnist(download=False, allow_fallback=False)
    if data.source != FULL_MNIST:
        print("error: full MNIST is needed (set MNIST_ROOT)", file=sys.stderr)
        return 1
    precomputed_dir().mkdir(exist_ok=True)
    for name in SHIPPED:
        checkpoint = checkpoint_dir() / name
        start = time.perf_counter()
        model, _ = load_checkpoint(checkpoint, "cpu")
        path = write(precomputed_path(checkpoint), compute(model, data), file_sha256(checkpoint), data.source)
        print(f"{path.relative_to(checkpoint_dir().parent)}: {path.stat().st_size / 1e6:.2f} MB "
              f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
