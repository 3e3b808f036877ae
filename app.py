"""Conv-VAE anomaly studio: `streamlit run app.py`."""
import sys

import streamlit as st

from studio import pages_mode

pages_mode.restart_if_legacy()  # a fresh server's legacy pages-folder mode may have run this as a page
st.set_page_config(page_title="Conv-VAE anomaly studio", page_icon=":material/search:", layout="wide")

# Before PyTorch loads, so a first visitor sees the app's own pages in the sidebar at once.
navigation = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/draw.py", title="Draw & correct", icon=":material/draw:"),
    st.Page("pages/latent.py", title="Latent space", icon=":material/scatter_plot:"),
    st.Page("pages/histograms.py", title="Error histograms", icon=":material/bar_chart:"),
    st.Page("pages/benchmark.py", title="Detection benchmark", icon=":material/fact_check:"),
])

# The first visit to a fresh server spends seconds importing PyTorch: say so instead of a blank page.
starting = st.empty()
if "torch" not in sys.modules:
    starting.caption("Starting the studio: loading PyTorch and the models…")

import torch  # noqa: E402

from studio.common import sidebar  # noqa: E402

pages_mode.mark_app_run()  # before any page runs: the pages check it (pages_mode.run_through_app)

# One image at a time is what the pages mostly compute: one thread answers in ~2 ms, while two
# threads contending with training jobs or other work took 100+ ms per call on a 2-core machine.
torch.set_num_threads(1)
starting.empty()

sidebar()
navigation.run()
