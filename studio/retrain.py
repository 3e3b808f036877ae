"""Sidebar "Retrain": train an AE or VAE in the background, watch it learn, then use it on every page.

Not a page of its own: `studio.sidebar.sidebar()` calls `retrain_sidebar()` on every page. The training
itself runs in a child process (vae/jobs.py), so drawing and exploring go on meanwhile. Jobs and
models belong to the visitor (state.visitor_key): only they see their jobs' progress, cancel them,
and rename or delete their models.
"""
from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from studio import caches, state
from vae.checkpoint import checkpoint_dir
from vae.server import jobs, registry
from vae.server.limits import LIMITS
from vae.training_run import progress_fraction, progress_line

SEEN_KEY = "retrain_seen"  # session state: ids of this visitor's ended jobs already acted upon
TRAINABLE_KINDS = ("vae", "ae", "fc-vae", "fc-ae")
MODELS_MESSAGE_KEY = "retrain_models_message"  # session state: (kind, text) after a rename or delete
PICK_KEY, NEW_NAME_KEY = "retrain_models_pick", "retrain_models_new_name"
CONFIRM_KEY = "retrain_models_confirm"  # session state: file name waiting for "Yes, delete"
CANCEL_WAIT_S = 1.0  # Cancel waits this long for the job to end, so the next view already says it did
CLOSE_REFRESH_S = 1.0  # while a cancel is on its way, the progress is redrawn this often


def train_one_hint(kind: str | None = None, latent: int | None = None) -> str:
    """Where a web visitor trains a missing model: the sidebar's Retrain panel, never the command line."""
    settings = []
    if kind is not None:
        settings.append(f"Model {kind.upper()}")
    if latent is not None:
        settings.append(f"Latent size {latent}")
    return ("Train one in the sidebar: **Retrain a model**" + (f" ({', '.join(settings)})" if settings else "")
            + "; it appears in the model picker when it is done.")


def retrain_sidebar() -> None:
    manager = jobs.shared_manager()
    select_new_models(manager.jobs(owner=state.visitor_key()))
    with st.expander("Retrain a model", icon=":material/model_training:"):
        progress_area = st.container()  # above the form, filled once the form may have started a job
        retrain_form(manager)
        mine = manager.jobs(owner=state.visitor_key())
        with progress_area:
            if any(job.active and job.cancel_requested for job in mine):
                live_progress_closely()
            elif any(job.active for job in mine):
                live_progress()
            for job in mine:
                if not job.active:
                    show_outcome(manager, job)
        others = manager.active_count() - sum(job.active for job in mine)
        if others:
            waiting = manager.waiting_count() - sum(job.state == jobs.QUEUED for job in mine)
            st.caption(f"{others} training{'s' if others != 1 else ''} started in another browser session "
                       f"{'are' if others != 1 else 'is'} running or waiting on this server"
                       + (f" ({waiting} waiting)." if waiting else "."))
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
        st.session_state.pop(state.MODEL_KEY, None)
        state.select_model(newly_saved)
        st.session_state[PICK_KEY] = newly_saved.name  # ready to be renamed under "My models"
        st.rerun()


