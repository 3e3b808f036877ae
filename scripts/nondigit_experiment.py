"""Exploration for issue #16: which score flags non-digits with the shipped models? Writes every candidate
score of every image to an .npz (train, test, and the non-digit sets of two seeds) for analysis.

    MNIST_ROOT=/work/shared/data python scripts/nondigit_experiment.py vae-z64 /tmp/scores-vae-z64.npz
"""
from __future__ import annotations

import sys
import zlib

import numpy as np
import torch

from vae.checkpoint import checkpoint_dir, load_checkpoint
from vae.data import load_mnist
from vae.detector import NEIGHBOURS, Detector
from vae.latent import embed_dataset
from vae.nondigits import DEVELOPMENT_SEED, EVALUATION_SEED, nondigit_set


def compressed_bits(images: torch.Tensor) -> np.ndarray:
    """Serrà et al.'s complexity estimate: the length in bits of each uint8 image compressed (zlib, level 9)."""
    return np.array([8 * len(zlib.compress(image.numpy().tobytes(), 9)) for image in images], dtype=np.float64)


def main(name: str, out: str, n_per_kind: int = 300) -> None:
    torch.set_num_threads(2)
    model, _ = load_checkpoint(checkpoint_dir() / f"{name}.pt")
    data = load_mnist()
    sets = {"train": data.train_images, "test": data.test_images}
    for seed, tag in ((DEVELOPMENT_SEED, "dev"), (EVALUATION_SEED, "eval")):
        for kind, images in nondigit_set(n_per_kind, seed).items():
            sets[f"{tag}_{kind}"] = torch.from_numpy(np.round(images * 255).astype(np.uint8)[:, None])
    scores = ["squared_error", "blurred_error", "absolute_error", "bce", "neg_elbo", "latent_knn"]
    if model.kind == "vae":
        scores.append("kl")
    out_arrays = {}
    for score in scores:
        detector = Detector(model, score).fit(data.train_images)
        for set_name, images in sets.items():
            out_arrays[f"{score}/{set_name}"] = detector.decision_function(images)
        if score == "latent_knn":  # a training image's nearest code is its own: leave it out, as in fit
            codes = embed_dataset(model, data.train_images)
            out_arrays["latent_knn/train"] = detector.neighbours.kneighbors(codes, NEIGHBOURS + 1)[0][:, 1:].mean(1)
        print(score, flush=True)
    for set_name, images in sets.items():
        out_arrays[f"zlib_bits/{set_name}"] = compressed_bits(images)
    np.savez(out, **out_arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
