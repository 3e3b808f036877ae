"""What the server computes once and every session shares: the data, the models, their scores, embeddings
and spot levels (Streamlit's caches around vae/). A cached model is shared: nothing here may change it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from vae import benchmark, calibrate_spot_level, cluster_compare, load_checkpoint, load_mnist, precomputed
from vae.checkpoint import ONE_CLASS_FOLDER, SUFFIX, checkpoint_dir
from vae.correction import fitted_difference
from vae.data import MnistData, default_data_root, rows_seen_by
from vae.detector import Detector
from vae.devices import pick_device
from vae.flaws import FLAW_KINDS
from vae.latent import cluster_scores, embed_dataset
from vae.nondigits import EVALUATION_SEED, nondigit_set
from vae.scores import SCORES, dataset_scores
from vae.server import registry


@st.cache_resource(show_spinner="Loading the MNIST digits…")
def get_data(root: str) -> MnistData:
    return load_mnist(root)


def data() -> MnistData:
    return get_data(default_data_root())


@st.cache_resource(show_spinner="Looking for a GPU…")
def app_device():
    """The device the pages compute on: the best present (vae.devices), chosen once per server."""
    return pick_device("auto")


def get_model(path: str, mtime: float):
    """(model, metadata), cached by path and modification time. Raises CheckpointError. The use is written
    down (registry.note_use): the visitors' models unused longest are the first to expire."""
    registry.note_use(path)
    return _load_model(path, mtime, str(app_device()))


@st.cache_resource(show_spinner="Loading the model…", max_entries=32)
def _load_model(path: str, mtime: float, device: str):
    return load_checkpoint(path, device)


@st.cache_data(show_spinner="Reading the checkpoints…", max_entries=8)
def _scan(folder: str, fingerprint: tuple) -> list[registry.CheckpointEntry]:
    return registry.scan(folder)


def checkpoint_entries(folder: Path | None = None) -> list[registry.CheckpointEntry]:
    """Every checkpoint in the folder (checkpoint_dir() unless given); re-read only when a file is added,
    removed or changed."""
    folder = Path(folder or checkpoint_dir())
    files = [*folder.glob(f"*{SUFFIX}"), *(folder / ONE_CLASS_FOLDER).glob(f"*{SUFFIX}")]  # what scan() lists
    fingerprint = tuple(sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size)
                               for p in files if p.is_file()))
    return _scan(str(folder), fingerprint)


def usable_entries() -> list[registry.CheckpointEntry]:
    return [e for e in checkpoint_entries() if e.ok]


def find_entry(kind: str, latent_dim: int) -> registry.CheckpointEntry | None:
    """The shipped model of this kind and size if present, else the newest usable one."""
    matches = [e for e in usable_entries() if e.metadata["kind"] == kind and e.metadata["latent_dim"] == latent_dim]
    return next((e for e in matches if e.shipped), matches[0] if matches else None)


def model_for(entry: registry.CheckpointEntry):
    return get_model(str(entry.path), entry.mtime)


@st.cache_resource(show_spinner="Reading the shipped model's precomputed scores…", max_entries=16)
def get_precomputed(path: str, mtime: float, root: str) -> precomputed.Precomputed | None:
    """The scores, embeddings and cluster scores shipped for this very checkpoint and data, if any
    (vae/precomputed.py): a cold server then computes nothing for the shipped models."""
    return precomputed.load(path, get_data(root))


def seen_rows(path: str, mtime: float, root: str) -> np.ndarray:
    """The training rows this model was trained on (its digits, its subset)."""
    _, metadata = get_model(path, mtime)
    d = get_data(root)
    return rows_seen_by(metadata, d.train_labels.numpy(), d.source)


@st.cache_resource(show_spinner="Scoring the model's training images and all test images (once per model)…",
                   max_entries=16)
def get_scores(path: str, mtime: float, root: str) -> tuple[np.ndarray, np.ndarray]:
    """(anomaly scores of the training images the model was trained on, of every test image), computed once.

    Only the model's own training images: its threshold and percentiles say what is unusual for what it
    learned, so a one-class model flags the other digits."""
    rows = seen_rows(path, mtime, root)
    shipped = get_precomputed(path, mtime, root)
    if shipped is not None:
        return shipped.train_errors[rows], shipped.test_errors
    model, _ = get_model(path, mtime)
    d = get_data(root)
    return dataset_scores(model, d.train_images[torch.from_numpy(rows)]), dataset_scores(model, d.test_images)


def scores_for(entry: registry.CheckpointEntry) -> tuple[np.ndarray, np.ndarray]:
    return get_scores(str(entry.path), entry.mtime, default_data_root())


@st.cache_resource(show_spinner="Embedding the test digits (once per model)…", max_entries=12)
def get_embeddings(path: str, mtime: float, root: str) -> np.ndarray:
    """The latent codes of the whole test split under one model (the latent page and Home)."""
    shipped = get_precomputed(path, mtime, root)
    if shipped is not None:
        return shipped.test_embeddings
    model, _ = get_model(path, mtime)
    return embed_dataset(model, get_data(root).test_images)


@st.cache_data(show_spinner="Measuring how well the digits cluster (once per model)…", max_entries=12)
def get_cluster_scores(path: str, mtime: float, root: str) -> dict[str, float]:
    shipped = get_precomputed(path, mtime, root)
    if shipped is not None:
        return shipped.cluster_scores
    return cluster_scores(get_embeddings(path, mtime, root), get_data(root).test_labels.numpy())


@st.cache_data(show_spinner="Calibrating the spots on 1,000 of the model's training digits (once per model)…",
               max_entries=16)
