"""The sidebar's Retrain section, driven through Streamlit's AppTest with real background jobs."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from studio import navigation, retrain, state
from vae.checkpoint import SHIPPED, checkpoint_dir, save_checkpoint
from vae.model import ConvVAE
from vae.server import jobs, registry
from vae.training_run import TrainingSpec

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 300  # the machine is shared; this bounds a hang, it is not a speed requirement

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("app_environment")]


def run_app(at: AppTest) -> AppTest:
    """Run the app's script, as the browser does on every interaction; no exception."""
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app():
    return run_app(AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=120))


def shipped_state() -> dict:
    return {p.name: (p.stat().st_mtime, p.stat().st_size) for p in checkpoint_dir().glob("*.pt") if p.name in SHIPPED}


def rerun_until(at: AppTest, ready) -> None:
    """Re-run the app (as the browser's once-a-second refresh would) until `ready()` or the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not ready() and time.monotonic() < deadline:
        time.sleep(1)
        run_app(at)


def visitor(at: AppTest) -> str:
    """The owner key of the AppTest's visitor."""
    return registry.owner_key(at.session_state[state.TOKEN_KEY])


def own_jobs(at: AppTest) -> list[jobs.JobView]:
    return jobs.shared_manager().jobs(owner=visitor(at))


def test_retraining_from_the_sidebar_selects_the_new_model(app):
    shipped_before = shipped_state()
    previous_choice = app.selectbox(key=state.MODEL_KEY).value
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
        assert job.path.parent == checkpoint_dir() and job.path.name.startswith("ae-z2-d01-")
        picker = app.selectbox(key=state.MODEL_KEY)
        assert picker.value == str(job.path) != previous_choice
        assert any(job.outcome in s.value for s in app.success)
        assert shipped_state() == shipped_before  # the shipped checkpoints were not touched

        # My models: rename it (it stays selected), then delete it (the default model is selected again)
        assert not any(name in option for option in app.selectbox(key=retrain.PICK_KEY).options for name in SHIPPED)
        renamed = checkpoint_dir() / f"retrain-test-{job.id}.pt"
        assert app.selectbox(key=retrain.PICK_KEY).value == job.path.name  # the new model, ready to rename
        app.text_input(key=retrain.NEW_NAME_KEY).set_value(renamed.stem)
        next(b for b in app.button if b.label == "Rename").click()
        run_app(app)
        assert renamed.exists() and not job.path.exists()
        assert app.selectbox(key=state.MODEL_KEY).value == str(renamed)

        app.selectbox(key=retrain.PICK_KEY).set_value(renamed.name)
        next(b for b in app.button if b.label == "Delete").click()
        run_app(app)
        assert renamed.exists()  # not before the visitor confirms
        assert any(f"Delete **{renamed.name}** for good?" in w.value for w in app.sidebar.warning)
        next(b for b in app.button if b.label == "Yes, delete it").click()
        run_app(app)
        assert not renamed.exists()
        assert all(renamed.name not in picker.options for picker in app.sidebar.selectbox if picker.key == retrain.PICK_KEY)
        assert Path(app.selectbox(key=state.MODEL_KEY).value).name == state.DEFAULT_MODEL
        assert any("The default model is selected again" in s.value for s in app.success)
    finally:  # never leave a test model in the shared checkpoints/ folder
        for view in own_jobs(app):
            for path in (view.path, checkpoint_dir() / f"retrain-test-{view.id}.pt"):
                if path is not None and path.exists():
                    path.unlink()


def test_a_diverging_training_shows_a_clear_error_and_keeps_the_selection(app):
    before = app.selectbox(key=state.MODEL_KEY).value
    # the form offers learning rates up to 1.0, which this trainer survives; 10 makes the loss explode
    exploding = TrainingSpec(kind="vae", latent_dim=2, epochs=3, batch_size=128, lr=10.0, train_size=512)
    jobs.shared_manager().start(exploding, owner=visitor(app))
    rerun_until(app, lambda: not own_jobs(app)[0].active)
    run_app(app)
    errors = [e.value for e in app.error]
    assert any(e.startswith("Training failed: loss exploded") and "nothing was saved" in e for e in errors), errors
    assert app.selectbox(key=state.MODEL_KEY).value == before