def retrain_form(manager: jobs.JobManager) -> None:
    # enter_to_submit=False: Enter in a number field must not start a long training by accident
    with st.form("retrain_form", border=False, enter_to_submit=False):
        kind = st.radio("Model", TRAINABLE_KINDS, format_func=str.upper, horizontal=True, key="retrain_kind",
                        help="The report's convolutional VAE or AE, or the fully-connected baseline (FC-, "
                             "report §1–2) with as many parameters.")
        left, right = st.columns(2)
        ranges = LIMITS.form
        beta = right.number_input("KL weight β", *ranges["beta"][:3], step=0.5, key="retrain_beta",
                                  help="VAE only (an AE ignores it); 1 is the report's VAE.")
        latent_dim = left.number_input("Latent size", *ranges["latent_dim"][:3], key="retrain_latent")
        epochs = right.number_input("Epochs", *ranges["epochs"][:3], key="retrain_epochs")
        batch_size = left.number_input("Batch size", *ranges["batch_size"][:3], step=16, key="retrain_batch")
        train_size = right.number_input("Training images", *ranges["train_size"][:3], step=100, key="retrain_size",
                                        help="A random subset of the chosen digits; 60,000 means all of them.")
        lr = st.select_slider("Peak learning rate", LIMITS.lr_choices, value=ranges["lr"].default,
                              format_func=lambda v: f"{v:g}", key="retrain_lr",
                              help="One-cycle schedule: warm up to this rate, then anneal to ~0.")
        digits = st.multiselect("Digits to train on", list(range(10)), key="retrain_digits",
                                placeholder="all ten digits",
                                help="One digit makes a one-class model: every other digit becomes an anomaly.")
        st.caption(f"A shared server: one training per visitor at a time, at most {LIMITS.max_image_epochs:,} "
                   f"image-epochs each (epochs × training images, e.g. 10 epochs of all 60,000), "
                   f"{LIMITS.models_per_visitor} saved models per visitor. When all {LIMITS.job_slots} training "
                   f"slots are busy, a job waits its turn.")
        submitted = st.form_submit_button("Train in the background", type="primary", icon=":material/play_arrow:")
    if submitted:
        try:
            spec = jobs.spec_from_form(kind, latent_dim, epochs, batch_size, lr, beta, digits, train_size)
            manager.start(spec, owner=state.visitor_key(), address=state.visitor_address())
        except (ValueError, jobs.JobLimitReached) as exc:
            st.error(str(exc))


@st.fragment(run_every=LIMITS.progress_refresh_s)
def live_progress() -> None:
    """This session's running or waiting jobs, redrawn every few seconds without rerunning the page (once a
    second, with Streamlit's garbage collection after each run, an open tab cost the server 0.11 core)."""
    show_progress()


@st.fragment(run_every=CLOSE_REFRESH_S)
def live_progress_closely() -> None:
    """The same, every second, while a cancel is on its way (seconds at most)."""
    show_progress()


def show_progress() -> None:
    manager = jobs.shared_manager()
    mine = manager.jobs(owner=state.visitor_key())
    seen = st.session_state.get(SEEN_KEY, set())
    if any(not job.active and job.id not in seen for job in mine):
        st.rerun()  # the whole app: select the new model, show how the job ended, stop refreshing
    st.caption("Training runs in the background: keep drawing and exploring. Closing this tab does not "
               "stop training; the model will appear in the picker.")
    for job in mine:
        if job.active:
            show_running_job(manager, job)


def cancel_job(manager: jobs.JobManager, job_id: str, owner: str) -> None:
    """Cancel, then wait up to CANCEL_WAIT_S for the process to end, so the page shows it ended."""
    if manager.cancel(job_id, owner):
        manager.wait(job_id, CANCEL_WAIT_S)


def show_running_job(manager: jobs.JobManager, job: jobs.JobView) -> None:
    st.markdown(f"**{jobs.describe_spec(job.spec)}**")
    now = time.time()
    if job.state in (jobs.RUNNING, jobs.SAVING):
        st.progress(progress_fraction(job.progress, job.first_report, now), text=progress_line(job.progress, now))
    else:
        st.progress(0.0, text=job.status_line)
    if job.curve:
        st.plotly_chart(loss_figure(job.curve), key=f"retrain_curve_{job.id}", config={"displayModeBar": False})
    if job.cancel_requested:
        st.caption("Cancelling…")
    elif job.state in (jobs.QUEUED, jobs.STARTING, jobs.RUNNING):
        st.button("Cancel", key=f"retrain_cancel_{job.id}", icon=":material/stop:",
                  on_click=cancel_job, args=(manager, job.id, job.owner),
                  help="Stops the training at once (the process is ended); nothing is saved. Once the model is "
                       "being saved it can no longer be cancelled.")


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
        selected = state.is_selected(job.path)
        st.success(job.outcome + (" It is selected in the model picker above." if selected else ""))
    elif job.state == jobs.FAILED:
        st.error(job.outcome + " The selected model is unchanged.")
    else:
        st.info(job.outcome)
    st.button("Dismiss", key=f"retrain_dismiss_{job.id}", on_click=manager.forget, args=(job.id,))


