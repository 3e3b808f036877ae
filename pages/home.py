"""Home: what the report found, where each figure lives in the app, and the shipped models' own
numbers behind it, computed live."""
import streamlit as st

from studio import caches, draw_inputs, navigation, state
from studio.latent_text import default_pair
from vae import benchmark, cluster_compare, shift_benchmark
from vae.data import default_data_root
from vae.scores import fraction_above
from vae.server import registry

PAGE_SUMMARIES = {
    "draw": "draw, upload or pick a digit; see what each model corrects and whether it is an anomaly",
    "latent": "the digits' codes under every model, 2-D and 3-D, and what each point decodes to",
    "histograms": "the error of every training and test image, the threshold, and what it flags",
    "benchmark": "how well each score flags flawed digits, non-digits and other digits, measured",
}
LATENT_SIZES = (2, 3)  # the report's Fig. 4/5 sizes, the ones the Latent page shows


def shipped_models_table() -> list[dict]:
    rows = []
    for entry in caches.checkpoint_entries():
        if not (entry.shipped and entry.ok):
            continue
        m = entry.metadata
        loss = m.get("test_loss") or {}
        rows.append({
            "model": entry.name, "kind": m["kind"].upper(), "latent": m["latent_dim"],
            "epochs": m.get("epochs"), "training images": m.get("train_images"), "data": m.get("data_source"),
            "test loss": loss.get("total"), "reconstruction": loss.get("recon"), "KL": loss.get("kl"),
        })
    return rows


def show_cluster_scores() -> None:
    """Both numbers of the report's claim at both small latent sizes, for the AE and VAE the sidebar offers (the
    selected model for its own kind and size, else the shipped one), and which model wins at which size."""
    entries, selected = caches.usable_entries(), state.selected_entry()
    rows, by_latent = [], {}
    for latent in LATENT_SIZES:
        pair = default_pair(entries, latent, selected)
        if None in pair.values():
            continue
        ae, vae = (next(e for e in entries if str(e.path) == pair[kind]) for kind in ("ae", "vae"))
        differences = caches.get_cluster_comparison(str(ae.path), ae.mtime, str(vae.path), vae.mtime, default_data_root())
        by_latent[latent] = differences
        knn, silhouette = differences
        for entry, kind in ((ae, "ae"), (vae, "vae")):
            rows.append({"latent": latent, "model": entry.name, "k-NN accuracy": 100 * getattr(knn, kind),
                         "silhouette": getattr(silhouette, kind)})
    if not rows:
        st.caption("No AE and VAE pair with a 2- or 3-dimensional latent in checkpoints/ to measure.")
        return
    st.dataframe(rows, hide_index=True, column_config={
        "k-NN accuracy": st.column_config.NumberColumn(format="%.1f%%"),  # one decimal, as every share in the app
        "silhouette": st.column_config.NumberColumn(format="%.3f"),
    })
    for latent, differences in by_latent.items():
        st.markdown(cluster_compare.describe(latent, differences))
    st.markdown(cluster_compare.verdict(by_latent))
    st.caption(f"On the {len(caches.data().test_labels):,} test digits, in the latent itself. k-NN accuracy: how "
               "often a digit's 5 nearest neighbours name it correctly; silhouette (−1…1): how tight and separate the "
               f"digit clusters are. A gap under {cluster_compare.TIE_SE:g} standard errors of the test digits' own "
               "spread (paired, digit by digit) is called a tie. Each kind and size is one trained model: how far "
               "another training seed would move these numbers is not measured, so a small win may not hold up.")


def show_threshold() -> None:
    entry = state.selected_entry()
    if entry is None:
        st.caption("No usable model selected.")
        return
    train_errors, test_errors = caches.scores_for(entry)
    limit = state.current_threshold(train_errors)
    train_share, test_share = fraction_above(train_errors, limit), fraction_above(test_errors, limit)
    comparison = "more often than" if test_share > train_share else "no more often than"
    st.markdown(f"For **{entry.name}** (chosen in the sidebar) the threshold, the "
                f"{state.threshold_description()}, is **{limit:.1f}**. Above it: **{train_share:.1%}** of "
                f"the {len(train_errors):,} training images it learned from and **{test_share:.1%}** of the "
                f"{len(test_errors):,} unseen test images — unseen digits cross it "
                f"{comparison} seen ones.")