def app_for(token: str | None) -> AppTest:
    """A visitor opening the app's URL, with ?space=TOKEN if given (a reload or a bookmark)."""
    at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=120)
    at.session_state[state.VERDICT_SCORE_KEY] = "blurred_error"  # precomputed: these tests are about jobs, not scores
    if token is not None:
        at.query_params[state.SPACE_PARAM] = token
    return run_app(at)


def test_a_visitor_owns_their_models_across_a_reload_and_others_may_only_use_them():
    owner_token = registry.new_token()
    model = checkpoint_dir() / f"owned-by-test-{owner_token[:8]}.pt"
    save_checkpoint(ConvVAE(2), model, {"owner": registry.owner_key(owner_token), "test_loss": {"total": 500.0}})
    try:
        owner = app_for(owner_token)  # the owner comes back through the URL that holds their token
        assert owner.session_state[state.TOKEN_KEY] == owner_token
        picker = owner.selectbox(key=retrain.PICK_KEY)  # AppTest lists a selectbox's options as their labels
        assert picker.value == model.name and len(picker.options) == 1 and model.stem in picker.options[0]
        assert any(model.stem in label and label.endswith("· yours") for label in owner.selectbox(key=state.MODEL_KEY).options)

        stranger = app_for(None)  # a new visitor gets a new token, kept in the URL
        token = stranger.session_state[state.TOKEN_KEY]
        assert token != owner_token and registry.valid_token(token) and stranger.query_params[state.SPACE_PARAM] == token
        labels = stranger.selectbox(key=state.MODEL_KEY).options
        assert any(model.stem in label and "yours" not in label for label in labels)  # may use it
        assert not [p for p in stranger.sidebar.selectbox if p.key == retrain.PICK_KEY]  # may not change it

        forger = app_for("../../" + owner_token)  # not a token: a fresh one instead
        assert forger.session_state[state.TOKEN_KEY] != owner_token
        assert not [p for p in forger.sidebar.selectbox if p.key == retrain.PICK_KEY]
    finally:
        model.unlink(missing_ok=True)


def test_a_selected_model_deleted_elsewhere_falls_back_with_a_notice():
    token = registry.new_token()
    model = checkpoint_dir() / f"deleted-elsewhere-{token[:8]}.pt"
    save_checkpoint(ConvVAE(2), model, {"owner": registry.owner_key(token)})
    try:
        at = app_for(token)
        at.selectbox(key=state.MODEL_KEY).set_value(str(model))
        run_app(at)
        registry.delete(model.name, registry.owner_key(token))  # e.g. in the visitor's other tab
        run_app(at)
        assert Path(at.selectbox(key=state.MODEL_KEY).value).name == state.DEFAULT_MODEL
        assert any(f"{model.name} is no longer available" in i.value for i in at.sidebar.info)
    finally:
        model.unlink(missing_ok=True)


def test_the_owner_cancels_a_job_from_another_page_after_a_reload_and_nobody_else_can():
    token = registry.new_token()
    long_job = TrainingSpec(kind="ae", latent_dim=2, epochs=50, batch_size=16, train_size=4096)
    job = jobs.shared_manager().start(long_job, owner=registry.owner_key(token))
    try:
        stranger = app_for(None)
        assert not [b for b in stranger.button if b.label == "Cancel"]  # not theirs to cancel

        owner = app_for(token)  # the owner reloads the page: a new session, the same URL
        owner.switch_page(navigation.page_file("histograms"))
        run_app(owner)
        rerun_until(owner, lambda: jobs.shared_manager().get(job.id).state == jobs.RUNNING)
        cancel = [b for b in owner.button if b.label == "Cancel"]
        assert len(cancel) == 1
        cancel[0].click()
        run_app(owner)
        assert jobs.shared_manager().wait(job.id, DEADLINE_S).state == jobs.CANCELLED
    finally:
        jobs.shared_manager().cancel(job.id)
