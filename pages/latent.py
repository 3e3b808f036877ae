"""Latent space (report Fig. 4/5): where the AE and the VAE of one latent size put the test digits, and what
their decoders make of points in that space.

Laid out in fragments, so that a control reruns only what it changes: the plots with their controls, the picked
digits and the sliders are one; the decoded grid another; the prior samples a third. A changed latent size,
model or path reruns the page."""
from __future__ import annotations

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from studio import caches, state
from studio.display import thumbnail_url, tile, upscale
from studio.hover_scatter import hover_scatter
from studio.latent_text import (
    code_text,
    compare_cluster_scores,
    default_pair,
    hover_points,
    models_of_size,
    neighbour_caption,
    positions_in,
    sample_selection,
    selection_summary,
    selection_to_rows,
    shown_digits,
)
from studio.plotly_view import plotly_view
from studio.retrain import train_one_hint
from vae.background import Background
from vae.data import default_data_root
from vae.generate import (
    NoPrior,
    decode_grid,
    decode_point,
    decode_slice,
    grid_codes,
    interpolate,
    latent_ranges,
    posterior_of,
    sample_prior,
)
from vae.latent import (
    KNN_K,
    SILHOUETTE_SAMPLE,
    TSNE_SAMPLE,
    Projection,
    ellipse,
    embed_digit,
    nearest_neighbours,
    reconstruct_rows,
    reduce,
)
from vae.precomputed import load_projection

LATENT_SIZES = (2, 3, 64)
OPENING_SIZE = 3  # the report's figures: latent 3, seen in 3-D
KINDS = ("ae", "vae")
DIGIT_COLOURS = plotly.colors.qualitative.D3  # ten fixed colours, digit d → DIGIT_COLOURS[d]
SIZE_KEY = "latent_size"
FOLLOWED_KEY = "latent_followed_model"  # the sidebar model this page last followed
VIEW_KEY = "latent_view"
PAIR_KEY = "latent_pair"  # + _{kind}_{latent}: path of the model shown for that kind and size
TSNE_SIZE_KEY = "latent_tsne_sample"
DIGITS_KEY = "latent_digits"
INDEX_KEY = "latent_index"  # the test digit searched by number (ringed, its neighbours listed)
PICKED_KEY = "latent_picked_rows"  # session state: test-set rows picked in a chart or by number
ISOLATE_KEY = "latent_isolate"
ENDS_KEYS = ("latent_path_from", "latent_path_to")  # the two test digits interpolated between
SHOW_PATH_KEY = "latent_show_path"
PRIOR_SEED_KEY = "latent_prior_seed"
EXPLORE_KEY = "latent_explore_model"
HOVER_KEY = "latent_hover"
CELL_KEY = "latent_grid_cell"  # + _{kind}: the grid cell clicked, as its code
SLICE_KEY = "latent_slice_z3"
HOVER_SAMPLE = 2000  # digits in the hover view: each one's image travels to the browser
MAX_SHOWN = 8  # picked digits drawn with their reconstructions
NEIGHBOURS = 8
GRID_STEPS = 20
PATH_STEPS = 8
PRIOR_SAMPLES = 16
PLOT_HEIGHT = 560
LEGEND_ROOM = 130  # px under a 3-D scene: the legend's rows at 1024 px (ten digits and the overlays)
GRID_HEIGHT = 420
MAX_RINGED = 2000  # selected points outlined one by one; a larger selection is dimmed around, not outlined
CHART_CONFIG = {"displayModeBar": "hover"}  # the toolbar appears over the plot only while the mouse is on it
BACKGROUND = st.cache_resource(lambda: Background(workers=1))  # one t-SNE at a time for the whole server

# View name → (dimensions, projection method, can points be selected in it?)
VIEWS = {
    2: {"2-D (z₁, z₂)": (2, "identity", True)},
    3: {"3-D (drag to rotate)": (3, "identity", False),
        "2-D: z₁ vs z₂ (select points)": (2, "identity", True)},
    64: {"PCA 2-D (select points)": (2, "pca", True),
         "PCA 3-D (drag to rotate)": (3, "pca", False),
         "t-SNE 2-D on a subsample": (2, "tsne", True)},
}


def views(latent: int) -> dict:
    return VIEWS.get(latent, VIEWS[64])  # any size above 3 is seen through PCA or t-SNE like 64


@st.cache_resource(show_spinner="Projecting…", max_entries=24)
def get_projection(path: str, mtime: float, root: str, dims: int, method: str) -> Projection:
    """The identity or PCA view of a model's test codes (t-SNE: tsne_projection)."""
    return reduce(caches.get_embeddings(path, mtime, root), dims, method)


