"""Latent space (report Fig. 4/5): where the AE and the VAE of one latent size put the test digits."""
from functools import partial

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from studio import common
from studio.latent_text import compare_cluster_scores, selection_to_rows
from vae.data import default_data_root
from vae.display import upscale
from vae.latent import (
    KNN_K,
    SILHOUETTE_SAMPLE,
    TSNE_SAMPLE,
    embed_digit,
    grid_extent,
    latent_grid,
    project,
    reconstruct_rows,
    tile,
)

common.run_through_app()  # first: a fresh server may have run this page without app.py

LATENT_SIZES = (2, 3, 64)
KINDS = ("ae", "vae")
DIGIT_COLOURS = plotly.colors.qualitative.D3  # ten fixed colours, digit d → DIGIT_COLOURS[d]
SIZE_KEY = "latent_size"
VIEW_KEY = "latent_view"
TSNE_SIZE_KEY = "latent_tsne_sample"
INDEX_KEY = "latent_index"
PICKED_KEY = "latent_picked_rows"  # session state: test-set rows picked in a chart or by number
MAX_SHOWN = 8  # picked digits drawn with their reconstructions
GRID_STEPS = 20

# View name → (dimensions, projection method, can points be selected in it?)
VIEWS = {
    2: {"2-D (z₁, z₂)": (2, "identity", True)},
    3: {"3-D (drag to rotate)": (3, "identity", False),
        "2-D: z₁ vs z₂ (select points)": (2, "identity", True)},
    64: {"PCA 2-D (select points)": (2, "pca", True),
         "PCA 3-D (drag to rotate)": (3, "pca", False),
         "t-SNE 2-D on a subsample (slow)": (2, "tsne", True)},
}


@st.cache_resource(show_spinner="Projecting…", max_entries=24)
def get_projection(path: str, mtime: float, root: str, dims: int, method: str, sample_size: int):
    return project(common.get_embeddings(path, mtime, root), dims, method, sample_size=sample_size)


@st.cache_data(show_spinner="Decoding the latent plane…", max_entries=12)
def get_latent_grid(path: str, mtime: float, root: str) -> tuple[np.ndarray, tuple]:
    model, _ = common.get_model(path, mtime)
    extent = grid_extent(common.get_embeddings(path, mtime, root))
    return latent_grid(model, extent, GRID_STEPS), extent


def cache_args(entry) -> tuple:
    return str(entry.path), entry.mtime, default_data_root()


def axis_titles(projection, dims: int) -> list[str]:
    if projection.method == "pca":
        return [f"PC{i + 1} ({100 * r:.0f}% of variance)" for i, r in enumerate(projection.explained_variance_ratio)]
    if projection.method == "tsne":
        return [f"t-SNE {i + 1}" for i in range(dims)]
    return [f"z{'₁₂₃'[i]}" for i in range(dims)]


def scatter_figure(projection, labels: np.ndarray, drawn_xy: np.ndarray | None) -> go.Figure:
    """One trace per digit (customdata = test-set row, for selections), plus a star for the drawn digit."""
    dims = projection.dims
    fig = go.Figure()
    point_labels = labels[projection.rows]
    for digit in range(10):
        in_digit = point_labels == digit
        xyz = projection.coords[in_digit]
        marker = dict(color=DIGIT_COLOURS[digit], size=2 if dims == 3 else 4, opacity=0.7)
        common_args = dict(name=str(digit), mode="markers", marker=marker, customdata=projection.rows[in_digit],
                           hovertemplate=f"digit {digit} · test #%{{customdata}}<extra></extra>")
        if dims == 3:
            fig.add_trace(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], **common_args))
        else:
            fig.add_trace(go.Scattergl(x=xyz[:, 0], y=xyz[:, 1], **common_args))
    if drawn_xy is not None:
        star = dict(name="your digit", mode="markers", hovertemplate="your digit (Draw page)<extra></extra>")
        label = dict(text="your digit", showarrow=True, arrowhead=0, ax=0, ay=-30, font=dict(size=13),
                     bgcolor="rgba(255,255,255,0.8)")
        if dims == 3:  # 3-D scatter has no star symbol
            fig.add_trace(go.Scatter3d(x=drawn_xy[:, 0], y=drawn_xy[:, 1], z=drawn_xy[:, 2], **star,
                                       marker=dict(symbol="diamond", size=9, color="black",
                                                   line=dict(color="white", width=2))))
            fig.update_layout(scene_annotations=[dict(x=drawn_xy[0, 0], y=drawn_xy[0, 1], z=drawn_xy[0, 2], **label)])
        else:
            # WebGL like the digits (an SVG trace would be drawn under their canvas), and never dimmed by a selection.
            fig.add_trace(go.Scattergl(x=drawn_xy[:, 0], y=drawn_xy[:, 1], **star,
                                       marker=dict(symbol="star", size=22, color="black",
                                                   line=dict(color="white", width=2)),
                                       unselected=dict(marker=dict(opacity=1.0))))
            fig.add_annotation(x=drawn_xy[0, 0], y=drawn_xy[0, 1], **label)
    titles = axis_titles(projection, dims)
    fig.update_layout(height=520, margin=dict(l=0, r=0, t=10, b=0), legend=dict(title="digit", itemsizing="constant"))
    if dims == 3:
        fig.update_layout(scene=dict(xaxis_title=titles[0], yaxis_title=titles[1], zaxis_title=titles[2],
                                     camera=dict(eye=dict(x=1.6, y=1.6, z=1.1))))  # default clips the corners
    else:
        fig.update_layout(xaxis_title=titles[0], yaxis_title=titles[1], yaxis=dict(scaleanchor="x"))
    return fig


