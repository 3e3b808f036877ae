"""The Draw & correct page in Streamlit's AppTest, with the shipped checkpoints and real MNIST.

AppTest cannot draw on the canvas component, so the `streamlit_drawable_canvas` module is replaced
(in sys.modules; the real one can only be imported once a Streamlit runtime has registered its
component) by a stand-in whose st_canvas returns what the real one returns after drawing: RGBA
pixels of a white digit on black (a real MNIST test "7", enlarged to the canvas's 280×280). The
arguments the page passes are checked against the real st_canvas's signature. Uploads go through AppTest's own
file_uploader support. Models and error scores are cached process-wide, so only the first test
pays for scoring the data set.
"""
import ast
import importlib.machinery
import io
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from studio.common import DRAWN_DIGIT_KEY, THRESHOLD_KEY
from vae import load_checkpoint, prepare_array
from vae.correction import correct
from vae.display import upscale

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
TIMEOUT = 180  # the first run scores all 70,000 images once on a shared 2-core machine

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


@pytest.fixture(scope="module")
def seven_rgba(mnist):
    """MNIST test image 0 (a 7) as the canvas returns a drawing: 280×280 RGBA, white on black."""
    digit = mnist.test_images[0, 0].numpy()
    gray = upscale(digit, 10)
    return np.dstack([gray, gray, gray, np.full_like(gray, 255)])


class FakeCanvas:
    """Stands in for st_canvas: hands back fixed pixels and records how it was called."""

    def __init__(self, image_data):
        self.image_data = image_data
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self


@pytest.fixture
def canvas(monkeypatch):
    def install(image_data):
        fake = FakeCanvas(image_data)
        module = types.ModuleType("streamlit_drawable_canvas")
        module.st_canvas = fake
        monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
        return fake
    return install


def real_st_canvas_parameters() -> set[str]:
    """Parameter names of the installed st_canvas, read from its source without importing it."""
    spec = importlib.machinery.PathFinder.find_spec("streamlit_drawable_canvas")  # not the stand-in
    source = Path(spec.origin).read_text()
    function = next(node for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.FunctionDef) and node.name == "st_canvas")
    return {a.arg for a in function.args.args + function.args.kwonlyargs}


def draw_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.switch_page("pages/draw.py")
    return at.run()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def image_captions(at) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def shown_threshold(at) -> float:
    text = next(m.value for m in at.markdown if m.value.startswith("Threshold"))
    return float(re.match(r"Threshold \*\*([\d.]+)\*\*", text).group(1))


def assert_consistent_verdict(at) -> None:
    score, limit = float(metrics(at)["Anomaly score"]), shown_threshold(at)
    assert metrics(at)["Verdict"] == ("ANOMALY" if score > limit else "NORMAL")


def test_a_drawn_digit_shows_its_reconstruction_score_and_verdict(canvas, seven_rgba):
    fake = canvas(seven_rgba)
    at = draw_page()
    assert not at.exception and not at.error
    assert fake.calls and fake.calls[-1]["return_image_data"] is True  # else image_data raises
    assert fake.calls[-1]["drawing_mode"] == "freedraw"
    assert set(fake.calls[-1]) <= real_st_canvas_parameters()

    model, _ = load_checkpoint(CHECKPOINTS / "vae-z64.pt")  # the sidebar's default model
    expected = correct(model, prepare_array(seven_rgba))
    assert metrics(at)["Anomaly score"] == f"{expected.score:.1f}"
    assert metrics(at)["Percentile among training images"].endswith("%")
    assert_consistent_verdict(at)
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Difference colours") and "blue" in c and "orange" in c for c in captions)
    captions = image_captions(at)
    for shown in ("What the model sees", "Reconstruction by vae-z64", "Difference", "Corrected spots, circled"):
        assert any(c.startswith(shown) for c in captions), shown
    np.testing.assert_allclose(at.session_state[DRAWN_DIGIT_KEY], prepare_array(seven_rgba))


@pytest.mark.parametrize("blank", [None, np.zeros((280, 280, 4), dtype=np.uint8),
                                   np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)])],
                         ids=["nothing-sent", "transparent", "black"])