@st.cache_resource(show_spinner=False, max_entries=24)
def stored_tsne(path: str, mtime: float, root: str, sample_size: int) -> Projection | None:
    """The t-SNE view shipped beside the checkpoint (scripts/write_precomputed.py), if there is one for it."""
    stored = load_projection(path, "tsne", sample_size, caches.get_data(root))
    if stored is None:
        return None
    rows, coords = stored
    return Projection("tsne", coords, rows, fitted_latents=caches.get_embeddings(path, mtime, root)[rows].astype(np.float64))


def tsne_projection(args: tuple, sample_size: int) -> tuple[Projection | None, tuple]:
    """(the t-SNE view, ()) when it is ready, else (None, the background run's key): a model without a shipped
    view is computed once, in the background, for every visitor."""
    stored = stored_tsne(*args, sample_size)
    if stored is not None:
        return stored, ()
    key = (*args, sample_size)
    status = BACKGROUND().status(key)
    if status is None:
        embeddings = caches.get_embeddings(*args)
        BACKGROUND().start(key, lambda: reduce(embeddings, 2, "tsne", sample_size=sample_size))
        status = BACKGROUND().status(key)
    if status.done and status.error is None:
        return status.result, ()
    return None, key


def progress_text(status) -> str:
    if status.done:
        return f"t-SNE failed: {status.error}"
    return (f"t-SNE running in the background: {status.seconds:.0f} s so far (about a minute for 2,000 digits on a "
            "2-core machine, once per model and sample for every visitor); the plot appears by itself when it is done.")


@st.fragment(run_every=2)
def tsne_progress(key: tuple) -> None:
    """Says how long the background t-SNE has run; reruns the page once it is done."""
    status = BACKGROUND().status(key)
    if status is not None and status.done and status.error is None:
        st.rerun()
    st.info(progress_text(status))


@st.cache_data(show_spinner="Decoding the latent plane…", max_entries=12)
def get_latent_grid(path: str, mtime: float, root: str, z3: float | None = None) -> tuple[str, tuple]:
    """The decoded GRID_STEPS² grid of a 2-D latent (or of a 3-D one's slice at z3), tiled, as a PNG data URL
    (encoded once: it was half of the page's run), and its extent."""
    model, _ = caches.get_model(path, mtime)
    extent = latent_ranges(caches.get_embeddings(path, mtime, root))[:2]
    images = decode_grid(model, extent, GRID_STEPS) if z3 is None else decode_slice(model, extent, GRID_STEPS, z3)
    return thumbnail_url(tile(images, GRID_STEPS)), tuple(extent)


def cache_args(entry) -> tuple:
    return str(entry.path), entry.mtime, default_data_root()


def embeddings_of(entry) -> np.ndarray:
    return caches.get_embeddings(*cache_args(entry))


def axis_titles(projection, dims: int) -> list[str]:
    if projection.method == "pca":
        return [f"PC{i + 1} ({100 * r:.0f}% of variance)" for i, r in enumerate(projection.explained_variance_ratio)]
    if projection.method == "tsne":
        return [f"t-SNE {i + 1}" for i in range(dims)]
    return [f"z{'₁₂₃'[i]}" for i in range(dims)]


def marker_trace(dims: int, xyz: np.ndarray, **args):
    """A Scatter3d or a WebGL Scattergl (an SVG trace would be drawn under the digits' canvas) of the points."""
    if dims == 3:
        return go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], **args)
    return go.Scattergl(x=xyz[:, 0], y=xyz[:, 1], unselected=dict(marker=dict(opacity=1.0)), **args)


