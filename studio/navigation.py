"""The app's pages, in the sidebar's order: one place for their files, titles and icons."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

MAIN_SCRIPT = str(Path(__file__).resolve().with_name("main.py"))  # what app.py serves, and what AppTests run
PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
PAGES = {  # name → (title, icon); the script is pages/<name>.py, and the first page is the default
    "home": ("Home", ":material/home:"),
    "draw": ("Draw & correct", ":material/draw:"),
    "latent": ("Latent space", ":material/scatter_plot:"),
    "histograms": ("Error histograms", ":material/bar_chart:"),
    "benchmark": ("Detection benchmark", ":material/fact_check:"),
}


def page_file(name: str) -> str:
    """The page's script as an absolute path, as st.Page, st.page_link and AppTest.switch_page all take it
    (the main script, studio/main.py, is not beside pages/)."""
    if name not in PAGES:
        raise ValueError(f"no page {name!r}; the pages are {', '.join(PAGES)}")
    return str(PAGES_DIR / f"{name}.py")


def pages() -> list[st.Page]:
    return [st.Page(page_file(name), title=title, icon=icon, default=i == 0)
            for i, (name, (title, icon)) in enumerate(PAGES.items())]
