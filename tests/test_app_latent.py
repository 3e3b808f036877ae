"""The Latent space page in Streamlit's AppTest, with real MNIST and the shipped checkpoints: every latent
size renders both models' plots, the cluster table holds numbers, picking by number shows that digit,
and the Draw page's digit appears in the plots. One AppTest session walks through the page; each test sets
the view it checks (six relied on the tests before them and failed when run alone, with -k or --lf)."""
import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from studio import navigation
from studio.state import DRAWN_DIGIT_KEY, MODEL_KEY
from vae.checkpoint import checkpoint_dir, save_checkpoint
from vae.model import ConvVAE

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)
SHIPPED = [f"{kind}-z{z}.pt" for kind in ("ae", "vae") for z in (2, 3, 64)]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


@pytest.fixture(scope="module")
def page():
    """One session on the Latent space page, shared by the tests below (in file order); the sidebar holds the
    app's default model, as on a first visit."""
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
    at.switch_page(navigation.page_file("latent")).run()
    return at


def figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def digit_traces(figure: dict) -> list[str]:
    return [t["name"] for t in figure["data"] if t["name"] in [str(d) for d in range(10)]]


def image_captions(at) -> list[str]:
    return [caption for image in at.get("image") for caption in image.captions]


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


def test_a_first_visit_opens_on_the_reports_view_latent_3_in_3d(page):
    assert_clean(page)
    assert page.radio(key="latent_size").value == 3
    assert page.radio(key="latent_view_3").value == "3-D (drag to rotate)"
    ae, vae = figures(page)
    assert digit_traces(ae) == [str(d) for d in range(10)]  # one trace per digit
    assert all(t["type"] == "scatter3d" for t in ae["data"] + vae["data"])
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


def test_dragging_a_2d_plot_selects_and_the_toolbar_keeps_off_the_legend(page):
    # Its own view, not the one the test before left: run alone (-k, --lf) or on a rebuilt page it failed.
    page.radio(key="latent_size").set_value(3).run()
    page.radio(key="latent_view_3").set_value("2-D: z₁ vs z₂ (select points)").run()
    assert_clean(page)
    for chart, figure in zip(page.get("plotly_chart"), figures(page)):
        assert figure["layout"]["dragmode"] == "select"  # Plotly's default drag pans
        assert json.loads(chart.proto.config)["displayModeBar"] == "hover"
        assert figure["layout"]["legend"]["y"] < 1 and figure["layout"]["legend"]["yanchor"] == "top"
    assert any("drag a box" in c.value for c in page.caption)


def test_latent_2_shows_plots_scores_and_the_decoded_latent_planes(page):
    page.radio(key="latent_size").set_value(2).run()
    assert_clean(page)
    ae, vae = figures(page)
    assert ae["layout"]["xaxis"]["title"]["text"] == "z₁"
    assert_score_table(page)
    assert any(s.value == "The latent plane, decoded" for s in page.subheader)
    captions = image_captions(page)
    for kind in ("AE", "VAE"):
        assert any(c.startswith(f"{kind}: z₁ from") for c in captions)


def test_a_view_with_no_alternative_is_named_not_offered_as_a_radio(page):
    page.radio(key="latent_size").set_value(2).run()
    assert not [r for r in page.radio if r.key == "latent_view_2"]
    assert any("2-D (z₁, z₂)" in m.value for m in page.markdown)


def test_sliders_move_a_point_through_a_2d_latent_and_show_its_decoding(page):
    page.radio(key="latent_size").set_value(2).run()
    page.radio(key="latent_explore_model").set_value("AE").run()
    sliders = [s for s in page.slider if s.key.startswith("latent_slider_ae-z2_")]
    assert len(sliders) == 2
    sliders[0].set_value(round(sliders[0].min, 2)).run()
    assert_clean(page)
    assert any(c.startswith(f"ae-z2 decodes z = ({sliders[0].min:.2f}, ") for c in image_captions(page))


