"""A Plotly figure that stays the same chart across reruns: the camera a visitor turned, the drag mode they
picked (box or lasso), the digits they hid in the legend and the selection they drew all stay when the page
sends a changed figure.

st.plotly_chart cannot do that: its element's identity includes the figure, so a changed figure is a new chart
in the browser, drawn from scratch (the camera jumped back to its default eye whenever a digit was hidden).
This Streamlit component keeps one Plotly graph per key and hands each new figure to Plotly.react, which keeps
what the visitor changed as long as the figure's `uirevision` stays the same. Plotly.js itself comes from the
plotly package's own copy, served by Streamlit as a static folder (no network, nothing copied into the repo).

Several views of one chart (a 3-D scene and a 2-D plot of the same points) can share a key as `slot`s: the
views drawn before are hidden, not destroyed, so switching back to one shows it at once, camera and all (a 3-D
scene takes about a second to set up in a browser without a GPU). A figure the browser has already drawn is not
drawn again.

Selections and clicks come back as st.plotly_chart's do: {"selection": {"points": [{"customdata": …}, …]}},
so studio.latent_text.selection_to_rows reads both.
"""
from __future__ import annotations

import hashlib
import os

import plotly
import plotly.io.json
import streamlit as st

PLOTLY_FOLDER = os.path.join(os.path.dirname(plotly.__file__), "package_data")  # holds plotly.min.js
_plotly_js = st.components.v1.declare_component("plotly_js", path=PLOTLY_FOLDER)

JS = """
function loadPlotly(url) {
  if (!window.__studioPlotly) {
    window.__studioPlotly = new Promise((resolve, reject) => {
      if (window.Plotly) { resolve(window.Plotly); return; }
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => resolve(window.Plotly);
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }
  return window.__studioPlotly;
}

// The width/height of a 3-D plot area at which its scene's cube, seen from the figure's camera, just fits: in a
// narrower one (two plots side by side in a 1024-px window) the cube and its axis titles were cut at the sides.
const FIT_ASPECT = 1.1;

// A 3-D figure's camera, moved back so that its cube fits the graph's width. How far is fixed on the graph's
// first draw (its width, the figure's height less its margins) and kept: every later figure then carries the
// same camera, and Plotly keeps the one the visitor turned (uirevision). Moving the camera after drawing
// (relayout) made Plotly forget the visitor's turn at the next figure.
function fitSceneToWidth(graph, layout) {
  const eye = layout.scene && layout.scene.camera && layout.scene.camera.eye;
  if (!eye) return;
  if (graph.dataset.shrink === undefined) {
    if (graph.clientWidth < 50) return;  // not laid out yet: drawn as the figure says
    const margin = layout.margin || {};
    const height = (layout.height || 450) - (margin.t ?? 100) - (margin.b ?? 80);
    graph.dataset.shrink = String(Math.max(1, FIT_ASPECT * height / graph.clientWidth));
  }
  const shrink = Number(graph.dataset.shrink);
  layout.scene.camera.eye = { x: eye.x * shrink, y: eye.y * shrink, z: eye.z * shrink };
}

function rowsOf(points) {
  return (points || []).filter((p) => p.customdata !== undefined && p.customdata !== null)
    .map((p) => ({ customdata: Array.isArray(p.customdata) ? p.customdata[0] : p.customdata,
                   curve_number: p.curveNumber, point_index: p.pointIndex, x: p.x, y: p.y }));
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const slot = String(data.slot || "");
  let graph = Array.from(parentElement.querySelectorAll(".studio-plot")).find((g) => g.dataset.slot === slot);
  if (!graph) {
    graph = document.createElement("div");
    graph.className = "studio-plot";
    graph.dataset.slot = slot;
    graph.style.width = "100%";
    parentElement.appendChild(graph);
  }
  const wasHidden = graph.style.display === "none";
  for (const other of parentElement.querySelectorAll(".studio-plot")) {
    other.style.display = other === graph ? "" : "none";
  }
  loadPlotly(data.plotly_url).then((Plotly) => {
    if (graph.dataset.revision === data.revision) {  // drawn already: at most its size changed while hidden
      if (wasHidden) Plotly.Plots.resize(graph).catch(() => {});
      return;
    }
    const figure = JSON.parse(data.figure);
    const first = !graph._fullLayout;
    const config = Object.assign({ displaylogo: false, responsive: true }, data.config || {});
    fitSceneToWidth(graph, figure.layout);
    Plotly.react(graph, figure.data, figure.layout, config).then(() => {
      graph.dataset.revision = data.revision;  // for tests and the timing script: this figure is drawn
    });
    if (first) {
      graph.on("plotly_selected", (event) => {
        if (!event) return;
        setTriggerValue("selection", { selection: { points: rowsOf(event.points) } });
      });
      graph.on("plotly_click", (event) => {
        if (!event || !event.points || !event.points.length) return;
        setTriggerValue("click", { selection: { points: rowsOf(event.points.slice(0, 1)) } });
      });
    }
  });
  // Gone from the page (another page, another latent size): Plotly's window listeners would keep every graph,
  // its data and its WebGL context alive, about 17 MB a visit of the Latent page.
  return () => setTimeout(() => {
    if (parentElement.isConnected || !window.Plotly) return;
    for (const gone of parentElement.querySelectorAll(".studio-plot")) window.Plotly.purge(gone);
  }, 0);
}
"""

_component = st.components.v2.component("studio_plotly_view", js=JS, isolate_styles=False)


def figure_json(figure) -> str:
    """The figure as Plotly.js reads it (numpy arrays as typed arrays), each trace's `uid` kept: plotly.py drops
    it, and Plotly.react follows a trace's legend state (shown or hidden) by its uid."""
    spec = figure.to_dict()
    for trace, source in zip(spec["data"], figure.data):
        if source.uid is not None:
            trace["uid"] = source.uid
    return plotly.io.json.to_json_plotly(spec)


def plotly_js_url() -> str:
    base = st.get_option("server.baseUrlPath").strip("/")
    return f"{'/' + base if base else ''}/component/{_plotly_js.name}/plotly.min.js"


def plotly_view(figure, key: str, height: int, config: dict | None = None, on_select=None, on_click=None,
                slot: str = ""):
    """Draw `figure` (a plotly Figure) under `key`, as its view `slot` (the key's other slots stay in the browser,
    hidden). `on_select` / `on_click` are called with the event (a dict like st.plotly_chart's selection) when the
    visitor selects or clicks points. The browser writes the figure's revision (a hash of it) on the graph once it
    is drawn, for tests and timings to wait for."""
    def call(callback, name):
        # A message carrying the event but not the chart's own state (a browser sends both; a forged one need
        # not) leaves no state under `key`: then there is no event to read, rather than a KeyError on the page.
        return None if callback is None else (lambda: callback(getattr(st.session_state.get(key), name, None)))

    spec = figure_json(figure)
    revision = hashlib.sha1(spec.encode()).hexdigest()[:12]
    return _component(key=key, height=height, data={
        "figure": spec, "plotly_url": plotly_js_url(), "config": config or {}, "revision": revision, "slot": slot},
        on_selection_change=call(on_select, "selection") or (lambda: None),
        on_click_change=call(on_click, "click") or (lambda: None))
