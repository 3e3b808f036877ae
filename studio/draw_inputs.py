"""The Draw page's input, kept for the session: mode, drawing or upload, test index, flaw, flaw seed and
correction level survive leaving the page, so a user can come back to the same digit.

Streamlit drops a widget's value from session state when the widget is not rendered in a run (another
page, or another input mode). Copies live under KEPT_KEY, a plain key it leaves alone, and go back in
as the widgets' values when the widgets are shown again. Streamlit glue; the rules are the pure
functions at the bottom.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from vae.server.limits import LIMITS

KEPT_KEY = "draw_kept"  # session state: dict of copies of the inputs (widget key → value, and the extras below)
COMPARED_KEY = "draw_compared"  # session state: list of digits kept for the comparison table, newest first
CANVAS_KEY = "draw_canvas"
UPLOAD_KEY = "draw_upload"
WIDGET_KEYS = ("draw_input", "draw_test_index", "draw_flaw", "draw_flaw_seed", "draw_level", "draw_spot_mode")


def _kept() -> dict:
    return st.session_state.setdefault(KEPT_KEY, {})


def restore_widgets() -> None:
    """First in the page's run: give back to every widget that lost its value the copy kept of it."""
    for key, value in to_restore(_kept(), st.session_state).items():
        st.session_state[key] = value


def keep_widgets() -> None:
    """Last in the page's run: copy the widgets' values."""
    _kept().update({key: st.session_state[key] for key in WIDGET_KEYS if key in st.session_state})


# --- the canvas --------------------------------------------------------------------------------

def canvas_start() -> dict | None:
    """The drawing the canvas starts from. When the canvas comes back (its state was dropped), the drawing
    kept; it stays the same while the canvas is shown, since a new one would reset the canvas's undo."""
    kept = _kept()
    if CANVAS_KEY not in st.session_state:
        kept["canvas_start"] = kept.get("drawing")
    return kept.get("canvas_start")


def keep_drawing(drawing: dict | None, digit: np.ndarray) -> None:
    _kept().update(drawing=drawing, drawn_digit=digit)


def forget_drawing() -> None:
    for key in ("drawing", "drawn_digit"):
        _kept().pop(key, None)


def kept_drawing() -> np.ndarray | None:
    """The digit of the kept drawing: what a restored canvas shows until it sends its pixels again."""
    return _kept().get("drawn_digit")


# --- the upload --------------------------------------------------------------------------------

def keep_upload(name: str, digit: np.ndarray) -> None:
    _kept()["upload"] = (name, digit)


def kept_upload() -> tuple[str, np.ndarray] | None:
    """(file name, prepared 28×28) of the last good upload, shown when the uploader is empty after coming back."""
    return _kept().get("upload")


def upload_changed() -> None:
    """The uploader's on_change: its file removed by the user (not merely dropped by Streamlit), forget it."""
    if st.session_state.get(UPLOAD_KEY) is None:
        _kept().pop("upload", None)


# --- digits kept for comparison ----------------------------------------------------------------

def compared() -> list[dict]:
    return st.session_state.get(COMPARED_KEY, [])


def compare(row: dict) -> None:
    st.session_state[COMPARED_KEY] = with_compared(compared(), row)


def clear_compared() -> None:
    st.session_state[COMPARED_KEY] = []


# --- the rules, pure -----------------------------------------------------------------------------

def to_restore(kept: dict, present) -> dict:
    """The kept widget values whose widgets have no value now (keys not in `present`)."""
    return {key: kept[key] for key in WIDGET_KEYS if key in kept and key not in present}


def with_compared(rows: list[dict], row: dict, limit: int = LIMITS.compared_digits) -> list[dict]:
    """`row` (keys 'input', 'digit', 'model_path') first, then the others, at most `limit`; the same digit
    through the same model is listed once."""
    def same(other: dict) -> bool:
        return (other["input"], other["model_path"]) == (row["input"], row["model_path"]) and \
            np.array_equal(other["digit"], row["digit"])
    return ([row] + [other for other in rows if not same(other)])[:limit]
