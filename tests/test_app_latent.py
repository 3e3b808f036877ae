"""The Latent space page in Streamlit's AppTest, with real MNIST and the shipped checkpoints: every latent
size renders both models' plots, the cluster table holds numbers, picking by number shows that digit,
and the Draw page's digit appears in the plots. One AppTest session walks through the page; each test sets
the view it checks (six relied on the tests before them and failed when run alone, with -k or --lf)."""
import base64
import io
import json
import re
import time
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


def components(at) -> list[dict]:
    return [json.loads(element.proto.json) for element in at.get("bidi_component")]


def figures(at) -> list[dict]:
    """The two scatter plots' figures (studio/plotly_view.py), AE first."""
    shown = [json.loads(data["figure"]) for data in components(at) if "figure" in data]
    return [f for f in shown if str(f["layout"].get("uirevision", "")).startswith("latent_chart_")]


def grid_figures(at) -> list[dict]:
    shown = [json.loads(data["figure"]) for data in components(at) if "figure" in data]
    return [f for f in shown if str(f["layout"].get("uirevision", "")).startswith("latent_grid_")]


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
    three_d = [(e.proto.id, json.loads(e.proto.json)["slot"]) for e in page.get("bidi_component")][:2]
    page.radio(key="latent_view_3").set_value("2-D: z₁ vs z₂ (select points)").run()
    assert_clean(page)
    assert all(t["type"] == "scattergl" for f in figures(page) for t in f["data"])
    two_d = [(e.proto.id, json.loads(e.proto.json)["slot"]) for e in page.get("bidi_component")][:2]
    # Each plot is one chart whose views are slots of it: the browser keeps the 3-D scene, hidden, for a switch back.
    assert [i for i, _ in two_d] == [i for i, _ in three_d]
    assert [slot for _, slot in three_d] == ["3-D (drag to rotate)"] * 2
    assert [slot for _, slot in two_d] == ["2-D: z₁ vs z₂ (select points)"] * 2


def test_dragging_a_2d_plot_selects_and_the_toolbar_keeps_off_the_legend(page):
    # Its own view, not the one the test before left: run alone (-k, --lf) or on a rebuilt page it failed.
    page.radio(key="latent_size").set_value(3).run()
    page.radio(key="latent_view_3").set_value("2-D: z₁ vs z₂ (select points)").run()
    assert_clean(page)
    charts = [data for data in components(page) if "figure" in data][:2]
    for chart, figure in zip(charts, figures(page)):
        assert figure["layout"]["dragmode"] == "select"  # Plotly's default drag pans
        assert chart["config"]["displayModeBar"] == "hover"
        assert figure["layout"]["legend"]["y"] < 0 and figure["layout"]["legend"]["orientation"] == "h"  # under the plot
    assert any("drag a box" in c.value for c in page.caption)


def test_latent_2_shows_plots_scores_and_the_decoded_latent_planes(page):
    page.radio(key="latent_size").set_value(2).run()
    assert_clean(page)
    ae, vae = figures(page)
    assert ae["layout"]["xaxis"]["title"]["text"] == "z₁"
    assert_score_table(page)
    assert any(s.value == "The latent plane, decoded" for s in page.subheader)
    assert len(grid_figures(page)) == 2
    for kind in ("AE", "VAE"):
        assert any(c.value.startswith(f"{kind}: z₁ from") for c in page.caption)


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
    shown = [c for c in image_captions(page) if c.startswith("#") and " d=" not in c]  # not the neighbours
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
    views = [data for data in components(page) if "sheet" in data]
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
    assert all(set(data["labels"]) == {3} for data in components(page) if "sheet" in data)
    page.button_group(key="latent_digits").set_value(list(range(10)))
    page.toggle(key="latent_hover").set_value(False).run()
    assert not [data for data in components(page) if "sheet" in data]


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
        assert len(star) == 1 and star[0]["marker"]["symbol"] == "star" and star[0]["text"] == ["your digit"]
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
    page.radio(key="latent_view_64").set_value("t-SNE 2-D on a subsample").run()
    assert page.select_slider(key="latent_tsne_sample").value == 500
    assert_clean(page)
    # Not shipped for 500 digits: computed once in the background, the page saying so meanwhile.
    for _ in range(120):
        if len(figures(page)) == 2:
            break
        assert any("t-SNE running in the background" in i.value for i in page.info)
        time.sleep(1)
        page.run()
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


