"""Leaving Streamlit's legacy pages-folder mode, whichever script it ran first.

Streamlit takes a folder named pages/ beside app.py for its old automatic multipage mode until
st.navigation first runs. In that mode a fresh server's first visitors get a page script alone
(without app.py's sidebar and navigation), or app.py as a page of that old navigation. Whichever
script runs so, it switches the mode off for the whole server and starts its run again, now through
app.py and its st.navigation. Visitors arriving together may all have started in that mode before the
first one switched it off, so each session is asked too (did app.py run in it?). Kept free of heavy
imports: app.py asks before it imports PyTorch. A function, never import-time code: a rerun raised
while a module is being imported would break that import for every session importing it at once.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

APP_RAN_KEY = "ran_through_app"  # session state: app.py has run in this session (st.navigation is in charge)


def restart_if_legacy() -> None:
    """For app.py, first thing: run again if the legacy mode ran it as one of its pages in a session
    that app.py has not run in yet. (Later runs need not: app.py's st.navigation takes over then, and
    a rerun would drop the button press that started the run; AppTest is in that mode on every run.)"""
    if PagesManager.uses_pages_directory and not st.session_state.get(APP_RAN_KEY):
        _restart()


def mark_app_run() -> None:
    """For app.py, before any page runs."""
    st.session_state[APP_RAN_KEY] = True


def run_through_app() -> None:
    """For every page script, first thing: run again, through app.py, if app.py did not run this page."""
    if PagesManager.uses_pages_directory or not st.session_state.get(APP_RAN_KEY):
        _restart()


def _restart() -> None:
    PagesManager.uses_pages_directory = False
    st.rerun()
