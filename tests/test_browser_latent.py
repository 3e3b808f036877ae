"""The Latent page in a real browser (Debian's chromium through Playwright, `streamlit run app.py`): a turned 3-D
camera stays turned when a digit is hidden or the view goes to 2-D and back (the same scene, not drawn again),
and a box or lasso selection stays drawn on the plot, the lasso still picked, the selected digits highlighted.
Screenshots at 1400×1000 and 1024×768 in test-artifacts/."""
from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from streamlit_server import ARTIFACTS, ERROR_SELECTOR, SHOWN_PLOT, drag, wait_until_idle

pytestmark = pytest.mark.browser

SIZES = [(1400, 1000), (1024, 768)]
PLOT = SHOWN_PLOT


def assert_no_errors(page, where: str) -> None:
    errors = page.locator(ERROR_SELECTOR)
    if errors.count():
        page.screenshot(path=str(ARTIFACTS / f"error-{where}.png"), full_page=True)
        raise AssertionError(f"{where}: error on screen: {errors.first.inner_text()[:500]}")


def open_latent(page, server: str) -> None:
    page.goto(f"{server}/latent")
    wait_until_idle(page)
    page.locator(PLOT).nth(1).wait_for(timeout=120_000)
    wait_until_idle(page)
    drawn = f"() => [0, 1].every((n) => {{ const g = document.querySelectorAll('{PLOT}')[n]; return g && g.dataset.revision; }})"
    page.wait_for_function(drawn, timeout=60_000)  # both plots drawn by Plotly


def graph(page, n: int = 0) -> str:
    return f"document.querySelectorAll('{PLOT}')[{n}]"


def eye_of(page) -> list[float]:
    """The first shown plot's 3-D camera eye, as Plotly keeps it in the figure's layout."""
    return page.evaluate(f"(() => {{ const e = {graph(page)}._fullLayout.scene.camera.eye; return [e.x, e.y, e.z]; }})()")


def turn_scene(page) -> tuple[list[float], list[float]]:
    """Turn the first shown 3-D scene by a drag from an empty corner (a drag, not a click); (eye before, after)."""
    default = eye_of(page)
    box = plot_area(page)
    corner = (box["x"] + box["width"] * 0.12, box["y"] + box["height"] * 0.2)
    moved = f"() => {graph(page)}._fullLayout.scene.camera.eye.x !== {default[0]}"
    for _ in range(3):  # a busy machine may still be drawing the scene when the first drag comes
        drag(page, [corner, (corner[0] + 100, corner[1] + 30)])
        try:
            page.wait_for_function(moved, timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    turned = eye_of(page)
    assert max(abs(a - b) for a, b in zip(turned, default)) > 0.1, (default, turned)
    return default, turned


def plot_area(page, n: int = 0) -> dict:
    plot = page.locator(PLOT).nth(n)
    plot.scroll_into_view_if_needed()
    return plot.bounding_box()


# Where the 8 corners of a 3-D scene's data box land on its canvas (normalised: −1 and 1 are its edges).
CUBE_CORNERS = """(graph) => {
  const plot = graph._fullLayout.scene._scene.glplot, camera = plot.cameraParams, bounds = plot.bounds;
  const times = (m, v) => [0, 1, 2, 3].map((r) => m[r] * v[0] + m[4 + r] * v[1] + m[8 + r] * v[2] + m[12 + r] * v[3]);
  const xs = [];
  for (const i of [0, 1]) for (const j of [0, 1]) for (const k of [0, 1]) {
    const clip = times(camera.projection, times(camera.view, times(camera.model, [bounds[i][0], bounds[j][1], bounds[k][2], 1])));
    xs.push(clip[0] / clip[3]);
  }
  return Math.max(...xs.map(Math.abs));
}"""
CUBE_FITS = 0.7  # at 1400 px the cube reaches 0.65 and its axis titles stay inside; at 1024 it reached 1.06


@pytest.mark.parametrize("page", SIZES, indirect=True, ids=["1400x1000", "1024x768"])
def test_a_turned_3d_camera_stays_when_a_digit_is_hidden(server, page):
    open_latent(page, server)
    assert_no_errors(page, "latent-3d")
    for n in (0, 1):  # both scenes whole, axis titles included, at this width
        assert page.locator(PLOT).nth(n).evaluate(CUBE_CORNERS) <= CUBE_FITS
    default, turned = turn_scene(page)  # the visitor turns the AE's scene
    page.screenshot(path=str(ARTIFACTS / f"latent-3d-turned-{page.viewport_size['width']}.png"))
    page.evaluate(f"{graph(page)}.dataset.marked = 'yes'")
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="3").first.click()  # hide the 3s
    wait_until_idle(page)
    assert_no_errors(page, "latent-3d-filter")
    names = page.evaluate(f"{graph(page)}.data.map(t => t.name)")
    assert "3" not in names and "4" in names  # the figure changed...
    assert page.evaluate(f"{graph(page)}.dataset.marked") == "yes"  # ...in the same graph
    assert eye_of(page) == pytest.approx(turned, abs=1e-6)  # and the camera did not jump back
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text="3").first.click()
    wait_until_idle(page)
    names = page.evaluate(f"{graph(page)}.data.map(t => t.name)")
    assert names[:10] == [str(d) for d in range(10)]  # shown again, in its place in the legend
    width = page.viewport_size["width"]
    page.locator(PLOT).first.evaluate("plot => plot.scrollIntoView({block: 'end'})")  # both plots whole, for docs/
    scene = page.evaluate(f"(() => {{ const b = {graph(page)}.querySelector('.gl-container').getBoundingClientRect();"
                          f" const p = {graph(page)}.getBoundingClientRect(); return [b.left - p.left, p.right - b.right]; }})()")
    assert scene[0] >= -1 and scene[1] >= -1, scene  # the 3-D scene inside its plot, at this width too
    page.screenshot(path=str(ARTIFACTS / f"latent-3d-{width}.png"))


