"""What the latent-space pages say and read, without Streamlit: the sentence comparing the AE's and the
VAE's cluster scores (Home and Latent space), the test-set rows picked in a Plotly chart, which of them
are shown and how they are summed up, and which models the Latent space page compares."""
from __future__ import annotations

import math

import numpy as np

SCORE_NAMES = {
    "knn_accuracy": "k-NN accuracy",
    "silhouette": "silhouette",
    "size_ratio": "cluster size ratio",
}
HIGHER_IS_TIGHTER = {"knn_accuracy": True, "silhouette": True, "size_ratio": False}
SCORE_FORMATS = {"knn_accuracy": "{:.1%}", "silhouette": "{:.3f}", "size_ratio": "{:.2f}"}  # as the Latent page's table


def compare_cluster_scores(ae: dict[str, float], vae: dict[str, float]) -> str:
    """One plain sentence saying, score by score, whether the VAE's clusters come out tighter than the AE's.

    Says what the numbers show, whether or not that agrees with the report. Each score is compared as it is
    shown (the table's rounding): two that print the same are a tie, not a win.
    """
    vae_wins, ae_wins = [], []
    for key, name in SCORE_NAMES.items():
        if key not in ae or key not in vae:
            continue
        shown_ae, shown_vae = SCORE_FORMATS[key].format(ae[key]), SCORE_FORMATS[key].format(vae[key])
        if shown_ae == shown_vae:
            continue
        vae_better = (vae[key] > ae[key]) == HIGHER_IS_TIGHTER[key]
        if vae_better:
            vae_wins.append(f"{name} ({shown_vae} vs {shown_ae})")
        else:
            ae_wins.append(f"{name} ({shown_ae} vs {shown_vae})")
    if not vae_wins and not ae_wins:
        return "The AE and the VAE score the same."
    parts = []
    if vae_wins:
        parts.append("the VAE scores better on " + ", ".join(vae_wins))
    if ae_wins:
        parts.append("the AE scores better on " + ", ".join(ae_wins))
    verdict = ("here the VAE's clusters are tighter, as the report says" if not ae_wins else
               "here the AE's clusters are tighter, unlike the report" if not vae_wins else
               "these checkpoints give a mixed picture")
    return "On these checkpoints " + "; ".join(parts) + f": {verdict}."


def selection_to_rows(selection_event, trace_rows: list | None = None, n_rows: int | None = None) -> list[int]:
    """Dataset rows the user selected in a st.plotly_chart selection event, in order, without repeats.

    Each selected point's row comes from its customdata (a row number, or a list whose first item
    is one) — robust to figures with one trace per digit, where point_index counts within a trace.
    Points without customdata are mapped through `trace_rows[curve_number][point_index]` when given,
    else skipped (e.g. a "your digit" marker). The event comes from the browser, so anything that is
    not a whole number in [0, n_rows) is skipped too.
    """
    if not isinstance(selection_event, dict):
        return []
    selection = selection_event.get("selection")
    points = selection.get("points") if isinstance(selection, dict) else None
    rows: list[int] = []
    seen = set()
    for point in points if isinstance(points, list) else []:
        if not isinstance(point, dict):
            continue
        custom = point.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        row = None
        if custom is not None:
            row = _whole_number(custom)
        elif trace_rows is not None:
            curve, index = _whole_number(point.get("curve_number")), _whole_number(point.get("point_index"))
            if curve is not None and index is not None and 0 <= curve < len(trace_rows) and 0 <= index < len(trace_rows[curve]):
                row = int(trace_rows[curve][index])
        if row is None or row < 0 or (n_rows is not None and row >= n_rows) or row in seen:
            continue
        seen.add(row)
        rows.append(row)
    return rows


def _whole_number(value) -> int | None:
    """An int from a browser's JSON value (an int, or a float with no fraction), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value)


def sample_selection(rows: list[int], labels: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """Up to n of the selected rows to show, spread over the digits selected: one of each digit in turn,
    the most selected digit first, each digit's rows in a seeded random order.

    The first n rows would be the lowest-numbered ones, which says nothing about a mixed selection.
    """
    rows = list(dict.fromkeys(int(r) for r in rows))
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    by_digit = {}
    for digit in digit_counts(rows, labels):
        members = [r for r in rows if labels[r] == digit]
        by_digit[digit] = [members[i] for i in rng.permutation(len(members))]
    shown = []
    while len(shown) < min(n, len(rows)):
        for members in by_digit.values():
            if members and len(shown) < n:
                shown.append(members.pop(0))
    return shown


def hover_points(rows: np.ndarray, labels: np.ndarray, digits: list[int], n: int, seed: int = 0) -> np.ndarray:
    """Positions (into `rows`, the test rows a projection has coordinates for) of the points the hover view
    draws: those whose label is among `digits`, a seeded random n of them when there are more, in order."""
    shown = np.flatnonzero(np.isin(np.asarray(labels)[np.asarray(rows)], digits))
    if len(shown) > n:
        shown = np.sort(np.random.default_rng(seed).choice(shown, n, replace=False))
    return shown


def digit_counts(rows: list[int], labels: np.ndarray) -> dict[int, int]:
    """Digit → how many of the rows carry that label, the most frequent first (ties: the smaller digit)."""
    counts = np.bincount(np.asarray(labels)[list(rows)].astype(np.int64), minlength=10) if len(rows) else np.zeros(10)
    return {int(d): int(counts[d]) for d in sorted(np.flatnonzero(counts), key=lambda d: (-counts[d], d))}


def selection_summary(rows: list[int], labels: np.ndarray) -> str:
    """'312 selected: 120 × 3, 98 × 2, 94 × 8' — how many rows, and how many of each digit."""
    counts = digit_counts(rows, labels)
    return f"{len(rows):,} selected: " + ", ".join(f"{n:,} × {digit}" for digit, n in counts.items())


def models_of_size(entries: list, kind: str, latent: int) -> list:
    """The usable registry entries of this kind and latent size, in the registry's order (shipped first)."""
    return [e for e in entries if e.metadata["kind"] == kind and e.metadata["latent_dim"] == latent]


def default_pair(entries: list, latent: int, selected=None) -> dict[str, str | None]:
    """kind ('ae', 'vae') → path of the model to show for this latent size: the sidebar's selected model for
    its own kind when it has this size, else the kind's first usable model (the shipped one if present)."""
    pair = {}
    for kind in ("ae", "vae"):
        options = models_of_size(entries, kind, latent)
        if selected is not None and selected in options:
            pair[kind] = str(selected.path)
        else:
            pair[kind] = str(options[0].path) if options else None
    return pair


def shown_digits(values) -> list[int]:
    """The digits a filter holds, 0–9 only, in digit order: the legend keeps one order whichever digit was
    clicked back in last (the pills hand them over in click order)."""
    return sorted({int(v) for v in values if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   and 0 <= v <= 9})


def positions_in(rows: np.ndarray, picked: list[int]) -> list[int]:
    """Positions into `rows` (one trace's test rows) of the picked rows: the points Plotly draws as selected."""
    return np.flatnonzero(np.isin(np.asarray(rows), np.asarray(list(picked), dtype=np.int64))).tolist()


def neighbour_caption(row: int, label: int, distance: float) -> str:
    return f"#{row} · {label} · d={distance:.2f}"


def code_text(z) -> str:
    """'(0.12, -1.30, 2.00)': a latent code as the page prints it."""
    return "(" + ", ".join(f"{float(v):.2f}" for v in z) + ")"
