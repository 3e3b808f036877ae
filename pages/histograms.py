"""Error histograms (report Fig. 7): reconstruction error of every training and test image, and the threshold."""
import functools

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from studio import caches, state
from studio.display import upscale
from studio.retrain import train_one_hint
from vae import benchmark
from vae.data import FALLBACK_SUBSET
from vae.detector import DETECTOR_SCORES, verdict_scores
from vae.flaws import FLAW_KINDS
from vae.latent import reconstruct_rows
from vae.scores import (
    THRESHOLD_RULES,
    Confusion,
    clicked_threshold,
    confusion_at,
    expected_share_of_test,
    fraction_above,
    percentile_of,
    share_of_test_above,
    share_of_test_per_bin,
    shared_bins,
    split_by_digits,
    split_histogram,
    threshold,
    top_errors,
)

TRAIN_COLOUR, TEST_COLOUR = "#1f77b4", "#ff7f0e"  # the report's blue and orange
OTHER_COLOUR = "#d62728"  # a one-class model's test images of the digits it never saw
RULE_KEY, PERCENTILE_KEY, K_KEY, TAIL_KEY = "hist_rule", "hist_percentile", "hist_k", "hist_tail"
ANOMALY_KEY = "hist_anomalies"
SCORE_KEY = state.HISTOGRAM_SCORE_KEY  # this page's own: the Draw verdict keeps its own score (default "guarded")
PAGE_SCORE = "blurred_error"  # the report's reconstruction error, blurred 1 px; precomputed for the shipped models
CLICK_KEY = "hist_clicked_x"  # session state: the x a click on a histogram asked for, applied before the widgets
PERCENTILE_RANGE = (50.0, 100.0)
K_RANGE = (0.0, 10.0)
TAIL_PERCENTILES = [90.0, 95.0, 99.0, 99.9]
MIN_IMAGES_FOR_SHARE = 20  # a bin with fewer images gives no meaningful test share
GALLERY_SIZE = 16
GALLERY_COLUMNS = 8
HISTOGRAM_FLAWS_TEXT = (f"{caches.HISTOGRAM_FLAWS_PER_KIND:,} test digits with each synthetic flaw ("
                        + ", ".join(FLAW_KINDS[1:]) + ")")


def digits_phrase(digits: list[int]) -> str:
    return f"digit{'s' if len(digits) > 1 else ''} {', '.join(map(str, digits))}"


def threshold_widget_defaults() -> tuple[str, float, float]:
    """(rule, percentile, k) the threshold widgets start from on a first visit: the stored choice."""
    rule, param = state.current_threshold_rule()
    p = param if rule == "percentile" and param is not None else 99.0
    k = param if rule == "mean_k_sigma" and param is not None else 3.0
    return rule, float(np.clip(p, *PERCENTILE_RANGE)), float(np.clip(k, *K_RANGE))


def bars(fig, edges, values, counts, name, colour, total, **where):
    centres = (edges[:-1] + edges[1:]) / 2
    fig.add_trace(go.Bar(x=centres, y=values, width=np.diff(edges), name=name, marker_color=colour, opacity=0.6,
                         customdata=np.stack([edges[:-1], edges[1:], counts], axis=1),
                         hovertemplate=(f"{name}: %{{y:.1f}}% of {total:,} images (%{{customdata[2]:,}})<br>"
                                        "error %{customdata[0]:.1f} – %{customdata[1]:.1f}<extra></extra>")),
                  **where)


def click_layer(fig, edges, height, **where):
    """Invisible full-height bars under the histogram's, one per bin: a click anywhere over a bin (not only on a
    bar, often too short to hit in the tail) selects that bin's x."""
    centres = (edges[:-1] + edges[1:]) / 2
    fig.add_trace(go.Bar(x=centres, y=np.full(len(centres), height), width=np.diff(edges), marker_color="rgba(0,0,0,0)",
                         hoverinfo="none", showlegend=False, name="click to set the threshold"), **where)


def histogram_figure(groups, edges, limit) -> go.Figure:
    """groups: (errors, name, colour) per histogram, all on the same bins."""
    fig = go.Figure()
    click_layer(fig, edges, max(split_histogram(errors, edges)[1].max() for errors, _, _ in groups if len(errors)))
    for errors, name, colour in groups:
        counts, percent = split_histogram(errors, edges)
        bars(fig, edges, percent, counts, name, colour, len(errors))
    fig.add_vline(x=limit, line_dash="dash", line_color="red", annotation_text="threshold")
    fig.update_layout(barmode="overlay", height=380, margin=dict(t=30, b=0), xaxis_title="reconstruction error",
                      yaxis_title="% of the split's images", legend=dict(orientation="h", y=1.1))
    return fig


