"""What a cold app would otherwise compute on a visitor's first visit, shipped beside the checkpoints.

For each shipped model, checkpoints/precomputed/<model>.npz holds the reconstruction error of every
training and test image, the test set's latent codes and the 2-D cluster scores, computed from full
MNIST by scripts/write_precomputed.py; <model>.guarded.npz holds its fitted "guarded" verdict score
(vae/detector.py, Detector.state), written by scripts/write_guarded.py. A file counts only for the exact
checkpoint it was computed from (its sha256) and the same data (source and split sizes; for "guarded", the
very training images): a retrained or replaced checkpoint, or the offline fallback, is computed afresh instead.
Read with numpy alone, never unpickled.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import checkpoint_dir
from .data import MnistData
from .files import write_atomically
from .latent import cluster_scores, embed_dataset
from .scores import dataset_scores

FORMAT = "conv-vae-studio-precomputed/1"
SCORE_NAMES = ("knn_accuracy", "silhouette", "size_ratio")  # the order of the stored cluster scores


@dataclass(frozen=True)
class Precomputed:
    train_errors: np.ndarray  # (all training images,) float64: every row, the model's own ones are picked later
    test_errors: np.ndarray  # (test images,) float64
    test_embeddings: np.ndarray  # (test images, latent) float32
    cluster_scores: dict[str, float]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def precomputed_dir() -> Path:
    return checkpoint_dir() / "precomputed"


def precomputed_path(checkpoint: str | os.PathLike, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or precomputed_dir()) / f"{Path(checkpoint).stem}.npz"


def compute(model, data: MnistData) -> Precomputed:
    """Everything a first visit asks of one model, over the whole of `data`."""
    embeddings = embed_dataset(model, data.test_images)
    return Precomputed(
        train_errors=dataset_scores(model, data.train_images),
        test_errors=dataset_scores(model, data.test_images),
        test_embeddings=embeddings,
        cluster_scores=cluster_scores(embeddings, data.test_labels.numpy()),
    )


def write(path: str | os.PathLike, pre: Precomputed, checkpoint_sha256: str, data_source: str) -> Path:
    """Atomically: a temp file in the same folder, then os.replace. Errors are float32 (7 digits, far more
    than any caption shows) and the latent codes float16 (3 digits: a scatter plot's dot is coarser), so a
    64-D model's file is under 1.5 MB."""
    return write_atomically(path, lambda f: np.savez_compressed(
        f, format=np.array(FORMAT), checkpoint_sha256=np.array(checkpoint_sha256),
        data_source=np.array(data_source), train_errors=pre.train_errors.astype(np.float32),
        test_errors=pre.test_errors.astype(np.float32), test_embeddings=pre.test_embeddings.astype(np.float16),
        cluster_scores=np.array([pre.cluster_scores[name] for name in SCORE_NAMES], dtype=np.float64)))


PROJECTION_FORMAT = "conv-vae-studio-projection/1"


def projection_path(checkpoint: str | os.PathLike, method: str, sample_size: int,
                    folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or precomputed_dir()) / f"{Path(checkpoint).stem}.{method}{sample_size}.npz"


def write_projection(path: str | os.PathLike, projection, checkpoint_sha256: str, data_source: str) -> Path:
    """A t-SNE (or UMAP) view of the test digits: its rows and float16 coordinates (a dot on the screen is
    coarser than 3 digits), about 20 KB for 2,000 digits."""
    return write_atomically(path, lambda f: np.savez_compressed(
        f, format=np.array(PROJECTION_FORMAT), checkpoint_sha256=np.array(checkpoint_sha256),
        data_source=np.array(data_source), method=np.array(projection.method),
        rows=projection.rows.astype(np.int32), coords=projection.coords.astype(np.float16)))


def load_projection(checkpoint: str | os.PathLike, method: str, sample_size: int, data: MnistData,
                    folder: str | os.PathLike | None = None):
    """(rows, coords) of the stored view for this very checkpoint and data, else None (then it is computed)."""
    path = projection_path(checkpoint, method, sample_size, folder)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if (str(f["format"]) != PROJECTION_FORMAT or str(f["method"]) != method
                    or str(f["checkpoint_sha256"]) != file_sha256(checkpoint) or str(f["data_source"]) != data.source):
                return None
            rows, coords = f["rows"].astype(np.int64), f["coords"].astype(np.float64)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if len(rows) != len(coords) or len(rows) > len(data.test_images) or (len(rows) and rows.max() >= len(data.test_images)):
        return None
    return rows, coords


def load(checkpoint: str | os.PathLike, data: MnistData, folder: str | os.PathLike | None = None) -> Precomputed | None:
    """The precomputed values for this checkpoint file and this data, or None if there are none that match
    (no file, another checkpoint's, other data, an unreadable file): then the caller computes them."""
    path = precomputed_path(checkpoint, folder)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if (str(f["format"]) != FORMAT or str(f["checkpoint_sha256"]) != file_sha256(checkpoint)
                    or str(f["data_source"]) != data.source):
                return None
            pre = Precomputed(
                train_errors=f["train_errors"].astype(np.float64), test_errors=f["test_errors"].astype(np.float64),
                test_embeddings=f["test_embeddings"].astype(np.float32),
                cluster_scores=dict(zip(SCORE_NAMES, map(float, f["cluster_scores"]))))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged or of another layout: compute
        return None
    if (len(pre.train_errors), len(pre.test_errors), len(pre.test_embeddings)) != (
            len(data.train_images), len(data.test_images), len(data.test_images)):
        return None
    return pre


# --- the fitted "guarded" verdict score (vae/detector.py), ~50 CPU seconds per model to fit -------------------

GUARDED_FORMAT = "conv-vae-studio-guarded/1"


def guarded_path(checkpoint: str | os.PathLike, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or precomputed_dir()) / f"{Path(checkpoint).stem}.guarded.npz"


def write_guarded(path: str | os.PathLike, state: dict[str, np.ndarray], checkpoint_sha256: str,
                  data_source: str) -> Path:
    """Detector.state() beside the checkpoint's hash and the data's source, atomically; float64 throughout, so
    a loaded detector scores exactly as the fitted one did."""
    return write_atomically(path, lambda f: np.savez_compressed(
        f, format=np.array(GUARDED_FORMAT), checkpoint_sha256=np.array(checkpoint_sha256),
        data_source=np.array(data_source), **state))


def load_guarded(checkpoint: str | os.PathLike, data_source: str,
                 folder: str | os.PathLike | None = None) -> dict[str, np.ndarray] | None:
    """The stored "guarded" state for this checkpoint file and data source, or None (no file, another
    checkpoint's, other data, unreadable). Detector.from_state() then checks the training images themselves."""
    path = guarded_path(checkpoint, folder)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            if (str(f["format"]) != GUARDED_FORMAT or str(f["checkpoint_sha256"]) != file_sha256(checkpoint)
                    or str(f["data_source"]) != data_source):
                return None
            return {name: f[name] for name in f.files if name not in ("format", "checkpoint_sha256", "data_source")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def guarded_detector(model, checkpoint: str | os.PathLike, data_source: str, train_images,
                     folder: str | os.PathLike | None = None):
    """The shipped fitted "guarded" Detector for this checkpoint and these training images, or None."""
    from .detector import Detector

    state = load_guarded(checkpoint, data_source, folder)
    if state is None:
        return None
    try:
        return Detector.from_state(model, "guarded", state, train_images)
    except (KeyError, ValueError):  # fitted on other training images, or a damaged state: fit afresh
        return None