def test_picking_a_digit_by_number_shows_it_with_its_label(page, mnist):
    page.number_input(key="latent_index").set_value(123).run()
    assert_clean(page)
    label = int(mnist.test_labels[123])
    assert any(m.value.startswith(f"**Test digit #123**, labelled **{label}**") for m in page.markdown)
    for figure in figures(page):  # and a ring marks it in both plots
        ring = [t for t in figure["data"] if t["name"] == "test #123"]
        assert len(ring) == 1 and ring[0]["marker"]["symbol"] == "circle-open"


def test_a_selection_shows_a_sample_across_its_digits_and_counts_them(page, mnist):
    labels = mnist.test_labels.numpy()
    zeros, threes = np.flatnonzero(labels == 0)[:20], np.flatnonzero(labels == 3)[:20]
    page.session_state["latent_picked_rows"] = [int(r) for r in [*zeros, *threes]]  # as a box lists them
    page.run()
    assert_clean(page)
    assert any(m.value.startswith("**40 selected: 20 × 0, 20 × 3**") for m in page.markdown)
    shown = [c for c in image_captions(page) if c.startswith("#")]
    assert sorted(c[-1] for c in shown) == ["0"] * 4 + ["3"] * 4


def test_the_digits_shown_can_be_filtered(page):
    page.button_group(key="latent_digits").set_value([3, 8]).run()
    assert_clean(page)
    assert all(digit_traces(f) == ["3", "8"] for f in figures(page))
    page.button_group(key="latent_digits").set_value(list(range(10))).run()


def test_the_hover_view_hands_the_browser_each_points_own_digit_and_place(page, mnist):
    """The Embedding Projector's hover: each point's image, cut from one PNG sheet, at the point's latent code."""
    from PIL import Image

    from vae.checkpoint import load_checkpoint
    from vae.latent import embed_dataset

    page.radio(key="latent_size").set_value(2).run()
    page.toggle(key="latent_hover").set_value(True).run()
    assert_clean(page)
    views = [json.loads(element.proto.json) for element in page.get("bidi_component")]
    assert len(views) == 2  # AE and VAE
    for data, name in zip(views, ("ae-z2.pt", "vae-z2.pt")):
        rows = np.array(data["rows"])
        assert len(rows) == 2000 == len(set(rows)) and data["labels"] == mnist.test_labels[rows].tolist()
        sheet = np.asarray(Image.open(io.BytesIO(base64.b64decode(data["sheet"].split(",", 1)[1]))))
        for i in (0, 777, 1999):
            top, left = divmod(i, data["columns"])
            cell = sheet[top * 28:(top + 1) * 28, left * 28:(left + 1) * 28]
            assert np.array_equal(cell, mnist.test_images[rows[i], 0].numpy()), i
        codes = embed_dataset(load_checkpoint(CHECKPOINTS / name)[0], mnist.test_images[rows])
        assert np.allclose(np.c_[data["x"], data["y"]], codes, atol=0.02)  # precomputed codes are float16
    page.button_group(key="latent_digits").set_value([3]).run()
    assert all(set(json.loads(e.proto.json)["labels"]) == {3} for e in page.get("bidi_component"))
    page.button_group(key="latent_digits").set_value(list(range(10)))
    page.toggle(key="latent_hover").set_value(False).run()
    assert not page.get("bidi_component")


def test_the_generative_side_samples_interpolates_and_draws_the_path(page, mnist):
    page.radio(key="latent_size").set_value(2).run()
    assert any(c == "vae-z2: 16 samples, seed 0" for c in image_captions(page))
    page.button(key="latent_new_samples").click().run()
    assert any(c == "vae-z2: 16 samples, seed 1" for c in image_captions(page))
    page.number_input(key="latent_path_from").set_value(3).run()
    page.number_input(key="latent_path_to").set_value(4).run()
    assert_clean(page)
    captions = image_captions(page)
    assert "AE (ae-z2): test #3 → test #4" in captions and "VAE (vae-z2): test #3 → test #4" in captions
    for figure in figures(page):
        path = [t for t in figure["data"] if t["name"] == "path"]
        assert len(path) == 1 and trace_length(path[0]["x"]) == 8
    page.toggle(key="latent_show_path").set_value(False).run()
    assert not [t for f in figures(page) for t in f["data"] if t["name"] == "path"]