st.title("Conv-VAE anomaly studio")
st.markdown("A live companion to a research report on **convolutional autoencoders (AE) and variational "
            "autoencoders (VAE) trained on MNIST handwritten digits**. A VAE squeezes each digit through a "
            "small latent code and rebuilds the *typical* digit from it, so what it cannot rebuild (a flaw, "
            "something it never learned) stands out: the reconstruction error is an anomaly score. Every "
            "number in this app is computed from the models in `checkpoints/`, none is copied from the report.")

st.markdown("**The pages**")
for name, (title, icon) in list(navigation.PAGES.items())[1:]:
    st.page_link(navigation.page_file(name), label=title, icon=icon)
    st.caption(PAGE_SUMMARIES[name])

st.header("What the report found, and where to see it")

st.subheader("Fig. 4 / 5 — latent clusters")
st.markdown("With a 2- or 3-dimensional latent, both models sort the digits into clusters without ever seeing "
            "a label. The report finds the AE's clusters differing in size with wide empty gaps between them, and "
            "the VAE's tighter, more equal in size and filling the gaps — the sign of a model that generalises. "
            "Measured here on this app's models, at both sizes:")
st.page_link(navigation.page_file("latent"), label="Latent space: the clusters of every model, 2-D and 3-D",
             icon=":material/scatter_plot:")
show_cluster_scores()

st.subheader("Fig. 6 — local correction")
st.markdown("A VAE with a 64-dimensional latent, given a digit it never saw, returns the same digit with its "
            "local flaws corrected — faint strokes filled in, small protrusions removed — and no misreading. "
            "Comparing input and output finds the flawed spots: draw, upload or pick a digit, add a flaw, and see "
            "the corrected spots circled.")
st.page_link(navigation.page_file("draw"), label="Draw & correct: the corrected spots circled", icon=":material/draw:")

st.subheader("Fig. 7 — error as an anomaly score")
st.markdown("Histograms of the reconstruction error of training images and of unseen test images overlap, "
            "but in the high-error tail the share of unseen images rises. So an error above a threshold set on "
            "the training images flags an anomaly. The threshold rule set there is the one every page uses.")
st.page_link(navigation.page_file("histograms"), label="Error histograms: the tail and the threshold",
             icon=":material/bar_chart:")
show_threshold()

st.subheader("Fig. 8 — too small a latent over-corrects")
st.markdown("With only a 3-dimensional latent, the VAE rebuilds every digit as a blurry, typical one: the "
            "outputs look alike, and some digits come back as a different digit. The link opens Draw & correct on a "
            "test digit: scroll to \"The same digit through other models\".")
st.page_link(navigation.page_file("draw"), label="Draw & correct: latent 3 vs 64, AE vs VAE", icon=":material/draw:",
             query_params=draw_inputs.OPEN_ON_TEST_DIGIT)

st.subheader("Why convolutions (report §1–2)")
st.markdown("The report's reason for a convolutional model at all: a fully-connected model used for anomaly "
            "detection needs its inputs aligned first (事前のずれ補正) or shifted data in its training, while "
            "a convolution, its weights shared across positions (eq. 1), answers the same wherever the pattern "
            "sits. The app centres every drawn digit by default — that very alignment — so here it is measured "
            "against a fully-connected baseline with as many parameters.")
st.markdown(shift_benchmark.conclusion(benchmark.read_results("shift")))
st.markdown("On Draw & correct, switch centring off and move the digit to see the conv and the fully-connected "
            "model side by side; the Detection benchmark has the error, false alarms and AUROC against the shift, "
            "3 seeds.")
st.page_link(navigation.page_file("draw"), label="Draw & correct: conv vs fully-connected", icon=":material/draw:")
st.page_link(navigation.page_file("benchmark"), label="Detection benchmark: position shifts", icon=":material/fact_check:")

st.header("The shipped models")
rows = shipped_models_table()
if rows:
    st.dataframe(rows, hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.1f") for name in ("test loss", "reconstruction", "KL")})
    st.caption("Test loss in nats per image: reconstruction (binary cross-entropy over the 784 pixels) plus, "
               "for the VAE, the KL divergence of its latent code from the standard normal prior. Read from "
               "each checkpoint's own metadata.")
else:
    st.warning(f"None of the shipped models ({', '.join(registry.SHIPPED)}) is in checkpoints/ and usable.")
