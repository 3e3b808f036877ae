"""The script every visit runs (app.py serves it): the page set-up, the navigation, the sidebar, the page.

It lives here rather than beside pages/, where Streamlit would first run its older pages-folder mode.
"""
from pathlib import Path

import streamlit as st
import torch

from studio import navigation
from studio.sidebar import sidebar

# The tab's icon from this server: an emoji or a :material/…: icon is fetched from a CDN or font server by the
# browser, which fails offline and tells a third party who visits.
ICON = Path(__file__).resolve().with_name("icon.png")
st.set_page_config(page_title="Conv-VAE anomaly studio", page_icon=str(ICON), layout="wide")
page = st.navigation(navigation.pages())

# One image at a time is what the pages mostly compute: one thread answers in ~2 ms, while two
# threads contending with training jobs or other work took 100+ ms per call on a 2-core machine.
torch.set_num_threads(1)

sidebar()
page.run()
