"""studio.draw_inputs: which kept inputs go back into the Draw page's widgets, and the comparison list."""
import numpy as np

from studio.draw_inputs import with_compared
from vae.server.limits import LIMITS


def row(name, value=1.0, model="vae-z64.pt"):
    return {"input": name, "digit": np.full((28, 28), value, dtype=np.float32), "model_path": model}


def test_compared_digits_are_newest_first_without_repeats_and_at_most_five():
    rows = []
    for i in range(7):
        rows = with_compared(rows, row(f"test #{i}"))
    assert [r["input"] for r in rows] == ["test #6", "test #5", "test #4", "test #3", "test #2"]
    assert len(rows) == LIMITS.compared_digits
    rows = with_compared(rows, row("test #4"))  # again: moves to the front, listed once
    assert [r["input"] for r in rows] == ["test #4", "test #6", "test #5", "test #3", "test #2"]
    # The same name with another drawing, or through another model, is another row.
    rows = with_compared(with_compared([], row("drawing", 1.0)), row("drawing", 0.5))
    rows = with_compared(rows, row("drawing", 0.5, model="ae-z64.pt"))
    assert len(rows) == 3


def test_a_shift_slider_value_becomes_whole_pixels_within_the_range_whatever_the_browser_sends():
    from studio.draw_inputs import MAX_SHIFT, shift_amount

    assert [shift_amount(v) for v in (0, 3, -4, 2.6, MAX_SHIFT + 50, -1e9)] == [0, 3, -4, 3, MAX_SHIFT, -MAX_SHIFT]
    assert [shift_amount(v) for v in ("3", None, True, float("nan"), [1])] == [0, 0, 0, 0, 0]
