"""The Detection benchmark page in AppTest: the numbers shown are the JSON's, which the CLI wrote from the shipped models."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from studio import navigation, state
from vae import benchmark

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


@pytest.fixture(scope="module")
def page():
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=300)
    at.switch_page(navigation.page_file("benchmark")).run()
    return at


def test_one_class_table_shows_the_benchmark_json_beside_the_published_methods(page):
    assert not page.exception, page.exception
    stored = benchmark.read_results("one-class")["results"]["summary"]
    table = page.dataframe[0].value
    ours = table[table["source"] == "this app"].set_index("method")
    for score, values in stored.items():
        assert ours.loc[score, "mean AUROC"] == pytest.approx(values["mean"])
        assert ours.loc[score, "2"] == pytest.approx(values["per_digit"]["2"])
    assert set(table["source"]) == {"this app"}
    literature = page.dataframe[1].value.set_index("method")
    assert literature["mean AUROC"].to_dict() == {p["method"]: p["mean_auroc"] for p in benchmark.PUBLISHED}
    assert literature.loc["ARNet", "mean AUROC"] == 98.3 and not literature.isna().any().any()  # no "None" shown
    assert "not in Golan & El-Yaniv's paper" in literature.loc["GEOM (GeoTrans)", "where the number comes from"]


def test_roc_curve_follows_the_chosen_digit_and_score(page):
    page.selectbox(key="bench_digit").set_value(8).run()
    assert not page.exception, page.exception
    shown = page.session_state["bench_digit"]
    assert shown == 8
    page.selectbox(key="bench_score").set_value("squared_error").run()
    assert not page.exception, page.exception
    assert "AUROC" in page.get("plotly_chart")[1].proto.spec


def test_a_one_class_model_selected_in_the_sidebar_is_measured_on_its_digits(page):
    path = benchmark.one_class_path("vae", 64, 1)
    page.session_state[state.MODEL_KEY] = str(path)
    page.run()
    assert not page.exception, page.exception
    result = next((d.value for d in page.dataframe if list(d.value.columns) == ["score", "AUROC", "note"]), None)
    assert result is not None and set(result["score"]) == {"squared_error", "blurred_error", "combined"}
    assert (result["AUROC"] > 95).all()


def test_the_position_shifts_section_shows_the_shift_json(page):
    from vae import shift_benchmark

    stored = benchmark.read_results("shift")
    assert stored is not None, "checkpoints/benchmark/shift.json is missing: run python -m vae benchmark shift"
    assert any(h.value.startswith("Position shifts") for h in page.header)
    assert shift_benchmark.conclusion(stored) in [c.value for c in page.caption]
    charts = [c for c in page.get("plotly_chart")]
    assert len(charts) >= 3  # the one-class ROC, and error along the shifts and the rotations
    rows = {(r["model"], r["training"]): r for r in shift_benchmark.headline(stored)}
    table = next(d.value for d in page.dataframe if "× at 4 px" in d.value.columns)
    shown = table.set_index(["model", "training"])
    for key, row in rows.items():
        assert shown.loc[key, "error 4 px"] == pytest.approx(row["error_4"])
        assert shown.loc[key, "false alarms 4 px, %"] == pytest.approx(row["false_alarms_4"])
    page.selectbox(key="bench_shift_metric").set_value("false_alarms").run()
    assert not page.exception, page.exception


def test_an_inverted_or_guessing_auroc_is_said_in_words():
    assert benchmark.auroc_note(0.7).startswith("inverted")
    assert benchmark.auroc_note(52.0) == "guessing"
    assert benchmark.auroc_note(97.0) == ""
