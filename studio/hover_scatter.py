"""A 2-D scatter of test digits that shows the digit itself under the mouse (as the Embedding Projector does).

Plotly's hover box holds text only, so this one is drawn on a canvas by a small Streamlit component: the
points, their colours, and one PNG sheet of all their 28×28 images, from which the hovered digit is shown.
"""
from __future__ import annotations

import base64

import numpy as np
import streamlit as st

from studio.display import png_bytes, tile

SHEET_COLUMNS = 50  # digits per row of the image sheet
ZOOM = 3  # a hovered digit is shown at 84×84 px
HEIGHT = 420  # px

HTML = ('<div class="hover-scatter"><canvas></canvas>'
        '<div class="tip"><div class="digit"></div><div class="text"></div></div></div>')
CSS = """
.hover-scatter { position: relative; width: 100%; }
.hover-scatter canvas { display: block; cursor: crosshair; }
.tip { position: absolute; display: none; pointer-events: none; background: white; border: 1px solid #999;
       border-radius: 4px; padding: 4px; font: 12px sans-serif; color: #222; box-shadow: 0 1px 4px rgba(0,0,0,.3); }
.digit { background-repeat: no-repeat; image-rendering: pixelated; }
"""
JS = """
export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".hover-scatter");
  const canvas = root.querySelector("canvas");
  const tip = root.querySelector(".tip"), digit = tip.querySelector(".digit"), text = tip.querySelector(".text");
  const { x, y, labels, rows, colours, sheet, columns, cell, zoom, height } = data;
  const width = root.getBoundingClientRect().width || 600, ratio = window.devicePixelRatio || 1, pad = 12;
  canvas.width = width * ratio; canvas.height = height * ratio;
  canvas.style.width = width + "px"; canvas.style.height = height + "px";
  // Equal scales on both axes, as the Plotly view keeps them.
  const [x0, x1, y0, y1] = [Math.min(...x), Math.max(...x), Math.min(...y), Math.max(...y)];
  const scale = Math.min((width - 2 * pad) / ((x1 - x0) || 1), (height - 2 * pad) / ((y1 - y0) || 1));
  const left = (width - (x1 - x0) * scale) / 2, bottom = (height + (y1 - y0) * scale) / 2;
  const px = x.map((v) => left + (v - x0) * scale), py = y.map((v) => bottom - (v - y0) * scale);
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  px.forEach((_, i) => {
    context.fillStyle = colours[labels[i]];
    context.beginPath(); context.arc(px[i], py[i], 2.5, 0, 2 * Math.PI); context.fill();
  });
  canvas.pointsOnScreen = px.map((v, i) => [v, py[i]]);  // for the browser test: where to hover
  digit.style.width = digit.style.height = cell * zoom + "px";
  digit.style.backgroundImage = `url(${sheet})`;
  digit.style.backgroundSize = `${columns * cell * zoom}px auto`;
  canvas.onmousemove = (event) => {
    const box = canvas.getBoundingClientRect(), mx = event.clientX - box.left, my = event.clientY - box.top;
    let nearest = -1, best = 12 * 12;  // within 12 px
    px.forEach((_, i) => {
      const d = (px[i] - mx) ** 2 + (py[i] - my) ** 2;
      if (d < best) { best = d; nearest = i; }
    });
    if (nearest < 0) { tip.style.display = "none"; return; }
    const column = nearest % columns, row = Math.floor(nearest / columns);
    digit.style.backgroundPosition = `-${column * cell * zoom}px -${row * cell * zoom}px`;
    text.textContent = `digit ${labels[nearest]} · test #${rows[nearest]}`;
    tip.style.left = Math.min(mx + 14, width - cell * zoom - 20) + "px";
    tip.style.top = Math.max(my - cell * zoom - 30, 0) + "px";
    tip.style.display = "block";
  };
  canvas.onmouseleave = () => { tip.style.display = "none"; };
}
"""

_component = st.components.v2.component("latent_hover_scatter", html=HTML, css=CSS, js=JS)


@st.cache_data(max_entries=4, show_spinner=False)
def sheet_url(images: np.ndarray) -> str:
    """(N, 28, 28) uint8 digits → one PNG of SHEET_COLUMNS per row, as a data URL. Cached: the AE's and the VAE's
    views show the same sample, and every rerun with the view on would build it again (~0.25 s)."""
    sheet = tile(images.astype(np.float32) / 255.0, columns=SHEET_COLUMNS)
    return "data:image/png;base64," + base64.b64encode(png_bytes(np.rint(sheet * 255))).decode("ascii")


def hover_scatter(xy: np.ndarray, labels: np.ndarray, rows: np.ndarray, images: np.ndarray, colours: list[str],
                  key: str) -> None:
    """Points `xy` (N, 2) of test digits `rows`, coloured by `labels`; `images` (N, 28, 28) uint8 are what
    the mouse shows."""
    _component(key=key, height=HEIGHT, data={
        "x": np.asarray(xy)[:, 0].tolist(), "y": np.asarray(xy)[:, 1].tolist(), "labels": np.asarray(labels).tolist(),
        "rows": np.asarray(rows).tolist(), "colours": colours, "sheet": sheet_url(np.asarray(images)), "columns": SHEET_COLUMNS,
        "cell": 28, "zoom": ZOOM, "height": HEIGHT})
