"""Write checkpoints/precomputed/<model>.npz for the shipped models, from full MNIST (vae/precomputed.py), and
<model>.tsne2000.npz, the Latent page's t-SNE view, for those whose latent is larger than 3.

Usage: MNIST_ROOT=/path/to/data python scripts/write_precomputed.py [--projections-only]
Run it again after replacing a shipped checkpoint: the app ignores a file whose checkpoint hash differs.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from vae import load_checkpoint, load_mnist  # noqa: E402
from vae.checkpoint import SHIPPED, checkpoint_dir  # noqa: E402
from vae.data import FULL_MNIST  # noqa: E402
from vae.latent import TSNE_SAMPLE, embed_dataset, reduce  # noqa: E402
from vae.precomputed import (  # noqa: E402
    compute,
    file_sha256,
    precomputed_dir,
    precomputed_path,
    projection_path,
    write,
    write_projection,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projections-only", action="store_true", help="write only the t-SNE views")
    args = parser.parse_args()
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
        written = []
        if not args.projections_only:
            written.append(write(precomputed_path(checkpoint), compute(model, data), file_sha256(checkpoint), data.source))
        if model.latent_dim > 3:  # the page's t-SNE view, on its default sample
            projection = reduce(embed_dataset(model, data.test_images), 2, "tsne", sample_size=TSNE_SAMPLE)
            written.append(write_projection(projection_path(checkpoint, "tsne", TSNE_SAMPLE), projection,
                                            file_sha256(checkpoint), data.source))
        for path in written:
            print(f"{path.relative_to(checkpoint_dir().parent)}: {path.stat().st_size / 1e6:.3f} MB "
                  f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