def scatter_figure(projection, labels: np.ndarray, digits: list[int], picked: list[int], selection_drawn: bool,
                   overlays: list, key: str) -> go.Figure:
    """One trace per shown digit (customdata = test-set row), the picked rows drawn as selected, then the
    overlays (ring, path, star, sliders' point, posterior ellipse). `uirevision` stays `key`: Plotly then keeps
    the camera, drag mode, legend and drawn selection across reruns."""
    dims = projection.dims
    fig = go.Figure()
    point_labels = labels[projection.rows]
    for digit in digits:
        in_digit = point_labels == digit
        xyz, rows = projection.coords[in_digit], projection.rows[in_digit]
        marker = dict(color=DIGIT_COLOURS[digit], size=2 if dims == 3 else 4, opacity=0.7)
        if dims == 3:
            # At 2 px a square looks like a dot, and WebGL draws it from 2 triangles where a circle takes dozens:
            # without a GPU (software WebGL) that halves the time a 10,000-point scene takes to appear.
            marker["symbol"] = "square"
        common = dict(name=str(digit), uid=f"digit-{digit}", mode="markers", marker=marker, customdata=rows,
                      hovertemplate=f"digit {digit} · test #%{{customdata}}<extra></extra>")
        if dims == 3:
            fig.add_trace(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], **common))
        else:
            selected = positions_in(rows, picked) if selection_drawn else None
            fig.add_trace(go.Scattergl(x=xyz[:, 0], y=xyz[:, 1], selectedpoints=selected,
                                       selected=dict(marker=dict(opacity=1.0)),
                                       unselected=dict(marker=dict(opacity=0.12)), **common))
    if selection_drawn and len(picked) <= MAX_RINGED:
        shown = np.isin(projection.rows, picked) & np.isin(point_labels, digits)
        fig.add_trace(marker_trace(dims, projection.coords[shown], name=f"selected ({int(shown.sum()):,})",
                                   uid="selected", mode="markers", customdata=projection.rows[shown],
                                   hovertemplate="test #%{customdata} (selected)<extra></extra>",
                                   marker=dict(symbol="circle-open", size=5 if dims == 3 else 9, color="black",
                                               line=dict(width=1.5))))
    for trace in overlays:
        fig.add_trace(trace)
    titles = axis_titles(projection, dims)
    # The legend lies under the plot, so the plot has the column's whole width (at 1024 px a legend beside a 3-D
    # scene left it too narrow to show); the toolbar, over the top edge on hover, covers nothing.
    fig.update_layout(height=PLOT_HEIGHT, margin=dict(l=0, r=0, t=30, b=0), uirevision=key,
                      legend=dict(title="digit", itemsizing="constant", orientation="h", x=0, y=-0.1,
                                  yanchor="top"))
    if dims == 3:
        # A cube inside the plot's own box, its axis titles in it at 1400 px; in a narrower box the browser moves
        # the camera back (studio/plotly_view.py), from a height it knows before drawing: the legend's room is
        # fixed, not grown to fit.
        fig.update_layout(margin=dict(b=LEGEND_ROOM))
        fig.update_layout(scene=dict(xaxis_title=titles[0], yaxis_title=titles[1], zaxis_title=titles[2],
                                     aspectmode="cube", domain=dict(x=[0, 1], y=[0, 1]),
                                     camera=dict(eye=dict(x=1.65, y=1.65, z=1.15))))
    else:
        # Dragging draws a selection box (the caption says so); Plotly's default drag pans. The lasso, once
        # picked in the toolbar, stays: uirevision keeps the visitor's drag mode.
        fig.update_layout(xaxis_title=titles[0], yaxis_title=titles[1], yaxis=dict(scaleanchor="x"),
                          dragmode="select")
    return fig


def overlay_traces(dims: int, projection, entry, drawn, marked, path_xy, slider_z) -> list:
    """The ring around the searched digit, the path, the drawn digit (star) with its posterior's 1-σ ellipse,
    and the sliders' point, placed in this view."""
    traces = []
    if path_xy is not None:
        traces.append(marker_trace(dims, path_xy, name="path", mode="lines+markers", line=dict(color="black", width=3),
                                   hovertemplate="path step<extra></extra>",
                                   marker=dict(color="black", size=5 if dims == 3 else 8)))
    if marked is not None:
        row, xy = marked
        traces.append(marker_trace(dims, xy, name=f"test #{row}", uid="ring", mode="markers", customdata=[row],
                                   hovertemplate=f"test #{row} (searched)<extra></extra>",
                                   marker=dict(symbol="circle-open", size=12 if dims == 3 else 18, color="black",
                                               line=dict(width=3))))
    if drawn is not None:
        model, _ = caches.model_for(entry)
        drawn_xy = projection.place(embed_digit(model, drawn))
        star = dict(name="your digit", mode="markers", hovertemplate="your digit (Draw page)<extra></extra>")
        if dims == 3:  # 3-D scatter has no star symbol
            traces.append(marker_trace(dims, drawn_xy, **star, marker=dict(symbol="diamond", size=9, color="black",
                                                                         line=dict(color="white", width=2))))
        else:
            traces.append(marker_trace(dims, drawn_xy, **{**star, "mode": "markers+text"}, text=["your digit"],
                                       textposition="top center", textfont=dict(size=13),
                                       marker=dict(symbol="star", size=22, color="black", line=dict(color="white", width=2))))
            posterior = posterior_of(model, drawn)
            covariance = None if posterior is None else projection.covariance(posterior.std)
            if covariance is not None:
                ring = ellipse(projection.place(posterior.mean)[0], covariance)
                traces.append(go.Scattergl(x=ring[:, 0], y=ring[:, 1], name="your digit's 1-σ", mode="lines",
                                           line=dict(color="black", width=2, dash="dash"), hoverinfo="skip"))
    if slider_z is not None:
        traces.append(marker_trace(dims, projection.place(slider_z), name="sliders' point", mode="markers",
                                   hovertemplate="the sliders' point<extra></extra>",
                                   marker=dict(symbol="x" if dims == 2 else "cross", size=16 if dims == 2 else 8,
                                               color="crimson", line=dict(color="white", width=1))))
    return traces


