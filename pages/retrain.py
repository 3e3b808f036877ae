"""Sidebar "Retrain": train an AE or VAE in the background, watch it learn, then use it on every page.

Not a page of its own: `common.sidebar()` calls `retrain_sidebar()` on every page. The training
itself runs in a child process (vae/jobs.py), so drawing and exploring go on meanwhile.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from pages import common
from vae import jobs, registry
from vae.train import TrainConfig

OWNER_KEY = "retrain_owner"  # session state: this browser session's id, remembered by its jobs
SEEN_KEY = "retrain_seen"  # session state: ids of this session's ended jobs already acted upon
MODELS_MESSAGE_KEY = "retrain_models_message"  # session state: (kind, text) after a rename or delete
PICK_KEY, NEW_NAME_KEY = "retrain_models_pick", "retrain_models_new_name"


@st.cache_resource
def job_manager() -> jobs.JobManager:
    return jobs.shared_manager()


def session_owner() -> str:
    if OWNER_KEY not in st.session_state:
        st.session_state[OWNER_KEY] = uuid.uuid4().hex
    return st.session_state[OWNER_KEY]


def retrain_sidebar() -> None:
    manager = job_manager()
    select_new_models(manager.jobs(owner=session_owner()))
    with st.expander("Retrain a model", icon=":material/model_training:"):
        progress_area = st.container()  # above the form, filled once the form may have started a job
        retrain_form(manager)
        mine = manager.jobs(owner=session_owner())
        with progress_area:
            if any(job.active for job in mine):
                live_progress()
            for job in mine:
                if not job.active:
                    show_outcome(manager, job)
        others = manager.active_count() - sum(job.active for job in mine)
        if others:
            st.caption(f"{others} training{'s' if others != 1 else ''} started in another browser session "
                       f"{'are' if others != 1 else 'is'} running on this server.")
        my_models()


def select_new_models(mine: list[jobs.JobView]) -> None:
    """Select each newly finished model, then rerun so the picker shows it.

    The picker was already drawn in this run, and Streamlit refuses to set a drawn widget's value, so
    its old value is dropped first (allowed); the new one then applies from the next run on.
    """
    seen = st.session_state.setdefault(SEEN_KEY, set())
    newly_saved = None
    for job in mine:
        if not job.active and job.id not in seen:
            seen.add(job.id)
            if job.state == jobs.DONE and job.path.exists():
                newly_saved = job.path
    if newly_saved is not None:
        st.session_state.pop(common.MODEL_KEY, None)
        common.select_model(newly_saved)
        st.session_state[PICK_KEY] = str(newly_saved)  # ready to be renamed under "My models"
        st.rerun()


def retrain_form(manager: jobs.JobManager) -> None:
    # enter_to_submit=False: Enter in a number field must not start a long training by accident
    with st.form("retrain_form", border=False, enter_to_submit=False):
        left, right = st.columns(2)
        kind = left.radio("Model", ["vae", "ae"], format_func=str.upper, horizontal=True, key="retrain_kind")
        beta = right.number_input("KL weight β", 0.0, 100.0, 1.0, step=0.5, key="retrain_beta",
                                  help="VAE only (an AE ignores it); 1 is the report's VAE.")
        latent_dim = left.number_input("Latent size", 1, 256, 16, key="retrain_latent")
        epochs = right.number_input("Epochs", 1, 200, 5, key="retrain_epochs")
        batch_size = left.number_input("Batch size", 16, 4096, TrainConfig.batch_size, step=16, key="retrain_batch")
        train_size = right.number_input("Training images", 100, jobs.ALL_TRAINING_IMAGES, jobs.ALL_TRAINING_IMAGES,
                                        step=100, key="retrain_size",
                                        help="A random subset of the chosen digits; 60,000 means all of them.")
        lr = st.select_slider("Peak learning rate", jobs.LR_CHOICES, value=TrainConfig.lr,
                              format_func=lambda v: f"{v:g}", key="retrain_lr",
                              help="One-cycle schedule: warm up to this rate, then anneal to ~0.")
        digits = st.multiselect("Digits to train on", list(range(10)), key="retrain_digits",
                                placeholder="all ten digits",
                                help="One digit makes a one-class model: every other digit becomes an anomaly.")
        submitted = st.form_submit_button("Train in the background", type="primary", icon=":material/play_arrow:")
    if submitted:
        try:
            spec = jobs.spec_from_form(kind, latent_dim, epochs, batch_size, lr, beta, digits, train_size)
            manager.start(spec, owner=session_owner())
        except (ValueError, jobs.JobLimitReached) as exc:
            st.error(str(exc))


@st.fragment(run_every=1)
def live_progress() -> None:
    """This session's running jobs, redrawn every second without rerunning the page."""
    manager = job_manager()
    mine = manager.jobs(owner=session_owner())
    seen = st.session_state.get(SEEN_KEY, set())
    if any(not job.active and job.id not in seen for job in mine):
        st.rerun()  # the whole app: select the new model, show how the job ended, stop refreshing
    st.caption("Training runs in the background: keep drawing and exploring. Closing this tab does not "
               "stop training; the model will appear in the picker.")
    for job in mine:
        if job.active:
            show_running_job(manager, job)


