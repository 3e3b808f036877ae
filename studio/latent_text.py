"""What the latent-space pages say and read, without Streamlit: the sentence comparing the AE's and the
VAE's cluster scores (Home and Latent space), and the test-set rows picked in a Plotly chart."""
from __future__ import annotations

SCORE_NAMES = {
    "knn_accuracy": "k-NN accuracy",
    "silhouette": "silhouette",
    "size_ratio": "cluster size ratio",
}
HIGHER_IS_TIGHTER = {"knn_accuracy": True, "silhouette": True, "size_ratio": False}


def compare_cluster_scores(ae: dict[str, float], vae: dict[str, float]) -> str:
    """One plain sentence saying, score by score, whether the VAE's clusters come out tighter than the AE's.

    Says what the numbers show, whether or not that agrees with the report.
    """
    vae_wins, ae_wins = [], []
    for key, name in SCORE_NAMES.items():
        if key not in ae or key not in vae or ae[key] == vae[key]:
            continue
        vae_better = (vae[key] > ae[key]) == HIGHER_IS_TIGHTER[key]
        if vae_better:
            vae_wins.append(f"{name} ({vae[key]:.3f} vs {ae[key]:.3f})")
        else:
            ae_wins.append(f"{name} ({ae[key]:.3f} vs {vae[key]:.3f})")
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


def selection_to_rows(selection_event, trace_rows: list | None = None) -> list[int]:
    """Dataset rows the user selected in a st.plotly_chart selection event, in order, without repeats.

    Each selected point's row comes from its customdata (a row number, or a list whose first item
    is one) — robust to figures with one trace per digit, where point_index counts within a trace.
    Points without customdata are mapped through `trace_rows[curve_number][point_index]` when given,
    else skipped (e.g. a "your digit" marker).
    """
    if not selection_event:
        return []
    selection = selection_event.get("selection") or {}
    rows: list[int] = []
    seen = set()
    for point in selection.get("points") or []:
        row = None
        custom = point.get("customdata")
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if custom is not None:
            row = int(custom)
        elif trace_rows is not None:
            curve, index = point.get("curve_number"), point.get("point_index")
            if curve is not None and index is not None and curve < len(trace_rows) and index < len(trace_rows[curve]):
                row = int(trace_rows[curve][index])
        if row is not None and row not in seen:
            seen.add(row)
            rows.append(row)
    return rows
