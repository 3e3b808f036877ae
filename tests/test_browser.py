"""Real-browser end-to-end test: Debian's chromium driven by Playwright against `streamlit run app.py`.

A person's path through the app: draw a digit with the mouse, see its reconstruction and score,
visit every page with no error on screen, retrain a tiny model and find it in the picker.
"""
from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlparse

import pytest

from studio.state import SPACE_PARAM
from vae.checkpoint import checkpoint_dir, load_checkpoint
from vae.server import registry

from streamlit_server import ARTIFACTS, ERROR_SELECTOR, wait_until_idle

CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)

pytestmark = pytest.mark.browser


def assert_no_errors(page, where: str) -> None:
    errors = page.locator(ERROR_SELECTOR)
    if errors.count():
        page.screenshot(path=str(ARTIFACTS / f"error-{where}.png"), full_page=True)
        raise AssertionError(f"{where}: error on screen: {errors.first.inner_text()[:500]}")


def open_page(page, url: str, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    wait_until_idle(page)


def draw_seven(page) -> None:
    """Drag the mouse over the drawing canvas: a 7 (top bar, then the diagonal)."""
    canvas = page.locator("canvas").last  # fabric.js stacks a lower and an upper (interactive) canvas
    canvas.wait_for(state="visible", timeout=60_000)
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    strokes = [[(0.25, 0.2), (0.75, 0.2)], [(0.75, 0.2), (0.45, 0.85)]]
    for stroke in strokes:
        page.mouse.move(x0 + stroke[0][0] * w, y0 + stroke[0][1] * h)
        page.mouse.down()
        for i in range(1, 13):
            t = i / 12
            x = stroke[0][0] + t * (stroke[1][0] - stroke[0][0])
            y = stroke[0][1] + t * (stroke[1][1] - stroke[0][1])
            page.mouse.move(x0 + x * w, y0 + y * h)
        page.mouse.up()


def test_draw_a_digit_and_see_it_corrected(server, page):
    page.goto(server)
    wait_until_idle(page)
    assert_no_errors(page, "home")
    open_page(page, server, "Draw & correct")
    assert page.get_by_text("Draw a digit on the black canvas").count() == 1  # the blank-canvas hint
    draw_seven(page)
    page.get_by_text("Anomaly score").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert_no_errors(page, "draw")
    assert page.get_by_text("Reconstruction by").count() >= 1
    score = page.locator('[data-testid="stMetric"]').filter(has_text="Anomaly score")
    assert float(score.locator('[data-testid="stMetricValue"]').inner_text()) > 0
    assert page.locator('[data-testid="stMetric"]').filter(has_text="Verdict").count() == 1
    page.screenshot(path=str(ARTIFACTS / "draw.png"), full_page=True)


@pytest.mark.parametrize("page", [(1400, 1000), (1024, 768)], indirect=True, ids=["1400x1000", "1024x768"])
def test_a_drawn_seven_not_centred_and_moved_4_px_goes_through_conv_and_fully_connected_side_by_side(server, page):
    """The report's §1–2 live: centring off, the input moved 4 px right, both models' results next to each other."""
    page.goto(server)
    wait_until_idle(page)
    open_page(page, server, "Draw & correct")
    draw_seven(page)
    page.get_by_text("Anomaly score").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    page.get_by_text("Centre the digit").first.click()  # off
    wait_until_idle(page)
    right = page.locator('[data-testid="stSlider"]').filter(has_text="Move right, px").get_by_role("slider")
    right.focus()
    for _ in range(4):
        right.press("ArrowRight")
    wait_until_idle(page)
    assert_no_errors(page, "draw-shift")
    shown = page.locator('[data-testid="stSlider"]').filter(has_text="Move right, px")
    assert shown.locator('[data-testid="stSliderThumbValue"]').inner_text() == "4"
    assert not page.locator('[data-testid="stCheckbox"]').filter(has_text="Centre the digit").locator("input").is_checked()
    conv = page.get_by_text("vae-z64 · convolutional", exact=True)
    fc = page.get_by_text("fc-vae-z64 · fully-connected", exact=True)
    conv.first.scroll_into_view_if_needed()
    conv_box, fc_box = conv.first.bounding_box(), fc.first.bounding_box()
    assert abs(conv_box["y"] - fc_box["y"]) < 5 and fc_box["x"] > conv_box["x"] + conv_box["width"]  # side by side
    assert page.get_by_text(re.compile(r"^score \d")).count() == 2
    width = page.viewport_size["width"]
    page.screenshot(path=str(ARTIFACTS / f"draw-shift-{width}.png"), full_page=False)
    page.screenshot(path=str(ARTIFACTS / f"draw-shift-{width}-full.png"), full_page=True)


@pytest.mark.parametrize("page", [(1400, 1000), (1024, 768)], indirect=True, ids=["1400x1000", "1024x768"])
def test_every_page_renders_without_error(server, page):
    """Screenshots of every page at both sizes: test-artifacts/page-<name>-<width>x<height>.png
    (scripts/update_screenshots.py copies the large ones to docs/ for the README)."""
    size = "{width}x{height}".format(**page.viewport_size)
    page.goto(server)
    wait_until_idle(page)
    for title, name in (("Latent space", "latent"), ("Error histograms", "histograms"), ("Draw & correct", "draw"),
                        ("Detection benchmark", "benchmark"), ("Home", "home")):
        open_page(page, server, title)
        assert_no_errors(page, title)
        page.screenshot(path=str(ARTIFACTS / f"page-{name}-{size}.png"), full_page=True)


def test_opening_a_page_url_directly_keeps_the_app_around_it(server, page):
    """The sidebar model picker (drawn by studio/main.py) is there even when a visitor starts on /histograms."""
    page.goto(f"{server}/histograms")
    wait_until_idle(page)
    assert_no_errors(page, "direct-url")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Checkpoint", exact=True).wait_for(state="visible", timeout=30_000)


def test_hovering_a_point_on_the_latent_page_shows_that_digit(server, page, mnist):
    page.goto(f"{server}/latent")
    wait_until_idle(page)
    page.get_by_text("Show the digit under the mouse").click()
    wait_until_idle(page)
    canvas = page.locator(".hover-scatter canvas").first
    canvas.scroll_into_view_if_needed()
    x, y = canvas.evaluate("canvas => canvas.pointsOnScreen[0]")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    tip = page.locator(".hover-scatter .tip").first
    tip.wait_for(state="visible", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "latent-hover.png"))
    shown = re.fullmatch(r"digit (\d) · test #(\d+)", tip.inner_text().strip())
    assert shown, tip.inner_text()
    assert int(shown.group(1)) == int(mnist.test_labels[int(shown.group(2))])
    image = tip.locator(".digit")
    assert "data:image/png;base64," in image.evaluate("element => getComputedStyle(element).backgroundImage")
    assert_no_errors(page, "latent-hover")