def get_spot_level(path: str, mtime: float, root: str) -> float:
    """The model's calibrated spot level (vae/correction.py): stored in its checkpoint, else (a model from
    before calibration) measured on its own training digits."""
    model, _ = get_model(path, mtime)
    if model.spot_level is not None:
        return model.spot_level
    return calibrate_spot_level(model, get_data(root).train_images[torch.from_numpy(seen_rows(path, mtime, root))])


def spot_level_for(entry: registry.CheckpointEntry) -> float:
    return get_spot_level(str(entry.path), entry.mtime, default_data_root())


@st.cache_data(show_spinner="Fitting the model's code to this digit…", max_entries=64)
def _fitted_difference(path: str, mtime: float, digit: np.ndarray) -> np.ndarray:
    model, _ = get_model(path, mtime)
    return fitted_difference(model, digit)


def fitted_difference_for(entry: registry.CheckpointEntry, digit: np.ndarray) -> np.ndarray:
    """The closest digit the model can draw − `digit` (28, 28), cached: the canvas reruns the page often."""
    return _fitted_difference(str(entry.path), entry.mtime, np.asarray(digit, dtype=np.float32))


@st.cache_resource(show_spinner="Preparing the verdict's score on the model's training digits (once per model and score: "
                   "seconds for a shipped model; 'guarded' for another model also learns the project's non-digits, "
                   "about a minute)…", max_entries=16)
def get_detector(path: str, mtime: float, root: str, score: str) -> Detector:
    """A Detector for `score`, fitted on the training images the model learned from; shared by every session.
    "guarded" of a shipped model is read from checkpoints/precomputed/ instead (vae/precomputed.py)."""
    model, _ = get_model(path, mtime)
    rows = seen_rows(path, mtime, root)
    train_images = get_data(root).train_images[torch.from_numpy(rows)]
    if score == "guarded":
        shipped = precomputed.guarded_detector(model, path, get_data(root).source, train_images)
        if shipped is not None:
            return shipped
    return Detector(model, score).fit(train_images)


def detector_for(entry: registry.CheckpointEntry, score: str) -> Detector:
    return get_detector(str(entry.path), entry.mtime, default_data_root(), score)


@st.cache_resource(show_spinner="Scoring the training digits and all test images with this score (once per model)…",
                   max_entries=16)
def get_detector_scores(path: str, mtime: float, root: str, score: str) -> tuple[np.ndarray, np.ndarray]:
    """(the training digits' reference scores, every test image's score) under a Detector for `score`."""
    detector = get_detector(path, mtime, root, score)
    return detector.reference_scores, detector.decision_function(get_data(root).test_images)


def detector_scores_for(entry: registry.CheckpointEntry, score: str) -> tuple[np.ndarray, np.ndarray]:
    return get_detector_scores(str(entry.path), entry.mtime, default_data_root(), score)


@st.cache_data(show_spinner="Comparing the AE's and the VAE's clusters (once per pair of models)…", max_entries=16)
def get_cluster_comparison(ae_path: str, ae_mtime: float, vae_path: str, vae_mtime: float,
                           root: str) -> list[cluster_compare.Difference]:
    """k-NN accuracy and silhouette of the two models' test-digit codes, with the test digits' paired spread."""
    labels = get_data(root).test_labels.numpy()
    return cluster_compare.compare(get_embeddings(ae_path, ae_mtime, root), get_embeddings(vae_path, vae_mtime, root),
                                   labels)


ANOMALY_SETS = ("flawed digits", "non-digits")  # the Detection benchmark's two kinds of anomaly, on the histograms
HISTOGRAM_FLAWS_PER_KIND = 250  # test digits per flaw kind (the benchmark itself uses 2,000)


@st.cache_resource(show_spinner="Drawing the benchmark's flawed digits and non-digits (once per server)…", max_entries=2)
def get_anomaly_images(root: str) -> dict[str, torch.Tensor]:
    """The Detection benchmark's anomalies as uint8 (N, 1, 28, 28): test digits with each synthetic flaw
    (vae/flaws.py, benchmark.flawed_test_digits) and the non-digits of the evaluation seed (vae/nondigits.py)."""
    d = get_data(root)
    flawed = [benchmark.flawed_test_digits(d, kind, HISTOGRAM_FLAWS_PER_KIND)[1] for kind in FLAW_KINDS[1:]]
    others = nondigit_set(benchmark.OOD_IMAGES_PER_KIND, EVALUATION_SEED).values()
    as_uint8 = lambda images: torch.from_numpy(np.round(np.concatenate(list(images)) * 255).astype(np.uint8)[:, None])  # noqa: E731
    return dict(zip(ANOMALY_SETS, (as_uint8(flawed), as_uint8(others))))


@st.cache_resource(show_spinner="Scoring the flawed digits and non-digits (once per model and score)…", max_entries=16)
def get_anomaly_scores(path: str, mtime: float, root: str, score: str) -> dict[str, np.ndarray]:
    """Each anomaly set's scores under `score`, as the histograms score the test digits."""
    images = get_anomaly_images(root)
    if score in SCORES:
        model, _ = get_model(path, mtime)
        return {name: dataset_scores(model, batch, score) for name, batch in images.items()}
    detector = get_detector(path, mtime, root, score)
    return {name: detector.decision_function(batch) for name, batch in images.items()}


def anomaly_scores_for(entry: registry.CheckpointEntry, score: str) -> dict[str, np.ndarray]:
    return get_anomaly_scores(str(entry.path), entry.mtime, default_data_root(), score)
