"""Latent space (report Fig. 4/5): where the AE and the VAE of one latent size put the test digits, and what
their decoders make of points in that space."""
from functools import partial

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from studio import caches, state
from studio.display import tile, upscale
from studio.hover_scatter import hover_scatter
from studio.latent_text import (
    compare_cluster_scores,
    default_pair,
    hover_points,
    models_of_size,
    sample_selection,
    selection_summary,
    selection_to_rows,
)
from vae.data import default_data_root
from vae.generate import NoPrior, decode_grid, decode_point, interpolate, latent_ranges, sample_prior
from vae.latent import KNN_K, SILHOUETTE_SAMPLE, TSNE_SAMPLE, embed_digit, reconstruct_rows, reduce

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
INDEX_KEY = "latent_index"
PICKED_KEY = "latent_picked_rows"  # session state: test-set rows picked in a chart or by number
ENDS_KEYS = ("latent_path_from", "latent_path_to")  # the two test digits interpolated between
SHOW_PATH_KEY = "latent_show_path"
PRIOR_SEED_KEY = "latent_prior_seed"
EXPLORE_KEY = "latent_explore_model"
HOVER_KEY = "latent_hover"
HOVER_SAMPLE = 2000  # digits in the hover view: each one's image travels to the browser
MAX_SHOWN = 8  # picked digits drawn with their reconstructions
GRID_STEPS = 20
PATH_STEPS = 8
PRIOR_SAMPLES = 16
CHART_CONFIG = {"displayModeBar": "hover"}  # the toolbar appears over the plot only while the mouse is on it

# View name → (dimensions, projection method, can points be selected in it?)
VIEWS = {
    2: {"2-D (z₁, z₂)": (2, "identity", True)},
    3: {"3-D (drag to rotate)": (3, "identity", False),
        "2-D: z₁ vs z₂ (select points)": (2, "identity", True)},
    64: {"PCA 2-D (select points)": (2, "pca", True),
         "PCA 3-D (drag to rotate)": (3, "pca", False),
         "t-SNE 2-D on a subsample (slow)": (2, "tsne", True)},
}


def views(latent: int) -> dict:
    return VIEWS.get(latent, VIEWS[64])  # any size above 3 is seen through PCA or t-SNE like 64


@st.cache_resource(show_spinner="Projecting…", max_entries=24)
def get_projection(path: str, mtime: float, root: str, dims: int, method: str, sample_size: int):
    return reduce(caches.get_embeddings(path, mtime, root), dims, method, sample_size=sample_size)


@st.cache_data(show_spinner="Decoding the latent plane…", max_entries=12)
def get_latent_grid(path: str, mtime: float, root: str) -> tuple[np.ndarray, tuple]:
    model, _ = caches.get_model(path, mtime)
    extent = latent_ranges(caches.get_embeddings(path, mtime, root))
    return tile(decode_grid(model, extent, GRID_STEPS), GRID_STEPS), extent


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


def scatter_figure(projection, labels: np.ndarray, digits: list[int], drawn_xy: np.ndarray | None,
                   marked: tuple[int, np.ndarray] | None, path_xy: np.ndarray | None) -> go.Figure:
    """One trace per shown digit (customdata = test-set row, for selections), the drawn digit as a star, the
    test digit picked by number as a ring, and the interpolation path."""
    dims = projection.dims
    fig = go.Figure()
    point_labels = labels[projection.rows]
    for digit in digits:
        in_digit = point_labels == digit
        xyz = projection.coords[in_digit]
        marker = dict(color=DIGIT_COLOURS[digit], size=2 if dims == 3 else 4, opacity=0.7)
        common_args = dict(name=str(digit), mode="markers", marker=marker, customdata=projection.rows[in_digit],
                           hovertemplate=f"digit {digit} · test #%{{customdata}}<extra></extra>")
        if dims == 3:
            fig.add_trace(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], **common_args))
        else:
            fig.add_trace(go.Scattergl(x=xyz[:, 0], y=xyz[:, 1], **common_args))
    if path_xy is not None:
        fig.add_trace(marker_trace(dims, path_xy, name="path", mode="lines+markers",
                                   line=dict(color="black", width=3), hovertemplate="path step<extra></extra>",
                                   marker=dict(color="black", size=5 if dims == 3 else 8)))
    if marked is not None:
        row, xy = marked
        fig.add_trace(marker_trace(dims, xy, name=f"test #{row}", mode="markers",
                                   hovertemplate=f"test #{row} (picked)<extra></extra>",
                                   marker=dict(symbol="circle-open", size=12 if dims == 3 else 18, color="black",
                                               line=dict(width=3))))
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
            # WebGL like the digits, and never dimmed by a selection.
            fig.add_trace(go.Scattergl(x=drawn_xy[:, 0], y=drawn_xy[:, 1], **star,
                                       marker=dict(symbol="star", size=22, color="black",
                                                   line=dict(color="white", width=2)),
                                       unselected=dict(marker=dict(opacity=1.0))))
            fig.add_annotation(x=drawn_xy[0, 0], y=drawn_xy[0, 1], **label)
    titles = axis_titles(projection, dims)
    # The legend starts below the top edge, where the toolbar appears on hover, so that it never covers its title.
    fig.update_layout(height=520, margin=dict(l=0, r=0, t=36, b=0),
                      legend=dict(title="digit", itemsizing="constant", y=0.92, yanchor="top"))
    if dims == 3:
        fig.update_layout(scene=dict(xaxis_title=titles[0], yaxis_title=titles[1], zaxis_title=titles[2],
                                     camera=dict(eye=dict(x=1.6, y=1.6, z=1.1))))  # default clips the corners
    else:
        # Dragging draws a selection box (the caption says so); Plotly's default drag pans.
        fig.update_layout(xaxis_title=titles[0], yaxis_title=titles[1], yaxis=dict(scaleanchor="x"),
                          dragmode="select")
    return fig


