"""The Latent space page in Streamlit's AppTest, with real MNIST and the shipped checkpoints: every latent
size renders both models' plots, the cluster table holds numbers, picking by number shows that digit,
and the Draw page's digit appears in the plots. One AppTest session walks through the page."""
import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from studio.common import DRAWN_DIGIT_KEY, MODEL_KEY

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
SHIPPED = [f"{kind}-z{z}.pt" for kind in ("ae", "vae") for z in (2, 3, 64)]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


@pytest.fixture(scope="module")
def page():
    """One session on the Latent space page, shared by the tests below (in file order)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state[MODEL_KEY] = str(CHECKPOINTS / "vae-z64.pt")
    at.switch_page("pages/latent.py").run()
    return at


def figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def assert_score_table(at):
    table = at.table[0].value
    assert list(table["model"]) == ["AE", "VAE"]
    for accuracy, silhouette, ratio in zip(table["k-NN accuracy (k=5)"], table["silhouette"],
                                           table["cluster size ratio"]):
        assert 0.0 <= float(accuracy.rstrip("%")) <= 100.0
        assert -1.0 <= float(silhouette) <= 1.0
        assert float(ratio) >= 1.0
    # The verdict under the table quotes the table's own numbers, whichever model they favour.
    sentence = next(m.value for m in at.markdown if m.value.startswith(("On these checkpoints", "The AE and")))
    silhouettes = list(table["silhouette"])
    assert silhouettes[0] == silhouettes[1] or all(value in sentence for value in silhouettes)


def test_latent_64_defaults_to_the_sidebar_models_size_and_shows_pca_plots_and_scores(page):
    assert_clean(page)
    assert page.radio(key="latent_size").value == 64
    ae, vae = figures(page)
    assert [t["name"] for t in ae["data"]] == [str(d) for d in range(10)]  # one trace per digit
    assert all(t["type"] == "scattergl" for t in ae["data"] + vae["data"])
    assert ae["layout"]["xaxis"]["title"]["text"].startswith("PC1 (")
    assert_score_table(page)


def test_latent_3_shows_rotatable_3d_plots_with_a_2d_view_to_select_in(page):
    page.radio(key="latent_size").set_value(3).run()
    assert_clean(page)
    assert all(t["type"] == "scatter3d" for f in figures(page) for t in f["data"])
    assert any("cannot select points in a 3-D plot" in c.value for c in page.caption)
    assert_score_table(page)
    page.radio(key="latent_view_3").set_value("2-D: z₁ vs z₂ (select points)").run()
    assert_clean(page)
    assert all(t["type"] == "scattergl" for f in figures(page) for t in f["data"])


def test_latent_2_shows_plots_scores_and_the_decoded_latent_planes(page):
    page.radio(key="latent_size").set_value(2).run()
    assert_clean(page)
    ae, vae = figures(page)
    assert ae["layout"]["xaxis"]["title"]["text"] == "z₁"
    assert_score_table(page)
    assert any(s.value == "The latent plane, decoded" for s in page.subheader)
    captions = [caption for image in page.get("image") for caption in image.captions]
    for kind in ("AE", "VAE"):
        assert any(c.startswith(f"{kind}: z₁ from") for c in captions)


def test_picking_a_digit_by_number_shows_it_with_its_label(page, mnist):
    page.number_input(key="latent_index").set_value(123).run()
    assert_clean(page)
    label = int(mnist.test_labels[123])
    assert any(m.value.startswith(f"**Test digit #123**, labelled **{label}**") for m in page.markdown)


def test_the_draw_pages_digit_is_marked_in_both_plots(page, mnist):
    page.session_state[DRAWN_DIGIT_KEY] = mnist.test_images[7, 0].numpy().astype(np.float32) / 255.0
    page.run()
    assert_clean(page)
    for figure in figures(page):
        star = [t for t in figure["data"] if t["name"] == "your digit"]
        assert len(star) == 1 and star[0]["marker"]["symbol"] == "star"
        assert figure["layout"]["annotations"][0]["text"] == "your digit"
    assert any("★ is your digit from the Draw page" in c.value for c in page.caption)


def test_tsne_view_runs_on_a_subsample(page):
    page.radio(key="latent_size").set_value(64).run()
    page.session_state["latent_tsne_sample"] = 500  # the smallest sample: t-SNE is slow
    page.radio(key="latent_view_64").set_value("t-SNE 2-D on a subsample (slow)").run()
    assert page.select_slider(key="latent_tsne_sample").value == 500
    assert_clean(page)
    for figure in figures(page):
        assert figure["layout"]["xaxis"]["title"]["text"] == "t-SNE 1"
        digits = [t for t in figure["data"] if t["name"] != "your digit"]
        assert sum(trace_length(t["x"]) for t in digits) == 500
    assert any("nearest neighbour" in c.value for c in page.caption)


def trace_length(values) -> int:
    """Length of a plotly array: a list, or a typed array {"dtype": "f8", "bdata": base64}."""
    if isinstance(values, list):
        return len(values)
    return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize


def test_the_latent_size_follows_the_sidebar_model_on_a_fresh_visit():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state[MODEL_KEY] = str(CHECKPOINTS / "ae-z3.pt")
    at.switch_page("pages/latent.py").run()
    assert_clean(at)
    assert at.radio(key="latent_size").value == 3
    assert re.search(r"AE · latent 3", " ".join(s.value for s in at.subheader))