@pytest.mark.parametrize("page", SIZES[:1], indirect=True, ids=["1400x1000"])
def test_a_box_and_a_lasso_selection_stay_drawn_and_the_lasso_stays_picked(server, page):
    open_latent(page, server)
    page.locator('[data-testid="stRadio"] label').filter(has_text="2-D: z₁ vs z₂").first.click()
    wait_until_idle(page)
    box = page.locator(PLOT).first.locator(".nsewdrag").first
    box.scroll_into_view_if_needed()
    area = box.bounding_box()
    x, y, w, h = area["x"], area["y"], area["width"], area["height"]
    drag(page, [(x + w * 0.45, y + h * 0.45), (x + w * 0.55, y + h * 0.55)])
    wait_until_idle(page)
    assert_no_errors(page, "latent-box")
    selected = page.evaluate(f"{graph(page)}.data.filter(t => /^[0-9]$/.test(t.name))"
                             ".reduce((n, t) => n + (t.selectedpoints || []).length, 0)")
    outline = page.evaluate(f"{graph(page)}._fullData.filter(t => t.name.startsWith('selected ('))"
                            ".map(t => [t.name, t.customdata.length])")
    assert 0 < selected <= 2000  # few enough to outline one by one
    assert len(outline) == 1 and outline[0][0] == f"selected ({selected:,})" and outline[0][1] == selected
    assert page.evaluate(f"({graph(page)}._fullLayout.selections || []).length") == 1  # the box stays drawn
    page.get_by_text(f"{selected:,} selected:").first.wait_for(timeout=30_000)  # and the digits are shown below
    page.screenshot(path=str(ARTIFACTS / "latent-box.png"))

    page.locator(PLOT).first.hover()
    page.locator(f'{PLOT} .modebar-btn[data-val="lasso"]').first.click()
    drag(page, [(x + w * 0.4, y + h * 0.4), (x + w * 0.6, y + h * 0.42), (x + w * 0.55, y + h * 0.6),
                (x + w * 0.4, y + h * 0.41)])
    wait_until_idle(page)
    assert_no_errors(page, "latent-lasso")
    assert page.evaluate(f"{graph(page)}._fullLayout.dragmode") == "lasso"  # still the lasso after the rerun
    again = page.evaluate(f"{graph(page)}.data.filter(t => /^[0-9]$/.test(t.name))"
                          ".reduce((n, t) => n + (t.selectedpoints || []).length, 0)")
    assert again > 0 and again != selected
    page.get_by_text(f"{again:,} selected:").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "latent-lasso.png"))


@pytest.mark.parametrize("page", SIZES[:1], indirect=True, ids=["1400x1000"])
def test_the_3d_scene_waits_hidden_while_the_2d_view_is_shown_and_comes_back_turned(server, page):
    open_latent(page, server)
    _, turned = turn_scene(page)
    revision = page.evaluate(f"{graph(page)}.dataset.revision")
    page.evaluate(f"{graph(page)}.dataset.marked = 'the turned scene'")
    page.locator('[data-testid="stRadio"] label').filter(has_text="2-D: z₁ vs z₂").first.click()
    wait_until_idle(page)
    flat = f"() => {graph(page)} && {graph(page)}._fullLayout && !{graph(page)}._fullLayout.scene"
    page.wait_for_function(flat, timeout=60_000)
    assert page.evaluate(f"{graph(page)}.dataset.marked") is None  # a 2-D graph of its own is shown...
    hidden = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).filter(g => g.dataset.marked)"
                           ".map(g => g.style.display)")
    assert hidden == ["none"]  # ...and the scene waits, hidden
    page.locator('[data-testid="stRadio"] label').filter(has_text="3-D (drag to rotate)").first.click()
    wait_until_idle(page)
    assert_no_errors(page, "latent-3d-back")
    assert page.evaluate(f"{graph(page)}.dataset.marked") == "the turned scene"  # the same scene is back
    assert page.evaluate(f"{graph(page)}.dataset.revision") == revision  # not drawn again
    assert eye_of(page) == pytest.approx(turned, abs=1e-6)  # still turned


def heap_mb(page) -> float:
    """The tab's JavaScript heap after a full garbage collection, in MB."""
    page.context.new_cdp_session(page).send("HeapProfiler.collectGarbage")
    return page.evaluate("performance.memory.usedJSHeapSize") / 1e6


@pytest.mark.parametrize("page", SIZES[:1], indirect=True, ids=["1400x1000"])
def test_leaving_the_page_frees_its_graphs(server, page):
    """Plotly's window listeners hold a graph, its data and its WebGL context until it is purged: unpurged, each
    visit of the page kept about 17 MB."""
    def visit_latent_and_leave():
        page.get_by_role("link", name="Latent space").first.click()
        wait_until_idle(page)
        page.locator(PLOT).nth(1).wait_for(timeout=120_000)
        wait_until_idle(page)
        page.get_by_role("link", name="Home").first.click()
        wait_until_idle(page)

    page.goto(server)
    wait_until_idle(page)
    visit_latent_and_leave()
    before = heap_mb(page)
    for _ in range(3):
        visit_latent_and_leave()
    assert heap_mb(page) - before < 12, (before, heap_mb(page))
