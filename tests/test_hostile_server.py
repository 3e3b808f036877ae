"""A hostile visitor with a plain websocket client (tests/streamlit_client.py) against a real `streamlit run app.py`
on 127.0.0.1: floods of reruns, messages a viewer may not send, huge messages and widget values, many connections.

Every client connects from its own loopback address (any 127.x.y.z reaches the server and counts as another
address), so the limits per address (vae/server/limits.py) apply to it alone. Each test is bounded in time.
"""
from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time

import pytest
from PIL import Image
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit_client import StreamlitClient, bytes_accepted_of_a_huge_message
from websockets.exceptions import ConnectionClosed, InvalidStatus

from vae.server.limits import LIMITS

from streamlit_server import ARTIFACTS, cpu_seconds, rss_mb, running_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(mnist_root):
    """(url, server pid) of one server for this file, warmed by a first visit."""
    with running_app(log_name="hostile-server.log", mnist_root=mnist_root) as (url, process):
        with StreamlitClient(url) as client:
            client.run(180)
        yield url, process.pid


class Flooder(threading.Thread):
    """Asks for a rerun of the home page `rate` times a second from `source`, reading every reply."""

    def __init__(self, url: str, source: str, rate: float = 20):
        super().__init__(daemon=True)
        self.client = StreamlitClient(url, source=source)
        self.rate, self.halt, self.error = rate, threading.Event(), None

    def run(self):
        try:
            due = time.monotonic()
            while not self.halt.is_set():
                self.client.send_rerun()
                due += 1 / self.rate
                while (left := due - time.monotonic()) > 0:
                    self.client.receive(min(left, 0.05))
        except Exception as exc:  # noqa: BLE001 - the test says what happened
            self.error = exc

    def stop(self):
        self.halt.set()
        self.join(10)
        self.client.close()


def test_a_flooding_client_gets_its_share_of_script_time_and_another_visitor_still_loads(app):
    url, pid = app
    flooder = Flooder(url, "127.0.0.2")
    flooder.client.run(120)
    flooder.start()
    try:
        time.sleep(LIMITS.script_burst_s + 4)  # past the burst of script time every connection has
        cpu, start = cpu_seconds(pid), time.monotonic()
        with StreamlitClient(url, source="127.0.0.3") as visitor:
            visitor.run(120)  # a first visit meanwhile (bounded; the load test times it against no flood)
            assert not any(t.startswith(("Error", "Exception")) for t in visitor.texts())
        time.sleep(max(0.0, 12 - (time.monotonic() - start)))
        cores = (cpu_seconds(pid) - cpu) / (time.monotonic() - start)
    finally:
        flooder.stop()
    assert flooder.error is None, f"the flooder's connection broke: {flooder.error!r}"  # slowed, not cut off
    # Without the guard one such client keeps the server at a full core or more (all of it for its script);
    # with it, its share plus the visitor's run and the server's own work.
    assert cores < LIMITS.script_share + 0.35, f"the server used {cores:.2f} cores during the flood"
    assert len(flooder.client.finished_statuses) > 0


def test_messages_a_viewer_may_not_send_are_dropped(app):
    """clear_cache would empty every visitor's cached models and data (and this session's state): dropped."""
    url, _ = app
    with StreamlitClient(url, source="127.0.0.4") as client:
        client.run(120)
        token = client.query_string
        assert token and token.startswith("space=")
        for kind in ("clear_cache", "set_run_on_save", "load_git_info"):
            msg = BackMsg()
            setattr(msg, kind, True)  # each is a bool field of the message
            client.send(msg)
        client.run(120)
        assert client.query_string == token, "the session's state was cleared: clear_cache reached Streamlit"


def test_a_message_announcing_150_mb_is_refused_from_its_header(app):
    url, pid = app
    before = rss_mb(pid)
    taken = bytes_accepted_of_a_huge_message(url, 150_000_000)
    assert taken < LIMITS.message_mb * 1_000_000, f"the server read {taken / 1e6:.0f} MB of it"
    assert rss_mb(pid) - before < 20


