"""Serving many visitors: the limits, training jobs, the model registry and uploads (no Streamlit here)."""