def shown_value(selectbox) -> str:
    """What a selectbox displays: its text, or the value of the input that holds it."""
    inputs = selectbox.locator("input")
    return selectbox.inner_text() + " ".join(inputs.nth(i).input_value() for i in range(inputs.count()))


def visitors_new_models(page, before: set) -> list:
    """Checkpoints written since `before` and owned by the page's visitor (the token in its URL): other
    tests may write models meanwhile, as pytest -n runs test files side by side."""
    token = parse_qs(urlparse(page.url).query).get(SPACE_PARAM, [""])[0]
    return [path for path in set(CHECKPOINTS.glob("*.pt")) - before
            if token and load_checkpoint(path)[1].get("owner") == registry.owner_key(token)]


def test_retrain_from_the_sidebar_and_find_the_new_model_in_the_picker(server, page):
    before = set(CHECKPOINTS.glob("*.pt"))
    page.goto(server)
    wait_until_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Retrain a model").click()
    for label, value in (("Latent size", "2"), ("Epochs", "1"), ("Training images", "500")):
        field = sidebar.get_by_label(label, exact=True)
        field.fill(value)
        field.press("Tab")
    try:
        sidebar.get_by_role("button", name="Train in the background").click()
        # Wait for the end state, not for the progress caption: a tiny job on a fast machine may end
        # before the page's once-a-second refresh ever shows it running (that made this test flaky).
        picker = sidebar.locator('[data-testid="stSelectbox"]').first
        deadline = time.time() + 240
        while "vae-z2-" not in shown_value(picker):
            assert time.time() < deadline, "the new model never reached the model picker"
            assert_no_errors(page, "retrain")
            time.sleep(0.5)
        wait_until_idle(page)
        page.screenshot(path=str(ARTIFACTS / "retrain.png"))
        made = visitors_new_models(page, before)
        assert len(made) == 1 and made[0].name.startswith("vae-z2-"), made
        assert made[0].stem in shown_value(picker)
        assert sidebar.get_by_text("It is selected in the model picker").count() == 1
        assert_no_errors(page, "retrain")
    finally:
        for path in visitors_new_models(page, before):
            path.unlink()


def test_first_visitors_of_a_fresh_server_all_get_the_app(browser, mnist_root):
    """Visitors opening /draw together on a just-started server: each must get the app's navigation and
    sidebar, not Streamlit's pages-folder mode (which showed an ImportError or the bare page)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from streamlit_server import running_app

    with running_app(log_name="streamlit-fresh.log", mnist_root=mnist_root) as (url, _):
        contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(4)]
        pages = [context.new_page() for context in contexts]
        try:
            for page in pages:  # all connect before the first run has finished importing torch
                page.goto(f"{url}/draw", wait_until="commit")
            for i, page in enumerate(pages):
                # A visitor's first run may start seconds late (others are importing PyTorch), so an idle
                # page alone proves nothing yet: wait for the app's navigation, then for the run to end.
                nav = page.locator('[data-testid="stSidebarNav"]')
                try:
                    nav.get_by_role("link", name="Latent space").wait_for(state="attached", timeout=120_000)
                except PlaywrightTimeout:
                    raise AssertionError(f"visitor {i} kept the pages-folder navigation: {nav.inner_text()}") from None
                wait_until_idle(page)
                assert_no_errors(page, f"fresh-{i}")
                page.locator('[data-testid="stSidebar"]').get_by_text("Checkpoint", exact=True).wait_for(
                    state="visible", timeout=30_000)  # the app's sidebar
        finally:
            for context in contexts:
                context.close()
