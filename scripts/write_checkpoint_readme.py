"""Regenerate checkpoints/README.md from the shipped checkpoints, with the numbers `python -m vae evaluate` prints.

Usage: MNIST_ROOT=../shared/data python scripts/write_checkpoint_readme.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae import evaluate_loss, load_checkpoint, load_mnist  # noqa: E402
from vae.checkpoint import SHIPPED, checkpoint_dir  # noqa: E402
from vae.data import DataUnavailable  # noqa: E402

HEADER = """# Shipped checkpoints

The report's two models at latent sizes 2, 3 and 64, each trained on all 60,000 MNIST training
images with `python -m vae train` (one-cycle learning rate, peak 1e-2, batch 256, seed 0).
Losses are nats per image, averaged over the split: reconstruction = binary cross-entropy summed
over the 784 pixels, KL summed over latent dimensions (0 for the AE); the VAE's sampled z is
seeded, so these are exactly the numbers `python -m vae evaluate checkpoints/<file>` prints.
Train time is wall-clock on a shared 2-core CPU that was busy with other work at the time (idle,
this trainer runs an epoch of 60,000 images in about 4–6 s). The 64-dim VAE trained for 60 epochs to
bring its test loss under 100 nats; the others for 20. This file is written by
`scripts/write_checkpoint_readme.py`.

| file | model | latent | epochs | train loss | test loss (total) | test recon | test KL | data | train time | size |
|---|---|---|---|---|---|---|---|---|---|---|
"""


def main() -> None:
    # The shipped models' numbers are full-MNIST numbers: never write the offline subset's here.
    try:
        data = load_mnist(allow_fallback=False)
    except DataUnavailable as exc:
        raise SystemExit(f"error: {str(exc).splitlines()[0]}; set MNIST_ROOT to a folder with MNIST") from None
    rows = []
    for name in sorted(SHIPPED, key=lambda n: (n.split("-z")[0], int(n.split("-z")[1][:-3]))):
        path = checkpoint_dir() / name
        model, meta = load_checkpoint(path)
        train, test = evaluate_loss(model, data.train_images), evaluate_loss(model, data.test_images)
        rows.append(f"| `{name}` | {model.kind.upper()} | {model.latent_dim} | {meta.get('epochs')} | "
                    f"{train['total']:.2f} | **{test['total']:.2f}** | {test['recon']:.2f} | {test['kl']:.2f} | "
                    f"{data.source} | {meta.get('train_seconds', 0) / 60:.1f} min | {path.stat().st_size / 1e6:.2f} MB |")
    (checkpoint_dir() / "README.md").write_text(HEADER + "\n".join(rows) + "\n")
    print((checkpoint_dir() / "README.md").read_text())


if __name__ == "__main__":
    main()