def test_the_draw_pages_digit_is_marked_in_both_plots(page, mnist):
    page.session_state[DRAWN_DIGIT_KEY] = mnist.test_images[7, 0].numpy().astype(np.float32) / 255.0
    page.radio(key="latent_size").set_value(2).run()
    assert_clean(page)
    for figure in figures(page):
        star = [t for t in figure["data"] if t["name"] == "your digit"]
        assert len(star) == 1 and star[0]["marker"]["symbol"] == "star"
        assert figure["layout"]["annotations"][0]["text"] == "your digit"
    assert any("★ is your digit from the Draw page" in c.value for c in page.caption)


def test_latent_64_shows_pca_plots_and_scores(page):
    page.radio(key="latent_size").set_value(64).run()
    assert_clean(page)
    ae, vae = figures(page)
    assert all(t["type"] == "scattergl" for t in ae["data"] + vae["data"])
    assert ae["layout"]["xaxis"]["title"]["text"].startswith("PC1 (")
    assert_score_table(page)


def test_tsne_view_runs_on_a_subsample(page, mnist):
    # Its own view and drawn digit: it relied on the tests before it, and failed run alone or on a rebuilt page.
    page.session_state[DRAWN_DIGIT_KEY] = mnist.test_images[7, 0].numpy().astype(np.float32) / 255.0
    page.radio(key="latent_size").set_value(64).run()
    page.session_state["latent_tsne_sample"] = 500  # the smallest sample: t-SNE is slow
    page.radio(key="latent_view_64").set_value("t-SNE 2-D on a subsample (slow)").run()
    assert page.select_slider(key="latent_tsne_sample").value == 500
    assert_clean(page)
    for figure in figures(page):
        assert figure["layout"]["xaxis"]["title"]["text"] == "t-SNE 1"
        digits = [t for t in figure["data"] if t["name"] in digit_traces(figure)]
        assert sum(trace_length(t["x"]) for t in digits) == 500
    assert any("nearest neighbour" in c.value for c in page.caption)
    assert any(c.value.startswith("500 of the 10,000 test digits") for c in page.caption)  # the number plotted


def trace_length(values) -> int:
    """Length of a plotly array: a list, or a typed array {"dtype": "f8", "bdata": base64}."""
    if isinstance(values, list):
        return len(values)
    return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize


def test_the_latent_size_follows_the_sidebar_model_on_a_fresh_visit():
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
    at.session_state[MODEL_KEY] = str(CHECKPOINTS / "ae-z2.pt")
    at.switch_page(navigation.page_file("latent")).run()
    assert_clean(at)
    assert at.radio(key="latent_size").value == 2
    assert re.search(r"AE · latent 2", " ".join(s.value for s in at.subheader))


def test_the_model_picked_in_the_sidebar_is_the_one_shown_beside_its_counterpart():
    path = checkpoint_dir() / "vae-z2-latent-page-test.pt"
    save_checkpoint(ConvVAE(2), path, {"data_source": "mnist"})
    try:
        at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
        at.switch_page(navigation.page_file("latent")).run()
        assert at.radio(key="latent_size").value == 3
        at.selectbox(key=MODEL_KEY).set_value(str(path)).run()  # picked in the sidebar
        assert_clean(at)
        assert at.radio(key="latent_size").value == 2
        assert at.selectbox(key="latent_pair_vae_2").value == str(path)
        assert "vae-z2-latent-page-test: 16 samples, seed 0" in image_captions(at)
        assert not [s for s in at.selectbox if s.key == "latent_pair_ae_2"]  # one AE of size 2: named, not offered
        assert any(c.value.startswith("ae-z2 · AE z=2") for c in at.caption)
        at.selectbox(key="latent_pair_vae_2").set_value(str(CHECKPOINTS / "vae-z2.pt")).run()  # the shipped one
        assert_clean(at)
        assert "vae-z2: 16 samples, seed 0" in image_captions(at)
    finally:
        path.unlink(missing_ok=True)