def remember_selection(chart_key: str) -> None:
    rows = selection_to_rows(st.session_state.get(chart_key))
    if rows:
        st.session_state[PICKED_KEY] = rows
        st.session_state[INDEX_KEY] = rows[0]  # the number box shows the (first) picked digit too


def remember_index() -> None:
    st.session_state[PICKED_KEY] = [int(st.session_state[INDEX_KEY])]


def model_column(kind: str, latent: int, view: str, labels: np.ndarray, drawn: np.ndarray | None, tsne_sample: int):
    """One model's scatter plot (or why there is none)."""
    entry = common.find_entry(kind, latent)
    st.subheader(f"{kind.upper()} · latent {latent}")
    if entry is None:
        st.warning(f"No usable {kind.upper()} checkpoint with latent size {latent}. "
                   f"Train one: `python -m vae train --model {kind} --latent {latent}`.")
        return None
    dims, method, selectable = VIEWS[latent][view]
    args = cache_args(entry)
    if method == "tsne":
        with st.spinner(f"t-SNE on {tsne_sample:,} test digits (this takes a while, once per model)…"):
            projection = get_projection(*args, dims, method, tsne_sample)
    else:
        projection = get_projection(*args, dims, method, TSNE_SAMPLE)
    drawn_xy = None
    if drawn is not None:
        model, _ = common.model_for(entry)
        drawn_xy = projection.place(embed_digit(model, drawn))
    st.caption(entry.label)
    fig = scatter_figure(projection, labels, drawn_xy)
    chart_key = f"latent_chart_{kind}_{latent}_{view}"
    if selectable:
        st.plotly_chart(fig, key=chart_key, on_select=partial(remember_selection, chart_key),
                        selection_mode=("points", "box", "lasso"))
    else:
        st.plotly_chart(fig, key=chart_key)
    return entry


def picked_digits(rows: list[int], entries: dict, latent: int) -> None:
    """The picked test digits, each above its reconstructions by both models."""
    d = common.data()
    labels = d.test_labels.numpy()
    shown = rows[:MAX_SHOWN]
    counts = np.bincount(labels[rows], minlength=10)
    mix = ", ".join(f"{digit}: {n}" for digit, n in enumerate(counts) if n)
    stacks, names = [d.test_images[shown, 0].numpy() / 255.0], ["input"]
    for kind, entry in entries.items():
        if entry is not None:
            model, _ = common.model_for(entry)
            stacks.append(reconstruct_rows(model, d.test_images, shown))
            names.append(f"{kind.upper()} z={latent}")
    if len(rows) == 1:
        heading = f"**Test digit #{rows[0]}**, labelled **{labels[rows[0]]}**"
    else:
        heading = f"**{len(rows):,} test digits selected** (by label: {mix}); the first {len(shown)} shown"
    st.markdown(f"{heading}. Top to bottom: {', '.join(names)}.")
    for row, i, column in zip(shown, range(len(shown)), st.columns(MAX_SHOWN)):
        column.image(upscale(tile(np.stack([s[i] for s in stacks]), columns=1, gap=1), 3), clamp=True,
                     caption=f"#{row} · {labels[row]}")


