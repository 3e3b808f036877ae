"""The Home page in Streamlit's AppTest: the report's findings, links to each figure's page, and the
shipped models' own numbers (read from the checkpoints, computed live), with real MNIST."""
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from studio.common import THRESHOLD_KEY
from vae import registry

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


def home(rule=None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
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
    assert ((scores["k-NN accuracy"] >= 0) & (scores["k-NN accuracy"] <= 1)).all()
    assert ((scores["silhouette"] >= -1) & (scores["silhouette"] <= 1)).all()
    assert any(m.value.startswith("On these checkpoints") or m.value.startswith("The AE and the VAE")
               for m in at.markdown)  # the computed AE-vs-VAE sentence, whichever way it comes out


def test_the_threshold_line_follows_the_rule_chosen_on_the_histogram_page():
    default = threshold_sentence(home())
    assert "99th percentile" in default and "vae-z64" in default
    median = threshold_sentence(home(("percentile", 50.0)))
    assert "50th percentile" in median
    train_share = float(re.search(r"\*\*([\d.]+)%\*\* of training images", median).group(1))
    assert train_share == pytest.approx(50.0, abs=0.1)  # half the training images lie above their median
