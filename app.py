"""Conv-VAE anomaly studio: `streamlit run app.py`.

The server runs studio/main.py for every visit (the navigation over pages/ and the sidebar). Importing
PyTorch, the models' code and the plotting libraries takes seconds on a small machine: it happens here,
once, while the server starts, instead of on the first visitor's watch.

Every browser connection passes through studio/guard.py, which keeps one visitor's flood of reruns and
messages from slowing anyone else (the limits are in vae/server/limits.py).
"""
import asyncio
from contextlib import asynccontextmanager

import streamlit as st
from starlette.middleware import Middleware

from studio.guard import WebsocketGuard
from vae.server.memory import return_big_blocks_to_the_os


def import_what_the_pages_use() -> None:
    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import sklearn.manifold  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import streamlit_drawable_canvas  # noqa: F401
    import torch._dynamo  # noqa: F401  (torch.optim imports it on first use, ~3 s: the Draw page's fitted spots)
    import torchvision.utils  # noqa: F401  (the digit tiles, vae.latent.tile)

    import studio.sidebar  # noqa: F401  (PyTorch and the vae package)


@asynccontextmanager
async def load_before_serving(_app):
    return_big_blocks_to_the_os()  # a burst of uploads or big values leaves no resident memory behind
    await asyncio.to_thread(import_what_the_pages_use)
    yield


app = st.App("studio/main.py", lifespan=load_before_serving, middleware=[Middleware(WebsocketGuard)])