def remember_selection(chart_key: str) -> None:
    rows = selection_to_rows(st.session_state.get(chart_key), n_rows=len(caches.data().test_labels))
    if rows:
        st.session_state[PICKED_KEY] = rows
        st.session_state[INDEX_KEY] = rows[0]  # the number box shows the (first) picked digit too


def remember_index() -> None:
    st.session_state[PICKED_KEY] = [int(st.session_state[INDEX_KEY])]


def pick_model(kind: str, latent: int, usable: list, default: str | None):
    """The model of this kind and size to show: a choice among the usable ones, the sidebar's by default."""
    options = {str(e.path): e for e in models_of_size(usable, kind, latent)}
    if not options:
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


def model_column(kind: str, latent: int, view: str, labels: np.ndarray, digits: list[int], drawn: np.ndarray | None,
                 tsne_sample: int, usable: list, default: str | None, path_ends: tuple[int, int] | None):
    """One model's chooser and scatter plot (or why there is none)."""
    st.subheader(f"{kind.upper()} · latent {latent}")
    entry = pick_model(kind, latent, usable, default)
    if entry is None:
        st.warning(f"No usable {kind.upper()} checkpoint with latent size {latent}. "
                   f"Train one: `python -m vae train --model {kind} --latent {latent}`.")
        return None
    dims, method, selectable = views(latent)[view]
    args = cache_args(entry)
    if method == "tsne":
        with st.spinner(f"t-SNE on {min(tsne_sample, len(labels)):,} test digits (this takes a while, once per model)…"):
            projection = get_projection(*args, dims, method, tsne_sample)
    else:
        projection = get_projection(*args, dims, method, TSNE_SAMPLE)
    model, _ = caches.model_for(entry)
    embeddings = embeddings_of(entry)
    drawn_xy = None if drawn is None else projection.place(embed_digit(model, drawn))
    row = st.session_state.get(INDEX_KEY)
    marked = (row, projection.place(embeddings[row])) if isinstance(row, int) and 0 <= row < len(labels) else None
    path_xy = None
    if path_ends is not None and method != "tsne":  # t-SNE cannot place the path's new points
        path_xy = projection.place(interpolation(entry, *path_ends)[0])
    fig = scatter_figure(projection, labels, digits, drawn_xy, marked, path_xy)
    chart_key = f"latent_chart_{kind}_{latent}_{view}"
    if selectable:
        st.plotly_chart(fig, key=chart_key, on_select=partial(remember_selection, chart_key),
                        selection_mode=("points", "box", "lasso"), config=CHART_CONFIG)
    else:
        st.plotly_chart(fig, key=chart_key, config=CHART_CONFIG)
    if st.session_state.get(HOVER_KEY):
        flat = projection if dims == 2 else get_projection(*args, 2, method, TSNE_SAMPLE)  # 3-D: its first two axes
        shown = hover_points(flat.rows, labels, digits, HOVER_SAMPLE)
        rows = flat.rows[shown]
        hover_scatter(flat.coords[shown], labels[rows], rows, caches.data().test_images[rows, 0].numpy(),
                      DIGIT_COLOURS, key=f"latent_hover_{kind}_{latent}_{view}")
        st.caption(f"{len(rows):,} of these digits{' (seeded sample)' if len(rows) == HOVER_SAMPLE else ''}, "
                   f"{' vs '.join(axis_titles(flat, 2))}, coloured as above: hover a point to see the digit.")
    return entry


