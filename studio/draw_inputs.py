"""The Draw page's input beyond its widgets, kept for the session: the drawing and the upload survive leaving
the page (the widgets' own values are kept by state.kept), and the digits kept for comparison.

Streamlit drops a canvas's or an uploader's state when it is not rendered in a run (another page, or another
input mode); the copies live under KEPT_KEY, a plain key it leaves alone. The rule for the comparison list
is the pure function at the bottom.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from vae.server.limits import LIMITS

KEPT_KEY = "draw_kept"  # session state: dict of the drawing and the upload kept
COMPARED_KEY = "draw_compared"  # session state: list of digits kept for the comparison table, newest first
CANVAS_KEY = "draw_canvas"
UPLOAD_KEY = "draw_upload"
MAX_SHIFT = 8  # px, either way: the shift control's range
INPUT_KEY = "draw_input"  # the Input radio: "Draw", "Upload" or "Test digit"
# A link's query string that opens the page on a test digit (Home's Fig. 8 link), not on an empty canvas.
OPEN_ON_TEST_DIGIT = {"input": "test-digit"}


def open_as_linked() -> None:
    """Call before the Input radio is drawn: a link with OPEN_ON_TEST_DIGIT switches it to "Test digit", once (the
    parameter is taken out of the address, so a reload keeps what the visitor chose since)."""
    (name, value), = OPEN_ON_TEST_DIGIT.items()
    if st.query_params.get(name) == value:
        st.session_state[INPUT_KEY] = "Test digit"
        del st.query_params[name]


def _kept() -> dict:
    return st.session_state.setdefault(KEPT_KEY, {})


# --- the canvas --------------------------------------------------------------------------------

def canvas_start() -> dict | None:
    """The drawing the canvas starts from. When the canvas comes back (its state was dropped), the drawing
    kept; it stays the same while the canvas is shown, since a new one would reset the canvas's undo."""
    kept = _kept()
    if CANVAS_KEY not in st.session_state:
        kept["canvas_start"] = kept.get("drawing")
    return kept.get("canvas_start")


def keep_drawing(drawing: dict | None, digit: dict[bool, np.ndarray]) -> None:
    _kept().update(drawing=drawing, drawn_digit=digit)


def forget_drawing() -> None:
    for key in ("drawing", "drawn_digit"):
        _kept().pop(key, None)


def kept_drawing() -> dict[bool, np.ndarray] | None:
    """The digit of the kept drawing, centred (True) and not (False): what a restored canvas shows until it
    sends its pixels again."""
    return _kept().get("drawn_digit")


# --- the upload --------------------------------------------------------------------------------

def keep_upload(name: str, digit: dict[bool, np.ndarray]) -> None:
    _kept()["upload"] = (name, digit)


def kept_upload() -> tuple[str, dict[bool, np.ndarray]] | None:
    """(file name, prepared 28×28 centred and not) of the last good upload, shown when the uploader is empty after coming back."""
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

def shift_amount(value) -> int:
    """A shift slider's value as whole pixels within ±MAX_SHIFT: a forged value is clamped, a non-number is 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return int(min(max(round(value), -MAX_SHIFT), MAX_SHIFT))


def with_compared(rows: list[dict], row: dict, limit: int = LIMITS.compared_digits) -> list[dict]:
    """`row` (keys 'input', 'digit', 'model_path') first, then the others, at most `limit`; the same digit
    through the same model is listed once."""
    def same(other: dict) -> bool:
        return (other["input"], other["model_path"]) == (row["input"], row["model_path"]) and \
            np.array_equal(other["digit"], row["digit"])
    return ([row] + [other for other in rows if not same(other)])[:limit]
