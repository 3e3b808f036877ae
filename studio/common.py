"""What every page shares: cached data, models and scores, the sidebar, the current threshold.

Streamlit glue only; the computing lives in `vae/`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from vae import calibrate_spot_level, load_checkpoint, load_mnist, precomputed, registry
from vae.checkpoint import CHECKPOINT_DIR
from vae.correction import fitted_difference
from vae.data import FALLBACK_SUBSET, MnistData, default_data_root, rows_seen_by
from vae.devices import describe as describe_device
from vae.devices import pick_device
from vae.latent import cluster_scores, embed_dataset
from vae.scores import DEFAULT_RULE, THRESHOLD_RULES, dataset_errors, threshold

DEFAULT_MODEL = "vae-z64.pt"
MODEL_KEY = "model_path"  # session state: path (str) of the model chosen in the sidebar
MODEL_GONE_KEY = "model_gone"  # session state: name of the chosen model that disappeared, to say so once
THRESHOLD_KEY = "threshold_rule"  # session state: (rule, param) chosen on the histogram page
TOKEN_KEY = "visitor_token"  # session state: this visitor's token (registry.new_token)
SPACE_PARAM = "space"  # the URL's query parameter that keeps the token across reloads


def offered(value, options):
    """A radio's or selectbox's value if it is one of `options`, else the first option.

    Streamlit hands a page whatever string the browser sends when it matches no option, so a forged
    message could otherwise feed any text to the code behind a choice."""
    options = list(options)
    return value if value in options else options[0]


def visitor_token() -> str:
    """This visitor's token: from the session, else from the URL (a reload, a bookmark), else new.

    It is written back into the URL's query string on every run, so reloading the page or opening the
    bookmarked URL later finds the same models and running jobs. Whoever has the URL is that visitor.
    """
    token = st.session_state.get(TOKEN_KEY)
    if token is None:
        given = st.query_params.get(SPACE_PARAM)
        token = given if registry.valid_token(given) else registry.new_token()
        st.session_state[TOKEN_KEY] = token
    if st.query_params.get(SPACE_PARAM) != token:
        st.query_params[SPACE_PARAM] = token
    return token


def visitor_key() -> str:
    """The owner key of this visitor's models and jobs (a hash of the token)."""
    return registry.owner_key(visitor_token())


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
    """(model, metadata), cached by path and modification time. Raises CheckpointError."""
    return _load_model(path, mtime, str(app_device()))


@st.cache_resource(show_spinner="Loading the model…", max_entries=32)
def _load_model(path: str, mtime: float, device: str):
    return load_checkpoint(path, device)


@st.cache_data(show_spinner="Reading the checkpoints…", max_entries=8)
def _scan(folder: str, fingerprint: tuple) -> list[registry.CheckpointEntry]:
    return registry.scan(folder)


def checkpoint_entries(folder: Path | None = None) -> list[registry.CheckpointEntry]:
    """Every checkpoint in the folder (CHECKPOINT_DIR, looked up now so that a test can point it elsewhere);
    re-read only when a file is added, removed or changed."""
    folder = CHECKPOINT_DIR if folder is None else folder
    fingerprint = tuple(sorted((p.name, p.stat().st_mtime) for p in Path(folder).glob("*.pt") if p.is_file()))
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
    """The errors, embeddings and cluster scores shipped for this very checkpoint and data, if any
    (vae/precomputed.py): a cold server then computes nothing for the shipped models."""
    return precomputed.load(path, get_data(root))


def seen_rows(path: str, mtime: float, root: str) -> np.ndarray:
    """The training rows this model was trained on (its digits, its subset)."""
    _, metadata = get_model(path, mtime)
    d = get_data(root)
    return rows_seen_by(metadata, d.train_labels.numpy(), d.source)


@st.cache_resource(show_spinner="Scoring the model's training images and all test images (once per model)…",
                   max_entries=16)
def get_errors(path: str, mtime: float, root: str) -> tuple[np.ndarray, np.ndarray]:
    """(errors of the training images the model was trained on, errors of every test image), computed once.

    Only the model's own training images: its threshold and percentiles say what is unusual for what it
    learned, so a one-class model flags the other digits."""
    rows = seen_rows(path, mtime, root)
    shipped = get_precomputed(path, mtime, root)
    if shipped is not None:
        return shipped.train_errors[rows], shipped.test_errors
    model, _ = get_model(path, mtime)
    d = get_data(root)
    return dataset_errors(model, d.train_images[torch.from_numpy(rows)]), dataset_errors(model, d.test_images)


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


def errors_for(entry: registry.CheckpointEntry) -> tuple[np.ndarray, np.ndarray]:
    return get_errors(str(entry.path), entry.mtime, default_data_root())


