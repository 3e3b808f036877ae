"""The sidebar on every page: the model picker, the data source, the device and Retrain."""
from __future__ import annotations

import streamlit as st

from studio import caches, state
from studio.retrain import retrain_sidebar, train_one_hint
from vae.data import FALLBACK_SUBSET
from vae.devices import device_name


def picker_label(entry, yours: bool = False) -> str:
    """What the model picker shows, short enough for the sidebar's width: the name, then the kind and latent size
    unless the name already starts with them ('vae-z16-d0-20261203-101500' does), then '· yours'. The caption
    under the picker names the chosen model in full."""
    m = entry.metadata
    prefix = f"{m['kind']}-z{m['latent_dim']}"
    said = entry.name == prefix or entry.name.startswith(prefix + "-")
    return entry.name + ("" if said else f" · {m['kind'].upper()} z={m['latent_dim']}") + (" · yours" if yours else "")


def sidebar() -> None:
    entries = caches.checkpoint_entries()
    usable = [e for e in entries if e.ok]
    key = state.visitor_key()
    with st.sidebar:
        st.header("Model")
        if not usable:
            st.error(f"No usable model on this server. {train_one_hint()}")
        else:
            current = state.selected_entry()
            gone = st.session_state.pop(state.MODEL_GONE_KEY, None)
            if gone:
                st.info(f"{gone} is no longer available (deleted or unreadable); {current.name} is selected instead.")
            paths = [str(e.path) for e in usable]
            labels = {str(e.path): picker_label(e, e.owned_by(key)) for e in usable}
            state.select_model(current.path)
            st.selectbox("Checkpoint", paths, key=state.MODEL_KEY, format_func=lambda path: labels.get(path, "?"),
                         help="Every checkpoint on this server: kind, latent size, test loss (nats/image), data "
                              "source. Anyone may use any of them; only yours can be renamed or deleted.")
            st.caption(f"**{current.name}** · {current.metadata['kind'].upper()} z={current.metadata['latent_dim']} · "
                       f"{current.details}")
        for broken in (e for e in entries if not e.ok):
            st.warning(f"**{broken.path.name}** cannot be used: {broken.error}")

        st.header("Data")
        try:
            d = caches.data()
        except Exception as exc:  # DataUnavailable: no MNIST and no fallback
            st.error(f"No data: {exc}")
            return
        if d.source == FALLBACK_SUBSET:
            st.warning(f"Offline fallback in use — {d.source_label}. Numbers differ from full MNIST.")
        else:
            st.caption(f"Data: {d.source_label}")
        st.caption(f"Computing on: {device_name(caches.app_device())}")
        retrain_sidebar()
