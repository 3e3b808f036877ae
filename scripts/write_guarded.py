"""Write checkpoints/precomputed/<model>.guarded.npz, the fitted "guarded" verdict score of each shipped model
(vae/detector.py, vae/precomputed.py), from full MNIST: a cold server then loads it instead of fitting it
(~50 CPU seconds per model).

Usage: MNIST_ROOT=/path/to/data python scripts/write_guarded.py [model.pt ...]   (default: every shipped model)
Run it again after replacing a shipped checkpoint: the app ignores a file whose checkpoint hash differs.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vae import load_checkpoint, load_mnist  # noqa: E402
from vae.checkpoint import SHIPPED, checkpoint_dir  # noqa: E402
from vae.data import FULL_MNIST, rows_seen_by  # noqa: E402
from vae.detector import Detector  # noqa: E402
from vae.precomputed import file_sha256, guarded_path, precomputed_dir, write_guarded  # noqa: E402


def main(names: list[str]) -> int:
    torch.set_num_threads(1)  # as the app computes: the same sums in the same order
    data = load_mnist(download=False, allow_fallback=False)
    if data.source != FULL_MNIST:
        print("error: full MNIST is needed (set MNIST_ROOT)", file=sys.stderr)
        return 1
    precomputed_dir().mkdir(exist_ok=True)
    for name in names or SHIPPED:
        checkpoint = checkpoint_dir() / name
        start = time.perf_counter()
        model, metadata = load_checkpoint(checkpoint, "cpu")
        rows = rows_seen_by(metadata, data.train_labels.numpy(), data.source)  # what the app fits on (studio/caches.py)
        detector = Detector(model, "guarded").fit(data.train_images[torch.from_numpy(rows)])
        path = write_guarded(guarded_path(checkpoint), detector.state(), file_sha256(checkpoint), data.source)
        print(f"{path.relative_to(checkpoint_dir().parent)}: {path.stat().st_size / 1e3:.0f} KB "
              f"in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