def short_label(entry: registry.CheckpointEntry) -> str:
    """'vae-z64 · VAE z=64': what fits the sidebar's picker; model_details says the rest below it."""
    return f"{entry.name} · {entry.metadata['kind'].upper()} z={entry.metadata['latent_dim']}"


def trained_digits(entry: registry.CheckpointEntry) -> list[int] | None:
    """The digits a model was trained on, or None for all ten."""
    digits = entry.metadata.get("digits")
    return sorted(int(d) for d in digits) if digits else None


def model_details(entry: registry.CheckpointEntry) -> str:
    """'test loss 98.9 · all digits · 60 epochs on 60,000 images · mnist' (what the short label leaves out)."""
    meta = entry.metadata
    loss = (meta.get("test_loss") or {}).get("total")
    digits = trained_digits(entry)
    parts = [f"test loss {loss:.1f}" if isinstance(loss, (int, float)) else "test loss ?",
             "all digits" if digits is None else f"digit{'s' if len(digits) > 1 else ''} {', '.join(map(str, digits))}"]
    if isinstance(meta.get("train_images"), int):
        parts.append(f"{meta.get('epochs', '?')} epochs on {meta['train_images']:,} images")
    parts.append(str(meta.get("data_source", "?")))
    return " · ".join(parts)


def selected_entry() -> registry.CheckpointEntry | None:
    """The model chosen in the sidebar (None if no usable checkpoint exists). If the chosen one has
    gone (deleted in another tab, or broken), the default takes its place and the sidebar says so."""
    entries = usable_entries()
    by_path = {str(e.path): e for e in entries}
    chosen = st.session_state.get(MODEL_KEY)
    if chosen in by_path:
        return by_path[chosen]
    if isinstance(chosen, str):
        st.session_state[MODEL_GONE_KEY] = Path(chosen).name
    default = next((e for e in entries if e.path.name == DEFAULT_MODEL), entries[0] if entries else None)
    return default


def select_model(path: str | Path) -> None:
    """Make `path` the selected model on every page (e.g. after training it)."""
    st.session_state[MODEL_KEY] = str(path)


def current_threshold_rule() -> tuple[str, float | None]:
    return st.session_state.get(THRESHOLD_KEY, DEFAULT_RULE)


def current_threshold(train_errors: np.ndarray) -> float:
    rule, param = current_threshold_rule()
    return threshold(train_errors, rule, param)


def threshold_description() -> str:
    rule, param = current_threshold_rule()
    if rule == "percentile":
        return f"{param:g}th percentile of training errors"
    if rule == "mean_k_sigma":
        return f"training mean + {param:g}·σ"
    return THRESHOLD_RULES[rule]


def sidebar() -> None:
    """Model picker and data source, on every page."""
    entries = checkpoint_entries()
    usable = [e for e in entries if e.ok]
    key = visitor_key()
    with st.sidebar:
        st.header("Model")
        if not usable:
            st.error(f"No usable checkpoint in {CHECKPOINT_DIR}. Train one: `python -m vae train`.")
        else:
            current = selected_entry()
            gone = st.session_state.pop(MODEL_GONE_KEY, None)
            if gone:
                st.info(f"{gone} is no longer available (deleted or unreadable); {current.name} is selected instead.")
            paths = [str(e.path) for e in usable]
            labels = {str(e.path): short_label(e) + (" · yours" if e.owned_by(key) else "") for e in usable}
            st.session_state[MODEL_KEY] = str(current.path)
            st.selectbox("Checkpoint", paths, key=MODEL_KEY, format_func=lambda path: labels.get(path, "?"),
                         help="Every checkpoint on this server: kind, latent size, test loss (nats/image), data "
                              "source. Anyone may use any of them; only yours can be renamed or deleted.")
            st.caption(model_details(current))
        for broken in (e for e in entries if not e.ok):
            st.warning(f"**{broken.path.name}** cannot be used: {broken.error}")

        st.header("Data")
        try:
            d = data()
        except Exception as exc:  # DataUnavailable: no MNIST and no fallback
            st.error(f"No data: {exc}")
            return
        if d.source == FALLBACK_SUBSET:
            st.warning(f"Offline fallback in use — {d.source_label}. Numbers differ from full MNIST.")
        else:
            st.caption(f"Data: {d.source_label}")
        st.caption(f"Computing on: {describe_device(app_device())}")

        from studio.retrain import retrain_sidebar  # imported here: studio.retrain imports this module
        retrain_sidebar()


DRAWN_DIGIT_KEY = "current_digit"  # session state: the 28×28 float array the Draw page last prepared