def remember_selection(event) -> None:
    """A box or lasso: its rows are the picked ones; the searched digit (the ring) stays where it was."""
    rows = selection_to_rows(event, n_rows=len(caches.data().test_labels))
    if rows:
        st.session_state[PICKED_KEY] = rows


def remember_click(event) -> None:
    """A clicked point is picked and searched: ringed, its neighbours listed."""
    rows = selection_to_rows(event, n_rows=len(caches.data().test_labels))
    if rows:
        st.session_state[PICKED_KEY] = rows[:1]
        st.session_state[INDEX_KEY] = rows[0]


def remember_index() -> None:
    st.session_state[PICKED_KEY] = [int(st.session_state[INDEX_KEY])]


def pick_model(kind: str, latent: int, usable: list, default: str | None):
    """The model of this kind and size to show: a choice among the usable ones, the sidebar's by default."""
    options = {str(e.path): e for e in models_of_size(usable, kind, latent)}
    if not options:
        st.caption(f"{kind.upper()}: none of latent size {latent}")
        return None
    key = f"{PAIR_KEY}_{kind}_{latent}"
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else next(iter(options))
    if len(options) == 1:
        st.caption(next(iter(options.values())).label)
        return next(iter(options.values()))
    path = st.selectbox(f"{kind.upper()} model", list(options), key=key, format_func=lambda p: options[p].label,
                        help=f"Every usable {kind.upper()} checkpoint with latent size {latent}.")
    return options[state.offered(path, options)]


def model_plot(kind: str, entry, view: str, labels: np.ndarray, digits: list[int], drawn, tsne_sample: int,
               path_ends, picked: list[int], selection_drawn: bool, isolated: set | None, slider) -> None:
    """One model's scatter plot (or why there is none) and, when asked, its hover view."""
    dims, method, selectable = views(entry.metadata["latent_dim"])[view]
    args = cache_args(entry)
    if method == "tsne":
        projection, waiting = tsne_projection(args, tsne_sample)
        if projection is None:
            tsne_progress(waiting)
            return
    else:
        projection = get_projection(*args, dims, method)
    if isolated is not None:
        projection = projection.subset(np.isin(projection.rows, list(isolated)))
    embeddings = embeddings_of(entry)
    row = st.session_state.get(INDEX_KEY)
    marked = (row, projection.place(embeddings[row])) if isinstance(row, int) and 0 <= row < len(labels) else None
    path_xy = None
    if path_ends is not None and method != "tsne":  # t-SNE cannot place the path's new points
        path_xy = projection.place(interpolation(entry, *path_ends)[0])
    slider_z = slider[1] if slider is not None and slider[0] == kind and method == "identity" else None
    key = f"latent_chart_{kind}_{entry.metadata['latent_dim']}"  # one chart per plot, each view a slot of it
    fig = scatter_figure(projection, labels, digits, picked, selection_drawn,
                         overlay_traces(dims, projection, entry, drawn, marked, path_xy, slider_z), f"{key}_{view}")
    plotly_view(fig, key=key, height=PLOT_HEIGHT, config=CHART_CONFIG, on_click=remember_click,
                on_select=remember_selection if selectable else None, slot=view)
    if st.session_state.get(HOVER_KEY):
        flat = projection if dims == 2 else get_projection(*args, 2, method)  # 3-D: its first two axes
        shown = hover_points(flat.rows, labels, digits, HOVER_SAMPLE)
        rows = flat.rows[shown]
        hover_scatter(flat.coords[shown], labels[rows], rows, caches.data().test_images[rows, 0].numpy(),
                      DIGIT_COLOURS, key=f"latent_hover_{kind}_{entry.metadata['latent_dim']}_{view}")
        st.caption(f"{len(rows):,} of these digits{' (seeded sample)' if len(rows) == HOVER_SAMPLE else ''}, "
                   f"{' vs '.join(axis_titles(flat, 2))}, coloured as above: hover a point to see the digit.")


