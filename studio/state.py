"""What a visitor's session remembers: their space (token), the chosen model and threshold rule, and widget
values kept across pages. Session-state keys live here, so a page never spells one out twice."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from studio import caches
from vae.scores import DEFAULT_RULE, THRESHOLD_RULES, threshold
from vae.server import registry
from vae.server.traffic import address_key

VERDICT_SCORE_KEY = "verdict_score"  # the score the Draw verdict reads (vae.detector); default "guarded"
HISTOGRAM_SCORE_KEY = "histogram_score"  # the score the Error histograms count; default the report's error

DEFAULT_MODEL = "vae-z64.pt"
MODEL_KEY = "model_path"  # path (str) of the model chosen in the sidebar
MODEL_GONE_KEY = "model_gone"  # name of the chosen model that disappeared, to say so once
THRESHOLD_KEY = "threshold_rule"  # (rule, param) chosen on the histogram page
TOKEN_KEY = "visitor_token"  # this visitor's token (registry.new_token)
SPACE_PARAM = "space"  # the URL's query parameter that keeps the token across reloads
DRAWN_DIGIT_KEY = "current_digit"  # the 28×28 float array the Draw page last prepared (the Latent page's star)
KEPT_KEY = "kept_widget_values"  # widget key → the value the visitor last gave it (see kept)


def kept(key: str, default=None, options=None) -> str:
    """Call just before drawing the widget `key`, and give the widget no value of its own: it starts from
    the value the visitor last gave it — on this page, or before they left it — else from `default`.
    With `options`, a value that is not one of them (a forged message, a choice gone) becomes `default`.

    Streamlit drops a widget's value from session state when a run does not draw it (another page, another
    input mode). The copy kept here under a plain key survives that. Returns `key`, for `key=kept(...)`."""
    store = st.session_state.setdefault(KEPT_KEY, {})
    if key not in st.session_state:
        if key in store:
            st.session_state[key] = store[key]
        elif default is not None:
            st.session_state[key] = default
    if options is not None and st.session_state.get(key) not in list(options):
        st.session_state[key] = default
    if key in st.session_state:
        store[key] = st.session_state[key]
    return key


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


def visitor_address() -> str | None:
    """The address this visitor's connection counts under (traffic.address_key: an IPv6 client by its /64), or
    None on the server's own machine (Streamlit gives no address for 127.0.0.1 and ::1)."""
    ip = st.context.ip_address
    return None if ip is None else address_key(ip)


def selected_entry() -> registry.CheckpointEntry | None:
    """The model chosen in the sidebar (None if no usable checkpoint exists). If the chosen one has
    gone (deleted in another tab, or broken), the default takes its place and the sidebar says so."""
    entries = caches.usable_entries()
    by_path = {str(e.path): e for e in entries}
    chosen = st.session_state.get(MODEL_KEY)
    if chosen in by_path:
        return by_path[chosen]
    if isinstance(chosen, str):
        st.session_state[MODEL_GONE_KEY] = Path(chosen).name
    return next((e for e in entries if e.path.name == DEFAULT_MODEL), entries[0] if entries else None)


def select_model(path: str | Path) -> None:
    """Make `path` the selected model on every page (e.g. after training it)."""
    st.session_state[MODEL_KEY] = str(path)


def is_selected(path: str | Path) -> bool:
    return st.session_state.get(MODEL_KEY) == str(path)


def current_threshold_rule() -> tuple[str, float | None]:
    return st.session_state.get(THRESHOLD_KEY, DEFAULT_RULE)


def current_threshold(train_scores: np.ndarray) -> float:
    rule, param = current_threshold_rule()
    return threshold(train_scores, rule, param)


def threshold_description() -> str:
    rule, param = current_threshold_rule()
    if rule == "percentile":
        return f"{param:g}th percentile of training scores"
    if rule == "mean_k_sigma":
        return f"training mean + {param:g}·σ"
    return THRESHOLD_RULES[rule]