def my_models() -> None:
    """Rename or delete the visitor's own checkpoints; nobody else's, and never a shipped one."""
    st.markdown("**My models**")
    own = own_entries()
    message = st.session_state.pop(MODELS_MESSAGE_KEY, None)
    if message:
        (st.success if message[0] == "success" else st.error)(message[1])
    if not own:
        st.caption("Models you train appear here to rename or delete; everyone may use them. "
                   "Keep this page's URL to come back to them.")
        return
    labels = {e.path.name: e.label for e in own}
    if st.session_state.get(PICK_KEY) not in labels:
        st.session_state.pop(PICK_KEY, None)  # deleted or renamed meanwhile: do not show a stale choice
    with st.form("retrain_models_form", border=False):
        st.selectbox("Model", list(labels), format_func=lambda name: labels.get(name, name), key=PICK_KEY)
        st.text_input("New name", key=NEW_NAME_KEY, placeholder="e.g. vae-z16-ones",
                      max_chars=LIMITS.name_length)
        rename_col, delete_col = st.columns(2)
        rename_col.form_submit_button("Rename", on_click=rename_picked)
        delete_col.form_submit_button("Delete", on_click=ask_to_delete, icon=":material/delete:")
    confirm = st.session_state.get(CONFIRM_KEY)
    if confirm in labels:
        st.warning(f"Delete **{confirm}** for good?")
        # One above the other, the sidebar's full width each: side by side, "Yes, delete" was cut to "Yes, delet…".
        st.button("Yes, delete it", key="retrain_models_yes", type="primary", on_click=delete_confirmed,
                  icon=":material/delete_forever:", width="stretch")
        st.button("Keep it", key="retrain_models_keep", on_click=st.session_state.pop, args=(CONFIRM_KEY, None),
                  width="stretch")


def own_entries() -> list[registry.CheckpointEntry]:
    return registry.owned(caches.checkpoint_entries(), state.visitor_key())


def picked_name() -> str | None:
    """The picked model's file name, if it is one this visitor was offered; None for anything else a
    browser may send (a path, a label, a name of someone else's model)."""
    pick = st.session_state.get(PICK_KEY)
    return pick if pick in {e.path.name for e in own_entries()} else None


def _say(kind: str, text: str) -> None:
    st.session_state[MODELS_MESSAGE_KEY] = (kind, text)


# Callbacks run before the next script run, when the picker's value may still be changed.
def rename_picked() -> None:
    name = picked_name()
    if name is None:
        _say("error", "Could not rename: pick one of your models.")
        return
    try:
        target = registry.rename(name, st.session_state.get(NEW_NAME_KEY, ""), state.visitor_key())
    except (ValueError, OSError) as exc:
        _say("error", f"Could not rename {name}: {registry.for_visitors(exc)}")
        return
    if state.is_selected(checkpoint_dir() / name):
        state.select_model(target)
    st.session_state[PICK_KEY] = target.name
    st.session_state[NEW_NAME_KEY] = ""
    _say("success", f"Renamed {name} to {target.name}.")


def ask_to_delete() -> None:
    name = picked_name()
    if name is None:
        _say("error", "Could not delete: pick one of your models.")
        st.session_state.pop(CONFIRM_KEY, None)
        return
    st.session_state[CONFIRM_KEY] = name


def delete_confirmed() -> None:
    name = st.session_state.pop(CONFIRM_KEY, None)
    try:
        registry.delete(name, state.visitor_key())
    except OSError as exc:
        _say("error", f"Could not delete {name}: {registry.for_visitors(exc)}")
        return
    st.session_state.pop(PICK_KEY, None)
    was_selected = state.is_selected(checkpoint_dir() / name)
    if was_selected:
        st.session_state.pop(state.MODEL_KEY)  # the picker falls back to the default model
    _say("success", f"Deleted {name}." + (" The default model is selected again." if was_selected else ""))