def trace_values(values) -> np.ndarray:
    if isinstance(values, list):
        return np.asarray(values, dtype=np.float64)
    return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).astype(np.float64)


def to_2d_view(page):
    page.radio(key="latent_size").set_value(3).run()
    page.toggle(key="latent_isolate").set_value(False).run()
    page.radio(key="latent_view_3").set_value("2-D: z₁ vs z₂ (select points)").run()
    assert_clean(page)


def test_a_selection_is_drawn_on_the_plot_and_the_ring_stays_on_the_digit_found(page, mnist):
    to_2d_view(page)
    page.number_input(key="latent_index").set_value(5).run()
    labels = mnist.test_labels.numpy()
    picked = [int(r) for r in [*np.flatnonzero(labels == 1)[:30], *np.flatnonzero(labels == 7)[:10]]]
    page.session_state["latent_picked_rows"] = picked  # as a box or lasso hands them over
    page.run()
    assert_clean(page)
    for figure in figures(page):
        for trace in figure["data"]:
            if trace["name"] in [str(d) for d in range(10)]:  # the digit traces: picked points selected, others dimmed
                rows = trace_values(trace["customdata"]).astype(int)
                expected = sorted(r for r in picked if labels[r] == int(trace["name"]))
                assert sorted(rows[trace["selectedpoints"]].tolist()) == expected
                assert trace["unselected"]["marker"]["opacity"] < 0.5
        outline = [t for t in figure["data"] if t["name"] == "selected (40)"]
        assert len(outline) == 1 and sorted(trace_values(outline[0]["customdata"]).astype(int)) == sorted(picked)
        assert [t["name"] for t in figure["data"] if t["name"].startswith("test #")] == ["test #5"]
    assert page.number_input(key="latent_index").value == 5
    page.session_state["latent_picked_rows"] = [5]
    page.run()


def test_the_legend_keeps_digit_order_and_the_plot_keeps_its_identity_across_filters(page):
    to_2d_view(page)
    page.button_group(key="latent_digits").set_value([8, 3]).run()  # clicked back in: 8 first, then 3
    assert_clean(page)
    before = figures(page)
    assert all(digit_traces(f) == ["3", "8"] for f in before)
    page.button_group(key="latent_digits").set_value([8, 3, 5]).run()
    after = figures(page)
    assert all(digit_traces(f) == ["3", "5", "8"] for f in after)
    # Plotly keeps the camera, drag mode and legend while uirevision stays; the graph is the same element.
    assert [f["layout"]["uirevision"] for f in before] == [f["layout"]["uirevision"] for f in after]
    assert all(t["uid"] == f"digit-{t['name']}" for f in after for t in f["data"] if t["name"] in "0123456789")
    page.button_group(key="latent_digits").set_value(list(range(10))).run()


def test_the_nearest_neighbours_of_the_digit_found_are_listed_with_their_distances(page, mnist):
    from vae.latent import nearest_neighbours

    page.radio(key="latent_size").set_value(2).run()
    page.button_group(key="latent_digits").set_value(list(range(10))).run()
    page.number_input(key="latent_index").set_value(123).run()
    assert_clean(page)
    assert any(m.value.startswith("**Nearest neighbours of test #123**") for m in page.markdown)
    captions = [c for c in image_captions(page) if re.fullmatch(r"#\d+ · \d · d=\d+\.\d\d", c)]
    assert len(captions) == 16  # 8 for each model
    from vae.precomputed import load

    codes = load(CHECKPOINTS / "ae-z2.pt", mnist).test_embeddings
    rows, distances = nearest_neighbours(codes, codes[123], 8, exclude=123)
    labels = mnist.test_labels.numpy()
    assert captions[:8] == [f"#{r} · {labels[r]} · d={d:.2f}" for r, d in zip(rows, distances)]
    page.toggle(key="latent_isolate").set_value(True).run()  # only the digit found and its neighbours
    shown = {int(r) for f in figures(page) for t in f["data"] if t["name"] in "0123456789"
             for r in trace_values(t["customdata"])}
    assert 123 in shown and set(rows.tolist()) <= shown and len(shown) <= 17
    page.toggle(key="latent_isolate").set_value(False).run()