@st.cache_data(show_spinner=False, max_entries=32)
def get_interpolation(path: str, mtime: float, root: str, row_a: int, row_b: int) -> tuple[np.ndarray, np.ndarray]:
    """(path, images) of the straight path between two test digits' codes under this model: drawn on the plots
    and as strips below, so computed once, not on every slider step."""
    model, _ = caches.get_model(path, mtime)
    images = caches.get_data(root).test_images
    return interpolate(model, images[row_a, 0].numpy() / 255.0, images[row_b, 0].numpy() / 255.0, PATH_STEPS)


def interpolation(entry, row_a: int, row_b: int) -> tuple[np.ndarray, np.ndarray]:
    return get_interpolation(*cache_args(entry), row_a, row_b)


def picked_digits(rows: list[int], entries: dict, latent: int) -> None:
    """The picked test digits (a sample spread over the digits when many), each above its reconstructions."""
    d = caches.data()
    labels = d.test_labels.numpy()
    shown = sample_selection(rows, labels, MAX_SHOWN)
    stacks, names = [d.test_images[shown, 0].numpy() / 255.0], ["input"]
    for kind, entry in entries.items():
        if entry is not None:
            model, _ = caches.model_for(entry)
            stacks.append(reconstruct_rows(model, d.test_images, shown))
            names.append(f"{kind.upper()} z={latent}")
    if len(rows) == 1:
        heading = f"**Test digit #{rows[0]}**, labelled **{labels[rows[0]]}**"
    else:
        heading = (f"**{selection_summary(rows, labels)}**; {len(shown)} of them shown, picked at random "
                   "(seeded) across the digits selected")
    st.markdown(f"{heading}. Top to bottom: {', '.join(names)}.")
    for row, i, column in zip(shown, range(len(shown)), st.columns(MAX_SHOWN)):
        column.image(upscale(tile(np.stack([s[i] for s in stacks]), columns=1, gap=1), 3), clamp=True,
                     caption=f"#{row} · {labels[row]}")


def neighbours_of(row: int, entries: dict, labels: np.ndarray) -> None:
    """The Embedding Projector's list: the test digits nearest to the searched one in each model's full latent."""
    d = caches.data()
    st.markdown(f"**Nearest neighbours of test #{row}** (a {labels[row]}), in each model's full latent space "
                "(Euclidean distance d between codes):")
    for kind, entry in entries.items():
        if entry is None:
            continue
        embeddings = embeddings_of(entry)
        rows, distances = nearest_neighbours(embeddings, embeddings[row], NEIGHBOURS, exclude=row)
        same = int((labels[rows] == labels[row]).sum())
        st.caption(f"{kind.upper()} ({entry.name}): {same} of {len(rows)} carry the same label")
        for r, distance, column in zip(rows, distances, st.columns(NEIGHBOURS)):
            column.image(upscale(d.test_images[int(r), 0].numpy(), 3),
                         caption=neighbour_caption(int(r), int(labels[r]), distance))


def score_table(entries: dict) -> None:
    scores = {kind: caches.get_cluster_scores(*cache_args(e)) for kind, e in entries.items() if e is not None}
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


def strip(images: np.ndarray, columns: int) -> np.ndarray:
    return upscale(tile(images, columns=columns, gap=2), 2)


def next_samples() -> None:
    st.session_state[PRIOR_SEED_KEY] += 1


