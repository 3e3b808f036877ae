"""Conv-VAE anomaly studio: `streamlit run app.py`."""
import streamlit as st

from pages.common import sidebar

st.set_page_config(page_title="Conv-VAE anomaly studio", page_icon="🔍", layout="wide")

navigation = st.navigation([
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/draw.py", title="Draw & correct", icon="✏️"),
    st.Page("pages/latent.py", title="Latent space", icon="🌌"),
    st.Page("pages/histograms.py", title="Error histograms", icon="📊"),
])
sidebar()
navigation.run()
