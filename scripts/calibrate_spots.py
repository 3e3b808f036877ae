"""Store the calibrated spot level (vae/correction.py) in checkpoints trained before it existed.

Usage: MNIST_ROOT=/path/to/data python scripts/calibrate_spots.py checkpoints/*.pt checkpoints/one-class/*.pt
Each model is calibrated on the training images it was trained on (its digits), then saved again in place,
atomically, with every other field unchanged. Run scripts/write_precomputed.py after it: the shipped
files' hashes change.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vae import calibrate_spot_level, load_checkpoint, load_mnist, save_checkpoint  # noqa: E402
from vae.checkpoint import read_checkpoint  # noqa: E402
from vae.data import rows_seen_by  # noqa: E402


def main(paths: list[str]) -> int:
    torch.set_num_threads(1)
    data = load_mnist(download=False, allow_fallback=False)
    for path in paths:
        model, metadata = load_checkpoint(path)
        rows = rows_seen_by(metadata, data.train_labels.numpy(), data.source)
        stored = dict(read_checkpoint(path)["metadata"])  # as written: without the fields load_checkpoint adds
        stored["spot_level"] = calibrate_spot_level(model, data.train_images[torch.from_numpy(rows)])
        save_checkpoint(model, path, stored, overwrite=True)
        print(f"{path}: spot level {stored['spot_level']:.4f} from {len(rows):,} training images")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