def test_a_blank_canvas_gives_a_hint_not_an_error(canvas, blank):
    canvas(blank)
    at = draw_page()
    assert not at.exception and not at.error
    assert any("Draw a digit" in i.value for i in at.info)
    assert "Anomaly score" not in metrics(at)
    assert DRAWN_DIGIT_KEY not in at.session_state


@pytest.mark.parametrize("mode", ["Draw", "Upload", "Test digit"])
def test_every_input_mode_renders(canvas, mode):
    canvas(None)
    at = draw_page()
    at.radio(key="draw_input").set_value(mode).run()
    assert not at.exception and not at.error
    assert ("Anomaly score" in metrics(at)) == (mode == "Test digit")  # the others wait for input


def png_of_a_digit() -> bytes:
    from PIL import ImageDraw

    image = Image.new("L", (100, 140), 255)
    ImageDraw.Draw(image).line([(20, 20), (80, 20), (40, 120)], fill=0, width=10)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, message", [
    ("digit.png", png_of_a_digit()[:200], "damaged or incomplete"),
    ("digit.png", b"plain text, not pixels", "not an image"),
], ids=["truncated-png", "not-an-image"])
def test_a_bad_upload_gives_one_clear_error_and_the_page_carries_on(canvas, name, data, message):
    canvas(None)
    at = draw_page()
    at.radio(key="draw_input").set_value("Upload").run()
    at.file_uploader(key="draw_upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value and name in at.error[0].value
    assert "Anomaly score" not in metrics(at)
    # A good file next: the page works again.
    at.file_uploader(key="draw_upload").set_value(("good.png", png_of_a_digit(), "image/png")).run()
    assert not at.exception and not at.error
    assert "Anomaly score" in metrics(at)


def test_a_test_digit_with_a_flaw_scores_higher_than_without(canvas):
    canvas(None)
    at = draw_page()
    at.radio(key="draw_input").set_value("Test digit").run()
    assert any("a **7**" in c.value for c in at.caption)  # test image 0
    clean = float(metrics(at)["Anomaly score"])
    at.selectbox(key="draw_flaw").set_value("blob").run()
    assert not at.exception and not at.error
    assert float(metrics(at)["Anomaly score"]) > clean
    assert_consistent_verdict(at)
    at.button[0].click().run()  # 🎲 Random
    assert not at.exception and 0 <= at.number_input(key="draw_test_index").value < 10_000


def test_the_threshold_chosen_on_the_histogram_page_reaches_this_page(canvas):
    canvas(None)
    at = draw_page()
    at.radio(key="draw_input").set_value("Test digit").run()
    default_limit = shown_threshold(at)
    assert "99th percentile" in next(m.value for m in at.markdown if m.value.startswith("Threshold"))
    at.session_state[THRESHOLD_KEY] = ("percentile", 50.0)
    at.run()
    text = next(m.value for m in at.markdown if m.value.startswith("Threshold"))
    assert "50th percentile" in text
    assert shown_threshold(at) < default_limit
    assert_consistent_verdict(at)


def test_the_comparison_shows_ae_vs_vae_and_latent_3_vs_64(canvas):
    canvas(None)
    at = draw_page()
    at.radio(key="draw_input").set_value("Test digit").run()
    captions = " ".join(image_captions(at))
    for label in ("AE z=64", "VAE z=64", "VAE z=3"):
        if (CHECKPOINTS / f"{label.split()[0].lower()}-z{label.split('=')[1]}.pt").exists():
            assert label in captions
    assert captions.count("score ") >= 2


def test_a_missing_comparison_model_is_skipped_with_a_caption(canvas, monkeypatch):
    from studio import common

    real_find_entry = common.find_entry
    monkeypatch.setattr(common, "find_entry",
                        lambda kind, dim: None if (kind, dim) == ("vae", 3) else real_find_entry(kind, dim))
    canvas(None)
    at = draw_page()
    at.radio(key="draw_input").set_value("Test digit").run()
    assert not at.exception and not at.error
    assert any("No VAE with latent 3" in c.value for c in at.caption)