@st.fragment
def prior_samples(entries: dict) -> None:
    st.markdown("**Digits from the prior.** Codes drawn from N(0, I), the distribution the VAE was trained to "
                "fill, decoded.")
    entry = entries.get("vae")
    if entry is None:
        st.caption("No VAE of this size to sample from.")
        return
    state.kept(PRIOR_SEED_KEY, 0)
    st.button("New samples", key="latent_new_samples", on_click=next_samples, icon=":material/casino:")
    seed = st.session_state[PRIOR_SEED_KEY]
    model, _ = caches.model_for(entry)
    try:
        images = sample_prior(model, PRIOR_SAMPLES, seed)
    except NoPrior as exc:
        st.caption(str(exc))
        return
    st.image(strip(images, PRIOR_SAMPLES // 2), clamp=True, caption=f"{entry.name}: {PRIOR_SAMPLES} samples, seed {seed}")
    st.caption("The AE is not shown: it was never trained towards any distribution of its codes, so it has no "
               "prior to sample from.")


def interpolation_strips(entries: dict, ends: tuple[int, int], labels: np.ndarray) -> None:
    row_a, row_b = ends
    st.markdown(f"**From one digit to another.** The straight path between the codes of test #{row_a} "
                f"(a {labels[row_a]}) and test #{row_b} (a {labels[row_b]}), decoded at {PATH_STEPS} evenly spaced "
                "points; the first and last are the two digits' reconstructions.")
    for kind, entry in entries.items():
        if entry is not None:
            st.image(strip(interpolation(entry, row_a, row_b)[1], PATH_STEPS), clamp=True,
                     caption=f"{kind.upper()} ({entry.name}): test #{row_a} → test #{row_b}")


def latent_sliders(entries: dict):
    """Sliders over a 2- or 3-D latent and the digit decoded there. Returns (kind, z): the point, which the
    plots above mark."""
    available = {kind.upper(): e for kind, e in entries.items() if e is not None}
    st.markdown("**Move through the latent space.** Each slider spans one axis over the test digits' codes "
                "(1st to 99th percentile); the decoder draws the point, and a red ✕ marks it on its model's plot.")
    if len(available) > 1:
        state.kept(EXPLORE_KEY, list(available)[-1])
        name = state.offered(st.radio("Model", list(available), key=EXPLORE_KEY, horizontal=True), available)
    else:
        name = next(iter(available))
    entry = available[name]
    ranges = latent_ranges(embeddings_of(entry))
    columns = st.columns([2, 1])
    z = []
    for axis, (low, high) in enumerate(ranges):
        key = f"latent_slider_{entry.name}_{axis}"
        state.kept(key, round((low + high) / 2, 2))
        z.append(columns[0].slider(f"z{'₁₂₃'[axis]}", round(low, 2), round(high, 2), step=0.01, key=key))
    model, _ = caches.model_for(entry)
    columns[1].image(upscale(decode_point(model, np.array(z)), 5), clamp=True,
                     caption=f"{entry.name} decodes z = ({', '.join(f'{v:.2f}' for v in z)})")
    return name.lower(), np.array(z, dtype=np.float64)


@st.fragment
def plots(latent: int, entries: dict, labels: np.ndarray, drawn, path_ends) -> None:
    """The view and digit controls, both plots, the sliders' point and the picked digits: one fragment, so a
    selection, a filter or a slider reruns this part only."""
    last_row = len(labels) - 1
    controls = st.columns([2, 1.3, 1.2])
    view_names = list(views(latent))
    if len(view_names) > 1:
        view = state.offered(controls[0].radio("View", view_names, key=f"{VIEW_KEY}_{latent}", horizontal=True),
                             view_names)
    else:
        view = view_names[0]
        controls[0].markdown(f"View  \n{view}")
    dims, method, selectable = views(latent)[view]
    tsne_sample = TSNE_SAMPLE
    if method == "tsne":
        state.kept(TSNE_SIZE_KEY, TSNE_SAMPLE)
        tsne_sample = controls[0].select_slider(
            "t-SNE sample", [500, 1000, 2000, 3000, 5000], key=TSNE_SIZE_KEY,
            help=f"Random test digits (seeded) t-SNE runs on. {TSNE_SAMPLE:,} ships precomputed for the shipped models; "
                 "other sizes and models are computed once, in the background.")
    controls[1].number_input(f"Find test digit (0–{last_row:,})", 0, last_row, key=INDEX_KEY, on_change=remember_index,
                             help="Rings it in both plots and lists its nearest neighbours below.")
    controls[2].toggle("Isolate", key=ISOLATE_KEY,
                       help="Show only the selected digits (or the one found and its nearest neighbours), as the "
                            "Embedding Projector's \"Isolate\" does.")
    digits = shown_digits(st.pills(
        "Digits shown", list(range(10)), selection_mode="multi", key=DIGITS_KEY, default=list(range(10)),
        help="Click a digit to hide or show it in the plots.") or [])
    st.toggle("Show the digit under the mouse", key=HOVER_KEY,
              help=f"Adds a 2-D view of up to {HOVER_SAMPLE:,} of the digits under each plot, where the mouse shows "
                   "the digit itself, not only its label (3-D views: their first two axes).")

    picked = [r for r in st.session_state.get(PICKED_KEY, []) if 0 <= r <= last_row]
    selection_drawn = len(picked) > 1
    isolated = None
    if st.session_state.get(ISOLATE_KEY):
        row = st.session_state.get(INDEX_KEY)
        isolated = set(picked) if selection_drawn else {row} | {
            int(r) for e in entries.values() if e is not None
            for r in nearest_neighbours(embeddings_of(e), embeddings_of(e)[row], NEIGHBOURS, exclude=row)[0]}
    shown_count = min(tsne_sample, len(labels)) if method == "tsne" else len(labels)
    notes = [f"{shown_count:,} of the {len(labels):,} test digits (a seeded random sample: t-SNE is slow)"
             if method == "tsne" else f"{len(labels):,} test digits",
             f"from {caches.data().source_label}, coloured by their label; hover a point for its label and test number."]
    if selectable:
        notes.append("Click a point, or drag a box (or pick the lasso in the toolbar), to see those digits and their "
                     "reconstructions below; the selection stays drawn, the rest dimmed.")
    else:
        notes.append("Streamlit cannot select points in a 3-D plot: click a point, or pick a digit with the 2-D view "
                     "or by number.")
    if drawn is not None:
        notes.append("★ is your digit from the Draw page (◆ in 3-D), embedded by each model and placed with the same "
                     "projection" + (" (t-SNE cannot place new points: it sits at its nearest neighbour's spot)."
                                     if method == "tsne" else
                                     "; the dashed line around the VAE's is its posterior's 1-σ ellipse in these two "
                                     "axes." if dims == 2 else "."))
    else:
        notes.append("Draw a digit on the Draw page to see where it lands here.")
    if path_ends is not None and method != "tsne":
        notes.append(f"Black line: the path from test #{path_ends[0]} to test #{path_ends[1]} (below).")
    st.caption(" ".join(notes))

    plot_columns = st.columns(2)
    slider_area = st.container()
    slider = None
    if latent in (2, 3) and any(entries.values()):
        with slider_area:
            slider = latent_sliders(entries)
    for kind, column in zip(KINDS, plot_columns):
        with column:
            entry = entries[kind]
            st.subheader(f"{kind.upper()} · latent {latent}")
            if entry is None:
                st.warning(f"No usable {kind.upper()} checkpoint with latent size {latent}. {train_one_hint(kind, latent)}")
                continue
            model_plot(kind, entry, view, labels, digits, drawn, tsne_sample, path_ends, picked, selection_drawn,
                       isolated, slider)

    st.subheader("Picked digits")
    rows = picked or [st.session_state.get(INDEX_KEY, 0)]
    picked_digits(rows, entries, latent)
    row = st.session_state.get(INDEX_KEY, 0)
    neighbours_of(row if isinstance(row, int) and 0 <= row <= last_row else 0, entries, labels)


def remember_cell(kind: str, extent, z3):
    def remember(event) -> None:
        cells = selection_to_rows(event, n_rows=GRID_STEPS * GRID_STEPS)
        if cells:
            st.session_state[f"{CELL_KEY}_{kind}"] = grid_codes(extent, GRID_STEPS, () if z3 is None else (z3,))[cells[0]]
    return remember


def grid_figure(picture_url: str, extent, key: str) -> go.Figure:
    """The tiled decodings (a data URL) as a picture over the latent plane, with one invisible point per cell to
    click."""
    (x0, x1), (y0, y1) = extent
    centres = grid_codes(extent, GRID_STEPS)
    fig = go.Figure(go.Scatter(x=centres[:, 0], y=centres[:, 1], mode="markers", customdata=np.arange(len(centres)),
                               marker=dict(size=18, opacity=0), name="cells",
                               hovertemplate="z = (%{x:.2f}, %{y:.2f}): click to enlarge<extra></extra>"))
    half_x, half_y = (x1 - x0) / (GRID_STEPS - 1) / 2, (y1 - y0) / (GRID_STEPS - 1) / 2
    fig.add_layout_image(source=picture_url, xref="x", yref="y", x=x0 - half_x, y=y1 + half_y,
                         sizex=x1 - x0 + 2 * half_x, sizey=y1 - y0 + 2 * half_y, sizing="stretch", layer="below")
    fig.update_layout(height=GRID_HEIGHT, margin=dict(l=0, r=0, t=10, b=0), uirevision=key, showlegend=False,
                      hovermode="closest", hoverdistance=30, clickmode="event", dragmode=False,
                      xaxis=dict(title="z₁", range=[x0 - half_x, x1 + half_x], showgrid=False, zeroline=False),
                      yaxis=dict(title="z₂", range=[y0 - half_y, y1 + half_y], showgrid=False, zeroline=False))
    return fig


@st.fragment
def decoded_plane(entries: dict, latent: int) -> None:
    """Latent 2: the decoded grid over the plane; latent 3: a slice of it at a z₃ the visitor sets. A click on a
    cell shows that decoding larger, with its code."""
    st.subheader("The latent plane, decoded" if latent == 2 else "A slice of the latent space, decoded")
    z3 = None
    if latent == 3:
        low, high = min(latent_ranges(embeddings_of(e))[2][0] for e in entries.values() if e is not None), \
            max(latent_ranges(embeddings_of(e))[2][1] for e in entries.values() if e is not None)
        state.kept(SLICE_KEY, 0.0 if low <= 0 <= high else round((low + high) / 2, 1))
        z3 = st.slider("z₃ of the slice", round(low, 1), round(high, 1), step=0.1, key=SLICE_KEY,
                       help="The third latent axis, fixed: the grid shows the plane (z₁, z₂) at this z₃.")
    st.caption(f"A {GRID_STEPS}×{GRID_STEPS} grid over each model's (z₁, z₂) plane (1st to 99th percentile of its "
               "test embeddings)" + ("" if z3 is None else f", at z₃ = {z3:.1f}") + ", decoded. Laid out like the plot "
               "above: z₁ to the right, z₂ upward. Click a cell to see it larger. Where the AE's plot has empty gaps "
               "its decoder never trained; the VAE's prior pulls its codes together.")
    for (kind, entry), column in zip(entries.items(), st.columns(2)):
        if entry is None:
            continue
        with column:
            picture_url, extent = get_latent_grid(*cache_args(entry), z3)
            key = f"latent_grid_{kind}_{latent}"
            plotly_view(grid_figure(picture_url, extent, key), key=key, height=GRID_HEIGHT,
                        config={"displayModeBar": False}, on_click=remember_cell(kind, extent, z3))
            (x0, x1), (y0, y1) = extent
            st.caption(f"{kind.upper()}: z₁ from {x0:.2f} to {x1:.2f}, z₂ from {y0:.2f} to {y1:.2f}")
            code = st.session_state.get(f"{CELL_KEY}_{kind}")
            if code is not None and len(code) == latent:
                model, _ = caches.model_for(entry)
                st.image(upscale(decode_point(model, code), 5), clamp=True,
                         caption=f"{entry.name} decodes the clicked cell, z = {code_text(code)}")


st.title("Latent space")
st.markdown("Where the encoder puts each test digit (report Fig. 4 for the AE, Fig. 5 for the VAE). The report: "
            "the VAE's clusters are tighter, closer in size, and fill the gaps the AE leaves between them.")

try:
    data = caches.data()
except Exception as exc:  # DataUnavailable
    st.error(f"No data to embed: {exc}")
    st.stop()
labels = data.test_labels.numpy()
last_row = len(labels) - 1

usable = caches.usable_entries()
selected = state.selected_entry()
selected_path = str(selected.path) if selected is not None else None
selected_latent = selected.metadata["latent_dim"] if selected is not None else None
sizes = sorted(set(LATENT_SIZES) | ({selected_latent} if selected_latent and selected_latent >= 2 else set()))
if st.session_state.get(FOLLOWED_KEY) != selected_path:
    # A first visit opens on the report's view, unless the sidebar holds a model other than the app's default;
    # a model picked in the sidebar later brings its own size.
    first_on_default = FOLLOWED_KEY not in st.session_state and selected is not None \
        and selected.path.name == state.DEFAULT_MODEL
    st.session_state[SIZE_KEY] = OPENING_SIZE if first_on_default or selected_latent not in sizes else selected_latent
    st.session_state[FOLLOWED_KEY] = selected_path
    for key in [k for k in st.session_state if str(k).startswith(PAIR_KEY)]:
        del st.session_state[key]  # the pairs start again from the newly selected model
top = st.columns([1.2, 1.5, 1.5])
model_columns = top[1:]
latent = state.offered(top[0].radio("Latent size", sizes, key=state.kept(SIZE_KEY, OPENING_SIZE, sizes), horizontal=True,
                                help="AE and VAE of the same latent size, side by side."), sizes)

state.kept(ENDS_KEYS[0], 0)
state.kept(ENDS_KEYS[1], 1)
state.kept(SHOW_PATH_KEY, True)
state.kept(INDEX_KEY, 0)
path_ends = tuple(min(max(int(st.session_state[k]), 0), last_row) for k in ENDS_KEYS)
drawn = st.session_state.get(state.DRAWN_DIGIT_KEY)

pair = default_pair(usable, latent, selected)
entries = {}
for kind, column in zip(KINDS, model_columns):
    with column:
        entries[kind] = pick_model(kind, latent, usable, pair[kind])

if any(entries.values()):
    plots(latent, entries, labels, drawn, path_ends if st.session_state[SHOW_PATH_KEY] else None)
    score_table(entries)

if latent in (2, 3) and any(entries.values()):
    decoded_plane(entries, latent)

if any(entries.values()):
    st.subheader("What the decoders make of the latent space")
    prior_samples(entries)
    ends = st.columns([1, 1, 2])
    ends[0].number_input("Path from test digit", 0, last_row, key=ENDS_KEYS[0])
    ends[1].number_input("to test digit", 0, last_row, key=ENDS_KEYS[1])
    ends[2].toggle("Draw the path on the plots above", key=SHOW_PATH_KEY)
    interpolation_strips(entries, path_ends, labels)