def score_table(entries: dict) -> None:
    scores = {kind: common.get_cluster_scores(*cache_args(e)) for kind, e in entries.items() if e is not None}
    if not scores:
        return
    st.subheader("How well the digits separate")
    st.table({
        "model": [kind.upper() for kind in scores],
        f"k-NN accuracy (k={KNN_K})": [f"{s['knn_accuracy']:.1%}" for s in scores.values()],
        "silhouette": [f"{s['silhouette']:.3f}" for s in scores.values()],
        "cluster size ratio": [f"{s['size_ratio']:.2f}" for s in scores.values()],
    })
    st.caption(
        f"Computed on the full latent vectors of all test digits, not on the 2-D/3-D view. "
        f"**k-NN accuracy**: each digit is labelled by the majority of its {KNN_K} nearest other test digits "
        f"(leave-one-out). **Silhouette** by digit label (−1 to 1, higher = tighter and better separated), on a "
        f"seeded sample of {SILHOUETTE_SAMPLE:,}. **Cluster size ratio**: largest over smallest digit-cluster "
        f"radius (1 = all the same size).")
    if len(scores) == 2:
        st.markdown(compare_cluster_scores(scores["ae"], scores["vae"]))


st.title("Latent space")
st.markdown("Where the encoder puts each test digit (report Fig. 4 for the AE, Fig. 5 for the VAE). The report: "
            "the VAE's clusters are tighter, closer in size, and fill the gaps the AE leaves between them.")

try:
    data = common.data()
except Exception as exc:  # DataUnavailable
    st.error(f"No data to embed: {exc}")
    st.stop()
labels = data.test_labels.numpy()

selected = common.selected_entry()
if SIZE_KEY not in st.session_state:
    sidebar_latent = selected.metadata["latent_dim"] if selected is not None else None
    st.session_state[SIZE_KEY] = sidebar_latent if sidebar_latent in LATENT_SIZES else 64
controls = st.columns([1, 2, 1])
latent = common.offered(controls[0].radio("Latent size", LATENT_SIZES, key=SIZE_KEY, horizontal=True,
                                         help="AE and VAE of the same latent size, side by side."), LATENT_SIZES)
view = common.offered(controls[1].radio("View", list(VIEWS[latent]), key=f"{VIEW_KEY}_{latent}", horizontal=True),
                      VIEWS[latent])
tsne_sample = TSNE_SAMPLE
if VIEWS[latent][view][1] == "tsne":
    st.session_state.setdefault(TSNE_SIZE_KEY, TSNE_SAMPLE)
    tsne_sample = controls[2].select_slider("t-SNE sample", [500, 1000, 2000, 3000, 5000], key=TSNE_SIZE_KEY,
                                            help="Random test digits (seeded) t-SNE runs on.")

drawn = st.session_state.get(common.DRAWN_DIGIT_KEY)
selectable = VIEWS[latent][view][2]
notes = [f"{len(labels):,} test digits ({data.source_label}), coloured by their label."]
if selectable:
    notes.append("Click a point, or drag a box or lasso, to see those digits and their reconstructions below.")
else:
    notes.append("Streamlit cannot select points in a 3-D plot: pick a digit with the 2-D view or by number below.")
if drawn is not None:
    notes.append("★ is your digit from the Draw page (◆ in 3-D), embedded by each model and placed with the same "
                 "projection"
                 + (" (t-SNE cannot place new points: it sits at its nearest neighbour's spot)."
                    if VIEWS[latent][view][1] == "tsne" else "."))
else:
    notes.append("Draw a digit on the Draw page to see where it lands here.")
st.caption(" ".join(notes))

entries = {}
for kind, column in zip(KINDS, st.columns(2)):
    with column:
        entries[kind] = model_column(kind, latent, view, labels, drawn, tsne_sample)

if any(entries.values()):
    st.subheader("Picked digits")
    st.columns(3)[0].number_input(f"Test digit by number (0–{len(labels) - 1:,})", 0, len(labels) - 1,
                                  key=INDEX_KEY, on_change=remember_index)
    rows = [r for r in st.session_state.get(PICKED_KEY, [0]) if r < len(labels)] or [0]
    picked_digits(rows, entries, latent)
    score_table(entries)

if latent == 2 and any(entries.values()):
    st.subheader("The latent plane, decoded")
    st.caption(f"A {GRID_STEPS}×{GRID_STEPS} grid over each model's latent plane (1st to 99th percentile of its "
               "test embeddings), decoded. Laid out like the plot above: z₁ to the right, z₂ upward. Where the "
               "AE's plot has empty gaps its decoder never trained; the VAE's prior pulls its codes together.")
    for (kind, entry), column in zip(entries.items(), st.columns(2)):
        if entry is not None:
            image, ((x0, x1), (y0, y1)) = get_latent_grid(*cache_args(entry))
            column.image(image, clamp=True, width="stretch",
                         caption=f"{kind.upper()}: z₁ from {x0:.2f} to {x1:.2f}, z₂ from {y0:.2f} to {y1:.2f}")