def test_widget_values_are_bounded_and_ten_sessions_leave_little_behind(app):
    url, pid = app
    with StreamlitClient(url, source="127.0.0.5") as client:
        client.run(120)
        picker = next(e.selectbox.id for e in client.elements if e.WhichOneof("type") == "selectbox")
    limit = LIMITS.widget_state_mb * 1_000_000
    with StreamlitClient(url, source="127.0.0.5") as client, pytest.raises(ConnectionClosed):
        client.run(60, widgets=[WidgetState(id=picker, string_value="x" * (limit + 1000))])
    assert client.close_code == 1009  # "message too big"
    before = rss_mb(pid)
    for i in range(10):  # ten sessions, each leaving a value just under the limit behind
        with StreamlitClient(url, source=f"127.0.1.{i}") as client:
            client.run(60, widgets=[WidgetState(id=picker, string_value="x" * (limit - 100_000))])
    time.sleep(2)
    assert rss_mb(pid) - before < 100, f"+{rss_mb(pid) - before:.0f} MB after ten sessions left"


def test_an_address_may_hold_only_so_many_connections(app):
    url, _ = app
    clients = []
    try:
        for _ in range(LIMITS.connections_per_address):
            clients.append(StreamlitClient(url, source="127.0.0.6"))
        with pytest.raises(InvalidStatus):  # the handshake is refused: the browser tries again later
            StreamlitClient(url, source="127.0.0.6")
        with StreamlitClient(url, source="127.0.0.7") as other:  # another address is not affected
            other.run(120)
    finally:
        for client in clients:
            client.close()


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