def show_running_job(manager: jobs.JobManager, job: jobs.JobView) -> None:
    st.markdown(f"**{jobs.describe_spec(job.spec)}**")
    st.progress(job.fraction_done, text=job.status_line)
    if job.curve:
        st.plotly_chart(loss_figure(job.curve), key=f"retrain_curve_{job.id}", config={"displayModeBar": False})
    if job.cancel_requested:
        st.caption("Cancelling…")
    elif job.state in (jobs.STARTING, jobs.RUNNING):
        st.button("Cancel", key=f"retrain_cancel_{job.id}", icon=":material/stop:",
                  on_click=manager.cancel, args=(job.id,), help="Stops within a second; nothing is saved.")


def loss_figure(curve) -> go.Figure:
    fig = go.Figure()
    for series, mode, name in (("train", "lines", "train (running mean)"), ("test", "lines+markers", "test")):
        xs = [x for x, s, _ in curve if s == series]
        ys = [y for _, s, y in curve if s == series]
        if xs:
            fig.add_scatter(x=xs, y=ys, mode=mode, name=name)
    fig.update_layout(height=220, margin=dict(l=0, r=0, t=30, b=0), xaxis_title="epoch",
                      yaxis_title="loss (nats/image)", legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"))
    return fig


def show_outcome(manager: jobs.JobManager, job: jobs.JobView) -> None:
    if job.state == jobs.DONE:
        selected = st.session_state.get(common.MODEL_KEY) == str(job.path)
        st.success(job.outcome + (" It is selected in the model picker above." if selected else ""))
    elif job.state == jobs.FAILED:
        st.error(job.outcome + " The selected model is unchanged.")
    else:
        st.info(job.outcome)
    st.button("Dismiss", key=f"retrain_dismiss_{job.id}", on_click=manager.forget, args=(job.id,))


def my_models() -> None:
    """Rename or delete the user's own checkpoints; the shipped ones are not listed."""
    st.markdown("**My models**")
    own = [e for e in common.checkpoint_entries() if not e.shipped]
    message = st.session_state.pop(MODELS_MESSAGE_KEY, None)
    if message:
        (st.success if message[0] == "success" else st.error)(message[1])
    if not own:
        st.caption("Models you train appear here to rename or delete. The shipped ones cannot be changed.")
        return
    labels = {str(e.path): e.label for e in own}
    with st.form("retrain_models_form", border=False):
        st.selectbox("Model", list(labels), format_func=labels.get, key=PICK_KEY)
        st.text_input("New name", key=NEW_NAME_KEY, placeholder="e.g. vae-z16-ones")
        rename_col, delete_col = st.columns(2)
        rename_col.form_submit_button("Rename", on_click=rename_picked)
        delete_col.form_submit_button("Delete", on_click=delete_picked, icon=":material/delete:")


# Callbacks run before the next script run, when the picker's value may still be changed.
def rename_picked() -> None:
    path = st.session_state.get(PICK_KEY)
    try:
        target = registry.rename(path, st.session_state.get(NEW_NAME_KEY, ""))
    except (ValueError, OSError) as exc:
        st.session_state[MODELS_MESSAGE_KEY] = ("error", f"Could not rename {Path(path).name}: {exc}")
        return
    if st.session_state.get(common.MODEL_KEY) == path:
        common.select_model(target)
    st.session_state[PICK_KEY] = str(target)
    st.session_state[NEW_NAME_KEY] = ""
    st.session_state[MODELS_MESSAGE_KEY] = ("success", f"Renamed {Path(path).name} to {target.name}.")


def delete_picked() -> None:
    path = st.session_state.get(PICK_KEY)
    try:
        registry.delete(path)
    except OSError as exc:
        st.session_state[MODELS_MESSAGE_KEY] = ("error", f"Could not delete {Path(path).name}: {exc}")
        return
    st.session_state.pop(PICK_KEY, None)
    was_selected = st.session_state.get(common.MODEL_KEY) == path
    if was_selected:
        st.session_state.pop(common.MODEL_KEY)  # the picker falls back to the default model
    st.session_state[MODELS_MESSAGE_KEY] = (
        "success", f"Deleted {Path(path).name}." + (" The default model is selected again." if was_selected else ""))