def interpolation(entry, row_a: int, row_b: int) -> tuple[np.ndarray, np.ndarray]:
    """(path, images) of the straight path between two test digits' codes under this model."""
    model, _ = caches.model_for(entry)
    images = caches.data().test_images
    return interpolate(model, images[row_a, 0].numpy() / 255.0, images[row_b, 0].numpy() / 255.0, PATH_STEPS)


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


@st.fragment
def latent_explorer(entries: dict) -> None:
    """Sliders over a 2- or 3-D latent and the digit decoded there; only this part reruns as they move."""
    available = {kind.upper(): e for kind, e in entries.items() if e is not None}
    st.markdown("**Move through the latent space.** Each slider spans one axis over the test digits' codes "
                "(1st to 99th percentile); the decoder draws the point.")
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
controls = st.columns([1.3, 2, 1])
latent = state.offered(controls[0].radio("Latent size", sizes, key=state.kept(SIZE_KEY, OPENING_SIZE, sizes), horizontal=True,
                                         help="AE and VAE of the same latent size, side by side."), sizes)
view_names = list(views(latent))
if len(view_names) > 1:
    view = state.offered(controls[1].radio("View", view_names, key=f"{VIEW_KEY}_{latent}", horizontal=True), view_names)
else:
    view = view_names[0]
    controls[1].markdown(f"View  \n{view}")
dims, method, selectable = views(latent)[view]
tsne_sample = TSNE_SAMPLE
if method == "tsne":
    state.kept(TSNE_SIZE_KEY, TSNE_SAMPLE)
    tsne_sample = controls[2].select_slider("t-SNE sample", [500, 1000, 2000, 3000, 5000], key=TSNE_SIZE_KEY,
                                            help="Random test digits (seeded) t-SNE runs on.")
digits = [d for d in st.pills("Digits shown", list(range(10)), selection_mode="multi", key=DIGITS_KEY,
                                       default=list(range(10)), help="Click a digit to hide or show it in the plots.")
          if d in range(10)]
st.toggle("Show the digit under the mouse", key=HOVER_KEY,
          help=f"Adds a 2-D view of up to {HOVER_SAMPLE:,} of the digits under each plot, where the mouse shows "
               "the digit itself, not only its label (3-D views: their first two axes).")

state.kept(ENDS_KEYS[0], 0)
state.kept(ENDS_KEYS[1], 1)
state.kept(SHOW_PATH_KEY, True)
path_ends = tuple(min(max(int(st.session_state[k]), 0), last_row) for k in ENDS_KEYS)
drawn = st.session_state.get(state.DRAWN_DIGIT_KEY)
shown_count = min(tsne_sample, len(labels)) if method == "tsne" else len(labels)
notes = [f"{shown_count:,} of the {len(labels):,} test digits (a seeded random sample: t-SNE is slow)"
         if method == "tsne" else f"{len(labels):,} test digits",
         f"from {data.source_label}, coloured by their label; hover a point for its label and test number."]
if selectable:
    notes.append("Click a point, or drag a box (or pick the lasso in the toolbar), to see those digits and their "
                 "reconstructions below.")
else:
    notes.append("Streamlit cannot select points in a 3-D plot: pick a digit with the 2-D view or by number below.")
if drawn is not None:
    notes.append("★ is your digit from the Draw page (◆ in 3-D), embedded by each model and placed with the same "
                 "projection" + (" (t-SNE cannot place new points: it sits at its nearest neighbour's spot)."
                                 if method == "tsne" else "."))
else:
    notes.append("Draw a digit on the Draw page to see where it lands here.")
if st.session_state[SHOW_PATH_KEY] and method != "tsne":
    notes.append(f"Black line: the path from test #{path_ends[0]} to test #{path_ends[1]} (below).")
st.caption(" ".join(notes))

pair = default_pair(usable, latent, selected)
entries = {}
for kind, column in zip(KINDS, st.columns(2)):
    with column:
        entries[kind] = model_column(kind, latent, view, labels, digits, drawn, tsne_sample, usable, pair[kind],
                                     path_ends if st.session_state[SHOW_PATH_KEY] else None)

if any(entries.values()):
    st.subheader("Picked digits")
    st.columns(3)[0].number_input(f"Test digit by number (0–{last_row:,})", 0, last_row,
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

if any(entries.values()):
    st.subheader("What the decoders make of the latent space")
    prior_samples(entries)
    ends = st.columns([1, 1, 2])
    ends[0].number_input("Path from test digit", 0, last_row, key=ENDS_KEYS[0])
    ends[1].number_input("to test digit", 0, last_row, key=ENDS_KEYS[1])
    ends[2].toggle("Draw the path on the plots above", key=SHOW_PATH_KEY)
    interpolation_strips(entries, path_ends, labels)
    if latent in (2, 3):
        latent_explorer(entries)