class RssPeak(threading.Thread):
    """The server's largest resident memory while it runs, sampled every 20 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.base, self.halt = pid, rss_mb(pid), threading.Event()
        self.peak = self.base

    def run(self):
        while not self.halt.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.join()


@pytest.mark.parametrize("name, image, options, most_mb", [
    ("a 4 KB 1-bit 5600² PNG with tRNS", Image.new("1", (5600, 5600)), {"transparency": 0}, 50),  # was +286 MB each
    ("the costliest accepted: 3264x2448 RGBA", Image.new("RGBA", (3264, 2448)), {}, 300),
])
def test_five_forged_drawings_at_once_stay_within_300_mb(app, name, image, options, most_mb):
    """The canvas's pixels arrive as a PNG in its widget value, which a hostile client fills with anything:
    five clients send one at the same moment (the same decoding as an upload)."""
    url, pid = app
    data = "data:image/png;base64," + base64.b64encode(png(image, **options)).decode()
    forged = json.dumps({"drawing": {"raw": None, "data": data}})
    clients = [StreamlitClient(url, page="draw", source=f"127.0.2.{i + 10 * (most_mb > 50)}") for i in range(5)]
    try:
        for client in clients:
            client.run(120)
        canvas = next(e.bidi_component.id for e in clients[0].elements if e.WhichOneof("type") == "bidi_component")
        assert canvas.endswith("-draw_canvas")
        runs = [threading.Thread(target=c.run, args=(120,), kwargs={"widgets": [WidgetState(id=canvas, json_value=forged)]})
                for c in clients]
        with RssPeak(pid) as memory:
            for run in runs:
                run.start()
            for run in runs:
                run.join(180)
        assert memory.peak - memory.base <= most_mb, f"{name}: five at once took +{memory.peak - memory.base:.0f} MB"
        assert all(c.finished_runs == 2 for c in clients)
    finally:
        for client in clients:
            client.close()


def test_a_checkpoint_with_metadata_5000_deep_or_300_kb_breaks_no_page(app):
    """A 5,000-deep list in a checkpoint's metadata made every page fail for every visitor; a 60 MB field
    slowed every rerun. Both are listed as broken, with the reason, and every page goes on working."""
    import sys

    import torch

    from vae.checkpoint import checkpoint_dir, read_checkpoint

    url, _ = app
    payload = read_checkpoint(checkpoint_dir() / "vae-z2.pt")
    files = {"zz-deep-metadata.pt": {"notes": [[]]}, "zz-big-metadata.pt": {"notes": "x" * 300_000}}
    for _ in range(5000):
        files["zz-deep-metadata.pt"]["notes"] = [files["zz-deep-metadata.pt"]["notes"]]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)  # torch.save pickles recursively
    try:
        for name, metadata in files.items():
            torch.save({**payload, "metadata": metadata}, checkpoint_dir() / name)
    finally:
        sys.setrecursionlimit(limit)
    try:
        for page in ("", "draw", "latent", "histograms"):
            with StreamlitClient(url, page=page, source="127.0.0.8") as client:
                client.run(180)
                texts = client.texts()
                assert not [t for t in texts if "Error" in t.split(":")[0]], texts
                for name in files:
                    assert any(name in t and "cannot be used" in t for t in texts), (page, name)
    finally:
        for name in files:
            (checkpoint_dir() / name).unlink(missing_ok=True)


def widget_ids(client: StreamlitClient) -> dict[str, str]:
    """Widget key (or a button's label) → its id, from the elements of the client's latest runs."""
    ids = {}
    for element in client.elements:
        widget_id = getattr(getattr(element, element.WhichOneof("type")), "id", "")
        if widget_id:
            ids[widget_id.rsplit("-", 1)[-1]] = widget_id
    return ids


def test_forged_nan_and_infinite_form_values_are_dropped_without_a_traceback(app):
    url, _ = app
    log = ARTIFACTS / "hostile-server.log"
    before = log.read_text().count("Traceback")
    for field, value in (("retrain_latent", float("nan")), ("retrain_size", float("-inf")),
                         ("retrain_beta", float("inf"))):
        with StreamlitClient(url, source="127.0.0.9") as client:
            client.run(120)
            ids = widget_ids(client)
            client.elements = []
            client.run(120, widgets=[WidgetState(id=ids[field], double_value=value),
                                     WidgetState(id=ids["Train in the background"], trigger_value=True)])
            assert not [e for e in client.elements if e.WhichOneof("type") == "exception"], field
            jobs_started = [t for t in client.texts() if "Training runs in the background" in t]
            if jobs_started:  # the form's other values were the defaults: a real job, not wanted here
                cancel = widget_ids(client).get(next(k for k in widget_ids(client) if k.startswith("retrain_cancel_")))
                client.run(60, widgets=[WidgetState(id=cancel, trigger_value=True)])
    assert log.read_text().count("Traceback") == before


def forged(widget_id: str, kind: str) -> WidgetState:
    """A value of `kind` (a WidgetState value field) for the widget: an index far out of range, or its like."""
    widget = WidgetState(id=widget_id)
    if kind.endswith("_array_value"):
        getattr(widget, kind).data.extend([999, -1] if kind.startswith(("int", "double")) else ["999", "-1"])
    elif kind == "json_value":
        widget.json_value = "[999"
    else:
        setattr(widget, kind, {"int_value": 999, "double_value": 1e300, "bool_value": True, "string_value": "999"}[kind])
    return widget


HOSTILE_SOURCES = (f"127.0.4.{i}" for i in itertools.count(1))  # a fresh address for each hostile session
WRONG_KINDS = ("int_value", "int_array_value", "string_array_value", "double_value", "bool_value", "string_value",
               "json_value")


@pytest.mark.parametrize("page, key, own_kind", [
    ("", "model_path", "string_value"),  # selectbox
    ("", "retrain_kind", "string_value"),  # radio
    ("", "retrain_digits", "string_array_value"),  # multiselect
    ("", "retrain_epochs", "double_value"),  # number_input
    ("latent", "latent_digits", "string_array_value"),  # pills
])
def test_forged_values_of_the_wrong_kind_for_choice_widgets_are_dropped_without_a_traceback(app, page, key, own_kind):
    """Out-of-range option indices, lists for single choices, text for numbers: Streamlit raised inside the widget
    (a traceback in the log every time). Sent in a session that has drawn the widget, and in the first message of
    a new session (which has drawn nothing yet); meanwhile another visitor's runs go on as usual."""
    url, _ = app
    log = ARTIFACTS / "hostile-server.log"
    before = log.read_text().count("Traceback")
    with StreamlitClient(url, page=page, source="127.0.3.1") as client:
        client.run(180)
        ids = widget_ids(client)
        chosen = [e for e in client.elements if getattr(getattr(e, e.WhichOneof("type")), "id", "") == ids[key]]
    with StreamlitClient(url, page=page, source="127.0.3.2") as other:
        other.run(180)
        for kind in (k for k in WRONG_KINDS if k != own_kind):
            with StreamlitClient(url, page=page, source=next(HOSTILE_SOURCES)) as hostile:
                hostile.run(180, widgets=[forged(ids[key], kind)])  # a new session's first message
                hostile.elements = []
                hostile.run(180, widgets=[forged(ids[key], kind)])  # a session that has drawn the widget
                hostile.run(180)
                assert not [e for e in hostile.elements if e.WhichOneof("type") == "exception"], kind
                again = [e for e in hostile.elements if getattr(getattr(e, e.WhichOneof("type")), "id", "") == ids[key]]
                assert again == chosen, f"{key} does not show the value it had after a forged {kind}"
            other.elements = []
            other.run(180)
            assert not [e for e in other.elements if e.WhichOneof("type") == "exception"], kind
    assert log.read_text().count("Traceback") == before


def test_a_forged_rename_with_a_newline_is_refused_and_creates_nothing(app):
    """`$` matched before a trailing newline: "evil\\n.pt" passed the name check."""
    from vae.checkpoint import checkpoint_dir, save_checkpoint
    from vae.model import ConvVAE
    from vae.server import registry

    url, _ = app
    token = "hostile-rename-" + "a" * 10
    mine = checkpoint_dir() / "hostile-rename-mine.pt"
    save_checkpoint(ConvVAE(2), mine, {"owner": registry.owner_key(token)})
    try:
        with StreamlitClient(url, query=f"space={token}", source="127.0.0.10") as client:
            client.run(120)
            ids = widget_ids(client)
            client.elements = []
            client.run(120, widgets=[WidgetState(id=ids["retrain_models_pick"], string_value=mine.name),
                                     WidgetState(id=ids["retrain_models_new_name"], string_value="evil\n.pt"),
                                     WidgetState(id=ids["Rename"], trigger_value=True)])
            assert any("Could not rename" in t and "letters, digits" in t for t in client.texts()), client.texts()
        assert mine.exists() and not [p for p in checkpoint_dir().iterdir() if "\n" in p.name]
    finally:
        mine.unlink(missing_ok=True)


def test_minted_tokens_from_one_address_cannot_take_every_training_slot(app):
    """Three spaces (three URLs, free to make) from one address: the first trains, the second waits in line
    although a slot is free, the third is refused. Another address still gets the free slot."""
    url, _ = app
    clients = [StreamlitClient(url, query=f"space=minted-token-{i}-xxxxxxxx", source="127.0.0.11") for i in range(3)]
    clients.append(StreamlitClient(url, query="space=other-address-token-xx", source="127.0.0.12"))
    try:
        texts = []
        for client in clients:
            client.run(120)
            submit = widget_ids(client)["Train in the background"]
            client.elements = []
            client.run(120, widgets=[WidgetState(id=submit, trigger_value=True)])
            texts.append(" | ".join(client.texts()))
        first, second, third, other = texts
        assert "Starting" in first or "Epoch" in first, first
        assert "Waiting for a free training slot" in second, second
        assert "from your network address are already running or waiting" in third, third
        assert "Starting" in other or "Epoch" in other, other  # the second slot went to another address
    finally:
        for client in clients:  # cancel what they started: training takes the machine's cores
            try:
                cancel = next((i for k, i in widget_ids(client).items() if k.startswith("retrain_cancel_")), None)
                if cancel:
                    client.run(60, widgets=[WidgetState(id=cancel, trigger_value=True)])
            finally:
                client.close()


@pytest.mark.parametrize("with_state", [False, True], ids=["event alone", "event with the chart's state"])
def test_forged_events_of_a_latent_chart_raise_nothing(app, with_state):
    """A browser sends a chart's event together with the chart's own state; a forged message may carry the event
    alone (that raised a KeyError on the visitor's page) or events with any payload."""
    from streamlit.components.v2.bidi_component.main import _make_trigger_id

    url, _ = app
    payloads = [
        {"event": "click", "value": {"selection": {"points": [{"customdata": 5}]}}},
        {"event": "click", "value": {"selection": {"points": [{"customdata": v} for v in (10**12, -5, 3.7, "x", None)]}}},
        {"event": "click", "value": {"selection": {"points": "not a list"}}},
        {"event": "click", "value": {"selection": None}},
        {"event": "click", "value": [1, 2]},
        {"event": "selection", "value": {"selection": {"points": [{"customdata": [1, 2, 3]}]}}},
        {"event": "nonsense", "value": 1},
        [{"event": "click", "value": 5}] * 3,
    ]
    with StreamlitClient(url, page="latent", source=f"127.0.4.{int(with_state)}") as client:
        client.run(180)
        ids = [e.bidi_component.id for e in client.elements if e.WhichOneof("type") == "bidi_component"]
        chart = next(i for i in ids if i.endswith("-latent_chart_ae_3"))
        for payload in payloads:
            event = WidgetState(id=_make_trigger_id(chart, "events"), json_trigger_value=json.dumps(payload))
            widgets = [WidgetState(id=chart, json_value="{}"), event] if with_state else [event]
            client.elements = []
            client.run(120, widgets=widgets)
            texts = client.texts()
            assert not [e for e in client.elements if e.WhichOneof("type") == "exception"], (payload, texts)
            assert not [t for t in texts if "Error" in t.split(":")[0]], (payload, texts)
            if payload is payloads[0] and with_state:  # the browser's form of a click on test digit #5 picks it
                assert any(t.startswith("**Test digit #5**") for t in texts), texts