def tail_figure(groups, train, test, edges, limit, expected) -> go.Figure:
    """The groups' bars on top; below, the share of each bin's images (training and all test) that are test images."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.06)
    click_layer(fig, edges, max(split_histogram(errors, edges)[1].max() for errors, _, _ in groups if len(errors)),
                row=1, col=1)
    for errors, name, colour in groups:
        group_counts, percent = split_histogram(errors, edges)
        bars(fig, edges, percent, group_counts, name, colour, len(errors), row=1, col=1)
    counts = {"training": split_histogram(train, edges)[0], "test": split_histogram(test, edges)[0]}
    share = share_of_test_per_bin(counts["training"], counts["test"], MIN_IMAGES_FOR_SHARE)
    centres = (edges[:-1] + edges[1:]) / 2
    fig.add_trace(go.Scatter(x=centres, y=100 * share, mode="markers+lines", name="test share of the bin",
                             line=dict(color=TEST_COLOUR), connectgaps=False,
                             customdata=np.stack([counts["test"], counts["training"] + counts["test"]], axis=1),
                             hovertemplate="%{y:.1f}% test (%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>"),
                  row=2, col=1)
    fig.add_hline(y=100 * expected, line_dash="dot", line_color="gray", row=2, col=1,
                  annotation_text=f"{expected:.1%} expected", annotation_position="bottom right")
    for row in (1, 2):
        fig.add_vline(x=limit, line_dash="dash", line_color="red", row=row, col=1)
    fig.update_layout(barmode="overlay", height=520, margin=dict(t=30, b=0), legend=dict(orientation="h", y=1.08))
    fig.update_yaxes(title_text="% of the split's images", row=1, col=1)
    fig.update_yaxes(title_text="test share (%)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="reconstruction error", row=2, col=1)
    return fig


def threshold_from_click(x: float, train_errors: np.ndarray) -> None:
    """Move the threshold widgets to the error `x` a visitor clicked: the k of mean + k·σ under that rule, else
    the training percentile at `x` (the training maximum's rule becomes the percentile rule)."""
    if st.session_state.get(RULE_KEY) == "mean_k_sigma":
        k = (x - train_errors.mean()) / (train_errors.std() or 1.0)
        st.session_state[K_KEY] = round(float(np.clip(k, *K_RANGE)), 1)
    else:
        st.session_state[RULE_KEY] = "percentile"
        st.session_state[PERCENTILE_KEY] = round(float(np.clip(percentile_of(x, train_errors), *PERCENTILE_RANGE)), 1)


def remember_click(chart_key: str, low: float, high: float) -> None:
    """on_select of a histogram: keep the clicked error for the next run, which sets the widgets from it."""
    x = clicked_threshold(st.session_state.get(chart_key), low, high)
    if x is not None:
        st.session_state[CLICK_KEY] = x


def clickable_chart(fig, key: str, edges: np.ndarray) -> None:
    st.plotly_chart(fig, key=key, selection_mode=("points", "box"),
                    on_select=functools.partial(remember_click, key, float(edges[0]), float(edges[-1])))


def confusion_table(confusion: Confusion, anomaly_name: str, normal_name: str) -> list[dict]:
    return [{"": f"{anomaly_name} (anomalies)", "flagged": confusion.true_positives, "passed": confusion.false_negatives},
            {"": f"{normal_name} (normal)", "flagged": confusion.false_positives, "passed": confusion.true_negatives}]


def show_confusion(entry, score_name: str, normal: np.ndarray, normal_name: str, limit: float) -> None:
    """Anomagram's view: at this threshold, what is flagged of the normal test digits and of each of the
    Detection benchmark's anomaly sets."""
    st.subheader("At this threshold: test digits against the benchmark's anomalies")
    anomalies = caches.anomaly_scores_for(entry, score_name)
    chosen = state.offered(st.radio("Anomalies", [*anomalies, "both"], horizontal=True,
                                    key=state.kept(ANOMALY_KEY, "both", [*anomalies, "both"])), [*anomalies, "both"])
    positives = np.concatenate(list(anomalies.values())) if chosen == "both" else anomalies[chosen]
    name = "flawed digits and non-digits" if chosen == "both" else chosen
    confusion = confusion_at(normal, positives, limit)
    table_column, numbers = st.columns([3, 2])
    table_column.dataframe(confusion_table(confusion, name, normal_name), hide_index=True)
    precision, recall = confusion.precision, confusion.recall
    first, second, third = numbers.columns(3)
    first.metric("Precision", "—" if np.isnan(precision) else f"{precision:.1%}",
                 help="Of the images flagged, the share that are anomalies.")
    second.metric("Recall", f"{recall:.1%}", help="Of the anomalies, the share flagged.")
    third.metric("False alarms", f"{confusion.false_alarm_rate:.1%}", help=f"Of the {normal_name}, the share flagged.")
    st.caption(f"Normal: the {len(normal):,} {normal_name}. Anomalies: {HISTOGRAM_FLAWS_TEXT} and "
               f"{len(anomalies['non-digits']):,} non-digits (letters, shapes, scribbles, noise, scikit-learn's 8×8 "
               "digits; the evaluation seed, never used to choose anything), as on the Detection benchmark page. "
               "Precision depends on how many of each there are: here about one anomaly for every "
               f"{len(normal) / max(len(positives), 1):.0f} normal digits.")


st.title("Error histograms")
st.markdown("The reconstruction error of the training and every test image (report Fig. 7; other anomaly scores "
            "can be picked below). Blue: training images, orange: test images the model never saw (for a one-class "
            "model: test images of its digits, and red: of the other digits). Images whose score passes the "
            "threshold are flagged as anomalies; the threshold rule chosen here (a training percentile, or mean + "
            "k·σ) is the one every page uses, each on its own score.")

entry = state.selected_entry()
if entry is None:
    st.error(f"No usable model on this server. {train_one_hint()}")
    st.stop()
try:
    data = caches.data()
    model, _ = caches.model_for(entry)
    options = verdict_scores(model)
    lines = benchmark.strength_lines(options)
    default = PAGE_SCORE if PAGE_SCORE in options else options[0]
    score_name = state.offered(st.selectbox("Score", options, key=state.kept(SCORE_KEY, default, options),
                                            format_func=lambda s: f"{s} — {lines[s]}",
                                            help="What is counted. The Draw page's verdict reads its own choice of "
                                            "score ('guarded' unless changed there); each score's measured strength "
                                            "is on the Detection benchmark page."), options)
    st.caption(f"**{score_name}**: {DETECTOR_SCORES[score_name]}.")
    if score_name == PAGE_SCORE:  # the report's Fig. 7 score: every training image, precomputed for the shipped models
        train_errors, test_errors = caches.scores_for(entry)
    else:
        train_errors, test_errors = caches.detector_scores_for(entry, score_name)
except Exception as exc:  # DataUnavailable, or a checkpoint that became unreadable since the scan
    st.error(f"Cannot score the images: {exc}")
    st.stop()
digits = entry.digits
test_labels = data.test_labels.numpy()
own_test, other_test = split_by_digits(test_errors, test_labels, digits)
digits_text = "all ten digits" if digits is None else digits_phrase(digits)
st.caption(f"Model: **{entry.short_label}** ({entry.details}; pick another in the sidebar) · "
           f"Data: {data.source_label} · {len(train_errors):,} training images scored (the ones the model was "
           f"trained on: {digits_text}) and {len(test_errors):,} test images.")
if data.source == FALLBACK_SUBSET:
    st.warning(f"MNIST itself is not available: these are the "
               f"{len(data.train_labels) + len(data.test_labels):,} digits of the offline fallback, "
               "so the histograms are coarser and the numbers differ from the report's.")
if digits is None:
    groups = [(train_errors, "training", TRAIN_COLOUR), (test_errors, "test", TEST_COLOUR)]
else:
    st.info(f"A one-class model: trained on {digits_text} only. Its threshold comes from its own "
            f"{len(train_errors):,} training images; the test images are split into its digits "
            f"({len(own_test):,}) and the other digits ({len(other_test):,}), which it should flag.")
    groups = [(train_errors, f"training ({digits_text})", TRAIN_COLOUR),
              (own_test, f"test, {digits_text}", TEST_COLOUR), (other_test, "test, other digits", OTHER_COLOUR)]

# --- threshold ------------------------------------------------------------------------------------------
st.subheader("Threshold")
st.caption("Set it with the controls, or click over a bar of either histogram below: the threshold moves to "
           "that error (with the chart's box-select tool, to a dragged box's left edge).")
clicked = st.session_state.pop(CLICK_KEY, None)
if clicked is not None:
    threshold_from_click(float(clicked), train_errors)
start_rule, start_percentile, start_k = threshold_widget_defaults()
controls = st.columns([2, 3])
rule = state.offered(controls[0].radio("Rule", list(THRESHOLD_RULES), format_func=THRESHOLD_RULES.get,
                                       key=state.kept(RULE_KEY, start_rule, THRESHOLD_RULES)), THRESHOLD_RULES)
if rule == "percentile":
    param = controls[1].slider("Training percentile", *PERCENTILE_RANGE, step=0.1, format="%.1f",
                               key=state.kept(PERCENTILE_KEY, start_percentile),
                               help="The threshold is the error below which this share of training images lies.")
elif rule == "mean_k_sigma":
    param = controls[1].slider("k (standard deviations above the training mean)", *K_RANGE, step=0.1,
                               format="%.1f", key=state.kept(K_KEY, start_k))
else:
    param = None
    controls[1].caption("The largest error of any training image: nothing the model trained on is flagged.")
st.session_state[state.THRESHOLD_KEY] = (rule, param)
limit = threshold(train_errors, rule, param)

expected = expected_share_of_test(len(train_errors), len(test_errors))
share_above, n_above = share_of_test_above(train_errors, test_errors, limit)
# Short labels: at 1024 px four metrics share the width and longer ones are cut off.
metrics = st.columns(4)
metrics[0].metric("Threshold (error)", f"{limit:.2f}", help=state.threshold_description())
metrics[1].metric("Training above", f"{fraction_above(train_errors, limit):.1%}",
                  help=f"Training images above the threshold: {int((train_errors > limit).sum()):,} of {len(train_errors):,}")
metrics[2].metric("Test above", f"{fraction_above(test_errors, limit):.1%}",
                  help=f"Test images above the threshold: {int((test_errors > limit).sum()):,} of {len(test_errors):,}")
metrics[3].metric("Test share above", "—" if n_above == 0 else f"{share_above:.1%}",
                  delta=None if n_above == 0 else f"{100 * (share_above - expected):+.1f} pts vs {expected:.1%}",
                  help=f"Of the {n_above:,} images above the threshold, the share that are test images. If error did "
                       f"not depend on having been trained on, it would be {expected:.1%} (the test split's share).")
if digits is not None:
    one_class = st.columns(4)
    one_class[1].metric(f"Test {digits_text} above", f"{fraction_above(own_test, limit):.1%}",
                        help=f"Test images of the model's own digits above the threshold: "
                             f"{int((own_test > limit).sum()):,} of {len(own_test):,} (false alarms).")
    one_class[2].metric("Other digits above", f"{fraction_above(other_test, limit):.1%}",
                        help=f"Test images of digits the model never saw, above the threshold: "
                             f"{int((other_test > limit).sum()):,} of {len(other_test):,}: the anomalies it should find.")

show_confusion(entry, score_name, own_test, "test digits" if digits is None else f"test {digits_text}", limit)

# --- histograms -----------------------------------------------------------------------------------------
st.subheader("All images")
edges = shared_bins(train_errors, test_errors, bins=80)
clickable_chart(histogram_figure(groups, edges, limit), "hist_chart_all", edges)
st.caption(f"{'Both splits' if digits is None else 'All three groups'} on the same bins, each as a percentage of its "
           f"own images ({len(train_errors):,} training against {len(test_errors):,} test images would otherwise "
           f"hide the smaller group's bars).")

st.subheader("The high-error tail")
tail_from = st.select_slider("Zoom into errors above the training percentile", TAIL_PERCENTILES, value=95.0,
                             key=TAIL_KEY, format_func=lambda p: f"{p:g}th")
tail_low = float(np.percentile(train_errors, tail_from))
tail_edges = shared_bins(train_errors, test_errors, bins=30, low=tail_low)
tail_share, tail_n = share_of_test_above(train_errors, test_errors, tail_low)
clickable_chart(tail_figure(groups, train_errors, test_errors, tail_edges, limit, expected), "hist_chart_tail", tail_edges)
if tail_n:
    ratio = tail_share / expected
    st.markdown(f"Above the training {tail_from:g}th percentile (error {tail_low:.1f}) lie {tail_n:,} images, "
                f"**{tail_share:.1%} of them test images**: {ratio:.2f}× the {expected:.1%} expected if test images "
                f"were reconstructed as well as training images. The report (Fig. 7b) finds the test share rising "
                f"in this tail.")
st.caption(f"Bottom: the share of each bin's images that are test images; bins with fewer than "
           f"{MIN_IMAGES_FOR_SHARE} images are left out. Bars are percentages of each whole split.")

# --- gallery --------------------------------------------------------------------------------------------
st.subheader(f"The {GALLERY_SIZE} test images with the highest error")
st.caption("Each pair: the test image, then the model's reconstruction.")
worst = top_errors(test_errors, GALLERY_SIZE).tolist()
model, _ = caches.model_for(entry)
reconstructions = reconstruct_rows(model, data.test_images, worst)
labels = test_labels
columns = st.columns(GALLERY_COLUMNS)
for i, (row, reconstruction) in enumerate(zip(worst, reconstructions)):
    pair = np.hstack([data.test_images[row, 0].numpy() / 255.0, np.ones((28, 1)), reconstruction])
    columns[i % GALLERY_COLUMNS].image(upscale(pair, 3), clamp=True,
                                       caption=f"#{row} · label {labels[row]} · error {test_errors[row]:.1f}")
