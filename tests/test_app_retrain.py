"""The sidebar's Retrain section, driven through Streamlit's AppTest with real background jobs."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages import common, retrain
from vae import jobs
from vae.checkpoint import CHECKPOINT_DIR
from vae.registry import SHIPPED
from vae.training_run import TrainingSpec

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 300  # the machine is shared; this bounds a hang, it is not a speed requirement

pytestmark = pytest.mark.usefixtures("app_environment")


def run_app(at: AppTest) -> AppTest:
    """Run app.py itself, as the browser does on every interaction.

    AppTest starts each run with a fresh page manager which, seeing a folder named pages/ beside
    app.py, takes the app for an old-style multipage app and, from the second run on, runs only the
    last page's file (no sidebar). Asking for no particular page makes it run app.py, whose
    st.navigation then picks the page.
    """
    at._page_hash = at._finished_page_script_hash = ""
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app():
    return run_app(AppTest.from_file(str(ROOT / "app.py"), default_timeout=120))


def shipped_state() -> dict:
    return {p.name: (p.stat().st_mtime, p.stat().st_size) for p in CHECKPOINT_DIR.glob("*.pt") if p.name in SHIPPED}


def rerun_until(at: AppTest, ready) -> None:
    """Re-run the app (as the browser's once-a-second refresh would) until `ready()` or the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not ready() and time.monotonic() < deadline:
        time.sleep(1)
        run_app(at)


def own_jobs(at: AppTest) -> list[jobs.JobView]:
    return jobs.shared_manager().jobs(owner=at.session_state[retrain.OWNER_KEY])


def test_retraining_from_the_sidebar_selects_the_new_model(app):
    shipped_before = shipped_state()
    previous_choice = app.selectbox(key=common.MODEL_KEY).value
    app.radio(key="retrain_kind").set_value("ae")
    app.number_input(key="retrain_latent").set_value(2)
    app.number_input(key="retrain_epochs").set_value(1)
    app.number_input(key="retrain_batch").set_value(128)
    app.multiselect(key="retrain_digits").set_value([0, 1])
    app.number_input(key="retrain_size").set_value(500)
    next(b for b in app.button if b.label == "Train in the background").click()
    run_app(app)
    started = own_jobs(app)
    assert len(started) == 1 and started[0].spec == TrainingSpec(
        kind="ae", latent_dim=2, epochs=1, batch_size=128, digits=(0, 1), train_size=500)
    try:
        rerun_until(app, lambda: not own_jobs(app)[0].active)
        run_app(app)  # the first run that sees the job ended selects its model
        job = own_jobs(app)[0]
        assert job.state == jobs.DONE, job.error
        assert job.path.parent == CHECKPOINT_DIR and job.path.name.startswith("ae-z2-d01-")
        picker = app.selectbox(key=common.MODEL_KEY)
        assert picker.value == str(job.path) != previous_choice
        assert any(job.outcome in s.value for s in app.success)
        assert shipped_state() == shipped_before  # the shipped checkpoints were not touched

        # My models: rename it (it stays selected), then delete it (the default model is selected again)
        assert not any(name in option for option in app.selectbox(key=retrain.PICK_KEY).options for name in SHIPPED)
        renamed = CHECKPOINT_DIR / f"retrain-test-{job.id}.pt"
        assert app.selectbox(key=retrain.PICK_KEY).value == str(job.path)  # the new model, ready to rename
        app.text_input(key=retrain.NEW_NAME_KEY).set_value(renamed.stem)
        next(b for b in app.button if b.label == "Rename").click()
        run_app(app)
        assert renamed.exists() and not job.path.exists()
        assert app.selectbox(key=common.MODEL_KEY).value == str(renamed)

        app.selectbox(key=retrain.PICK_KEY).set_value(str(renamed))
        next(b for b in app.button if b.label == "Delete").click()
        run_app(app)
        assert not renamed.exists()
        assert Path(app.selectbox(key=common.MODEL_KEY).value).name == common.DEFAULT_MODEL
        assert any("The default model is selected again" in s.value for s in app.success)
    finally:  # never leave a test model in the shared checkpoints/ folder
        for view in own_jobs(app):
            for path in (view.path, CHECKPOINT_DIR / f"retrain-test-{view.id}.pt"):
                if path is not None and path.exists():
                    path.unlink()


def test_a_diverging_training_shows_a_clear_error_and_keeps_the_selection(app):
    before = app.selectbox(key=common.MODEL_KEY).value
    # the form offers learning rates up to 1.0, which this trainer survives; 10 makes the loss explode
    exploding = TrainingSpec(kind="vae", latent_dim=2, epochs=3, batch_size=128, lr=10.0, train_size=512)
    jobs.shared_manager().start(exploding, owner=app.session_state[retrain.OWNER_KEY])
    rerun_until(app, lambda: not own_jobs(app)[0].active)
    run_app(app)
    errors = [e.value for e in app.error]
    assert any(e.startswith("Training failed: loss exploded") and "nothing was saved" in e for e in errors), errors
    assert app.selectbox(key=common.MODEL_KEY).value == before