def test_the_sliders_point_is_marked_on_its_models_plot(page):
    page.radio(key="latent_size").set_value(2).run()
    page.radio(key="latent_explore_model").set_value("VAE").run()
    sliders = [s for s in page.slider if s.key.startswith("latent_slider_vae-z2_")]
    sliders[0].set_value(round(sliders[0].min, 2)).run()
    assert_clean(page)
    ae, vae = figures(page)
    assert not [t for t in ae["data"] if t["name"] == "sliders' point"]
    point = [t for t in vae["data"] if t["name"] == "sliders' point"]
    assert len(point) == 1
    assert np.allclose([trace_values(point[0]["x"])[0], trace_values(point[0]["y"])[0]],
                       [sliders[0].min, page.slider(key=sliders[1].key).value], atol=0.01)


def test_the_drawn_digits_posterior_is_an_ellipse_around_its_star_on_the_vaes_plot(page, mnist):
    from vae.checkpoint import load_checkpoint
    from vae.generate import posterior_of

    digit = mnist.test_images[7, 0].numpy().astype(np.float32) / 255.0
    page.session_state[DRAWN_DIGIT_KEY] = digit
    page.radio(key="latent_size").set_value(2).run()
    assert_clean(page)
    ae, vae = figures(page)
    assert not [t for t in ae["data"] if t["name"] == "your digit's 1-σ"]  # an AE's code is a point
    ring = [t for t in vae["data"] if t["name"] == "your digit's 1-σ"]
    assert len(ring) == 1
    posterior = posterior_of(load_checkpoint(CHECKPOINTS / "vae-z2.pt")[0], digit)
    x, y = trace_values(ring[0]["x"]), trace_values(ring[0]["y"])
    # An axis-aligned ellipse: (x − μ₁)²/σ₁² + (y − μ₂)²/σ₂² = 1 at every point.
    assert np.allclose(((x - posterior.mean[0]) / posterior.std[0]) ** 2 + ((y - posterior.mean[1]) / posterior.std[1]) ** 2,
                       1, atol=1e-3)
    del page.session_state[DRAWN_DIGIT_KEY]
    page.run()


def test_a_clicked_grid_cell_is_shown_larger_with_its_code(page):
    page.radio(key="latent_size").set_value(2).run()
    (ae_grid, _) = grid_figures(page)
    cells = ae_grid["data"][0]
    assert len(trace_values(cells["x"])) == 400  # one point to click per cell
    x, y = trace_values(cells["x"])[21], trace_values(cells["y"])[21]
    page.session_state["latent_grid_cell_ae"] = np.array([x, y], dtype=np.float32)  # what a click on cell 21 keeps
    page.run()
    assert_clean(page)
    assert f"ae-z2 decodes the clicked cell, z = ({x:.2f}, {y:.2f})" in image_captions(page)


def test_latent_3_has_a_slice_of_the_decoded_space_at_a_z3_the_visitor_sets(page):
    page.radio(key="latent_size").set_value(3).run()
    assert any(s.value == "A slice of the latent space, decoded" for s in page.subheader)
    page.slider(key="latent_slice_z3").set_value(1.0).run()
    assert_clean(page)
    assert len(grid_figures(page)) == 2
    assert any("at z₃ = 1.0" in c.value for c in page.caption)


def test_the_shipped_models_tsne_view_is_read_not_computed(page, mnist):
    from vae.precomputed import load_projection

    page.radio(key="latent_size").set_value(64).run()
    page.session_state["latent_tsne_sample"] = 2000
    page.radio(key="latent_view_64").set_value("t-SNE 2-D on a subsample").run()
    assert_clean(page)
    ae, vae = figures(page)  # on the first run: nothing to wait for
    rows, _ = load_projection(CHECKPOINTS / "vae-z64.pt", "tsne", 2000, mnist)
    shown = [int(r) for t in vae["data"] if t["name"] in "0123456789" for r in trace_values(t["customdata"])]
    assert sorted(shown) == sorted(rows.tolist())
    page.radio(key="latent_view_64").set_value("PCA 2-D (select points)").run()
