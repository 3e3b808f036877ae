"""A hostile visitor forges the websocket: "My models" must only ever rename or delete the visitor's own models.

The "My models" form sends its selectbox's value from the browser. Here Playwright rewrites that value in
every outgoing BackMsg (rerun_script.widget_states.widgets[].string_value) to a file that is not one of the
visitor's models (a file outside the repo, a shipped model, a relative path), then presses Delete or Rename.
Every such file must survive byte for byte, the visitor's own model too, and the sidebar must say it could not.
"""
from __future__ import annotations

import contextlib
import hashlib
import secrets
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg

from vae.checkpoint import checkpoint_dir, save_checkpoint
from vae.model import ConvVAE
from vae.server import registry

from streamlit_server import ARTIFACTS, ERROR_SELECTOR, ROOT, wait_until_idle

CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)
PICK_KEY = "retrain_models_pick"
STOLEN_NAME = "stolen-name"

pytestmark = pytest.mark.browser


@pytest.fixture
def space():
    """A visitor's private space token, and a model of theirs in checkpoints/: (token, model path)."""
    token = "hostile-test-" + secrets.token_hex(8)
    path = CHECKPOINTS / f"{token}.pt"
    try:
        save_checkpoint(ConvVAE(2), path, {"owner": registry.owner_key(token)})
        yield token, path
    finally:
        path.unlink(missing_ok=True)


@pytest.fixture
def victim(tmp_path):
    """A file outside the repo that no visitor may touch."""
    path = tmp_path / "victim.txt"
    path.write_bytes(b"not a model: " + secrets.token_bytes(32))
    return path


def forge_widget(page, key: str, value: str) -> list[str]:
    """From now on, every rerun this page sends carries `value` for the widget with user key `key`.

    Returns the list of widget ids forged so far (it grows as messages go out), to check the forgery happened.
    """
    forged: list[str] = []

    def handler(ws):
        server = ws.connect_to_server()

        def outgoing(message):
            if isinstance(message, bytes):
                msg = BackMsg()
                msg.ParseFromString(message)
                if msg.WhichOneof("type") == "rerun_script":
                    for widget in msg.rerun_script.widget_states.widgets:
                        if widget.id.endswith("-" + key):
                            widget.string_value = value  # what a selectbox sends: the chosen option's text
                            forged.append(widget.id)
                    message = msg.SerializeToString()
            server.send(message)

        ws.on_message(outgoing)
        server.on_message(ws.send)

    page.route_web_socket("**/_stcore/stream", handler)
    return forged


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def screenshot_on_failure(page, name: str):
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"hostile-{name}.png"), full_page=True)
        raise


def press_with_forged_pick(server, page, token: str, forged_value: str, action: str) -> list[str]:
    """Open the visitor's space, forge the "My models" pick, press `action`.

    A forged pick must be refused at the press itself. A confirmation can only appear if the server
    got the visitor's real pick, i.e. the forgery missed that message (seen once on a loaded machine):
    then "Keep it" is pressed — never "Yes, delete", which would delete the visitor's own model by the
    test's own hand — and the press is tried again. So is a press that sent no rerun at all (seen once in
    CI: the click landed while the sidebar was being redrawn).
    """
    forged = forge_widget(page, PICK_KEY, forged_value)
    page.goto(f"{server}/?space={token}")
    wait_until_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Retrain a model").click()
    for _ in range(3):
        if action == "Rename":
            sidebar.get_by_label("New name", exact=True).fill(STOLEN_NAME)
        sent_before = len(forged)
        sidebar.get_by_role("button", name=action).click()
        wait_until_idle(page)
        keep = sidebar.get_by_role("button", name="Keep it")
        if keep.count():
            keep.first.click()
            wait_until_idle(page)
        elif len(forged) > sent_before:
            break
        # else the press sent nothing (it landed while the sidebar was being redrawn): press again
    return forged


TARGETS = {  # name → (value forged into the pick, the file it points at)
    "outside": (None, None),  # the victim fixture's absolute path
    "shipped": (str(CHECKPOINTS / "vae-z2.pt"), CHECKPOINTS / "vae-z2.pt"),
    "relative": ("../README.md", ROOT / "README.md"),  # relative to checkpoints/
}


@pytest.mark.parametrize("action", ["Delete", "Rename"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_a_forged_pick_touches_no_file_but_the_visitors_own(server, page, space, victim, target, action):
    token, own_model = space
    forged_value, protected = TARGETS[target]
    if protected is None:
        forged_value, protected = str(victim), victim
    before = {path: sha256(path) for path in (protected, own_model)}
    backup = protected.read_bytes()  # put back if the app fails the test by damaging it
    folders = {CHECKPOINTS, ROOT, protected.parent, (ROOT / forged_value).resolve().parent,
               (CHECKPOINTS / forged_value).resolve().parent}
    stolen = [folder / f"{STOLEN_NAME}.pt" for folder in folders if not (folder / f"{STOLEN_NAME}.pt").exists()]
    with screenshot_on_failure(page, f"{target}-{action.lower()}"):
        try:
            forged = press_with_forged_pick(server, page, token, forged_value, action)
            assert forged, f"no outgoing widget id contained {PICK_KEY!r}: the forgery never reached the server"
            for path, digest in before.items():
                assert path.exists(), f"{action} with a forged pick removed {path}"
                assert sha256(path) == digest, f"{action} with a forged pick changed {path}"
            assert not [p for p in stolen if p.exists()], f"a forged rename created {STOLEN_NAME}.pt"
            sidebar = page.locator('[data-testid="stSidebar"]')
            assert sidebar.locator(ERROR_SELECTOR).count() or sidebar.get_by_text("Could not").count(), \
                "the sidebar shows no error after a forged " + action.lower()
        finally:
            for path in stolen:
                path.unlink(missing_ok=True)
            if not protected.exists() or sha256(protected) != before[protected]:
                protected.write_bytes(backup)


FORGED_CHOICES = {  # widget key → (page, texts to click, each making a rerun that sends the widget, a value no option has)
    "draw_flaw": ("draw", ["Test digit", "Random"], "../../etc/passwd"),
    "draw_input": ("draw", ["Test digit"], "Upload'; DROP TABLE"),
    "draw_spot_mode": ("draw", ["Test digit", "Manual level"], "Manual"),
    "hist_rule": ("histograms", ["training maximum"], "__class__"),
    "verdict_score": ("draw", ["Test digit", "Random"], "__import__('os')"),
    "latent_size": ("latent", ["2"], "65"),
}


@pytest.mark.parametrize("key", list(FORGED_CHOICES))
def test_a_forged_choice_falls_back_to_an_offered_one_without_an_error(server, page, key):
    """A radio or selectbox hands the page any string the browser sends; the page must use an offered one."""
    where, clicks, value = FORGED_CHOICES[key]
    forged = forge_widget(page, key, value)
    page.goto(f"{server}/{where}")
    wait_until_idle(page)
    main = page.locator('[data-testid="stMain"]')
    with screenshot_on_failure(page, f"choice-{key}"):
        for text in clicks:
            main.get_by_text(text, exact=True).first.click()
            wait_until_idle(page)
        assert forged, f"no outgoing widget id contained {key!r}"
        errors = page.locator(ERROR_SELECTOR)
        assert not errors.count(), errors.first.inner_text()[:300]
