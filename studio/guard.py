"""The websocket guard: an ASGI middleware in front of Streamlit's /_stcore/stream (app.py installs it).

Streamlit runs a visitor's script whenever their browser asks (a `rerun_script` message), as often as it
asks: one client sending 20 a second kept every other visitor waiting minutes. The guard sits between
the connection and Streamlit and, with the bookkeeping of vae/server/traffic.py:

- refuses a connection when its address has too many open or opens them too fast (close code 1013,
  "try again later"; the browser reconnects by itself);
- reads every message as it arrives (so the connection's pings and its close are never held up) and hands
  it to Streamlit only as the limits allow: a rerun unless another address's script is running and that
  address has used less script time lately (traffic.Connection.may_run) — until then the latest rerun
  waits, standing for those before it (their button presses kept) — and other messages while the message
  buckets allow, the rest dropped. Nothing piles up: one waiting rerun per connection at most;
- drops the messages a viewer has no business sending: `clear_cache` (it empties every visitor's cached
  data and models), `set_run_on_save`, `load_git_info` (runs git) and the debug ones; NaN or infinite
  widget values, which no widget sends; and widget values no widget of the session takes: of another kind than
  its widget's (a number for a selectbox, a list for a radio, a string for a number input: Streamlit raised
  inside the widget, a traceback in the log each time), or for a widget the session has not drawn, checked
  against the widgets the session has registered when the rerun is handed on;
- watches the server's replies for `script_finished`, to know how long each run took.

Sizes are Streamlit's own settings (.streamlit/config.toml): uvicorn refuses a frame whose header announces
more than `server.maxMessageSize` before reading its payload, and Streamlit closes a connection whose message
is over `server.maxWidgetStateSize` (the guard hands such a message straight on for that).
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import deque

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from vae.server import limits
from vae.server.traffic import Refused, Traffic

STREAM_PATH = "/_stcore/stream"
DROPPED = frozenset({"clear_cache", "set_run_on_save", "load_git_info", "debug_disconnect_websocket",
                     "debug_shutdown_runtime"})
TRIGGERS = frozenset({"trigger_value", "string_trigger_value", "chat_input_value", "json_trigger_value"})
TRY_AGAIN_LATER = 1013  # websocket close code
SMALL_REPLY = 512  # bytes: a script_finished message is a few bytes; bigger replies are never parsed
SESSION_REPLY = 65_536  # bytes: the new_session message (that names the session) is a few KB
RECHECK_S = 0.5  # a waiting rerun looks again at least this often

log = logging.getLogger(__name__)


def parsed_reply(data: bytes, limit: int, kind: str) -> ForwardMsg | None:
    """A reply of at most `limit` bytes parsed, if it is a `kind` message; None for any other (never parsed)."""
    if len(data) > limit:
        return None
    msg = ForwardMsg()
    try:
        msg.ParseFromString(data)
    except Exception:  # noqa: BLE001
        return None
    return msg if msg.WhichOneof("type") == kind else None


def finished_status(data: bytes):
    """The ScriptFinishedStatus of a small reply, or None for any other reply."""
    msg = parsed_reply(data, SMALL_REPLY, "script_finished")
    return None if msg is None else msg.script_finished


def session_id_of(data: bytes) -> str | None:
    """The session id a new_session reply names (the first reply of every script run), else None."""
    msg = parsed_reply(data, SESSION_REPLY, "new_session")
    return None if msg is None else (msg.new_session.initialize.session_id or None)


def claimed_session(scope) -> str | None:
    """The session a reconnecting browser asks for: the third entry of its Sec-WebSocket-Protocol header (Streamlit
    reuses that header for it). Used only until the server's first reply names the session it really got."""
    for name, value in scope.get("headers") or ():
        if name == b"sec-websocket-protocol":
            entries = [e.strip() for e in value.decode("latin-1").split(",")]
            return entries[2] if len(entries) >= 3 and entries[2] else None
    return None


def registered_value_kinds(session_id: str | None):
    """widget id → the kind of value (a WidgetState `value` field name) it takes, for every widget the session
    has drawn so far ({} before its first run: nothing drawn); None when Streamlit keeps this elsewhere.

    Streamlit keeps it in the session's widget metadata, which is not a public API: the hostile tests send
    forged values to a real server, so a Streamlit that moved it fails there (and the server's log says so).
    Read from the event loop while the script thread may register a widget: single dict reads, safe under
    the GIL."""
    if session_id is None:
        return {}
    from streamlit.runtime import Runtime

    try:
        info = Runtime.instance()._session_mgr.get_active_session_info(session_id)
        if info is None:
            return {}  # the session has ended: nothing of it runs again
        metadata = info.session.session_state._new_widget_state.widget_metadata
        return {widget_id: meta.value_type for widget_id, meta in list(metadata.items())}
    except AttributeError as exc:
        _warn_once(f"widget values cannot be checked against their widgets in this Streamlit ({exc})")
        return None


_warned: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _warned:
        _warned.add(text)
        log.error(text)


# Kinds one widget's browser side may send whatever its Python side registered: a number input sends an int_value
# for whole numbers (registered as double_value; Streamlit then records the kind it got), and a component of
# Streamlit's first API returns JSON, bytes or a dataframe (registered as json_value).
KIND_FAMILY = {"int_value": "number", "double_value": "number",
               "json_value": "component", "bytes_value": "component", "arrow_value": "component"}
JSON_KINDS = frozenset({"json_value", "json_trigger_value"})


def is_json(text: str) -> bool:
    """Whether Streamlit can parse it (json.loads of a forged "[999" raised inside Streamlit)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def drop_unexpected(msg: BackMsg, kinds) -> list[WidgetState]:
    """Remove the widget values that no widget of the session takes (`kinds`: registered_value_kinds; None:
    unknown, nothing removed): a value of another kind than its widget's (KIND_FAMILY), one for a widget the
    session has not drawn, or JSON that does not parse. No browser sends these (it sends values of the widgets
    it was shown); a forged one raised inside Streamlit, a traceback in the log each time (a number for a
    selectbox: "'str' object cannot be interpreted as an integer"). The widget keeps the value it had.
    The values removed."""
    if kinds is None:
        return []
    widgets = msg.rerun_script.widget_states.widgets
    bad = [w for w in widgets if (kind := w.WhichOneof("value")) is not None
           and (KIND_FAMILY.get(kinds.get(w.id), kinds.get(w.id)) != KIND_FAMILY.get(kind, kind)
                or (kind in JSON_KINDS and not is_json(getattr(w, kind))))]
    removed = [WidgetState() for _ in bad]
    for copy, widget in zip(removed, bad):
        copy.CopyFrom(widget)
        widgets.remove(widget)
    return removed


def drop_non_finite(msg: BackMsg) -> int:
    """Remove the widget values that are NaN or infinite (no widget sends one; a forged one made Streamlit's
    own number_input raise before the app ran, a 40-line traceback in the log each time). The widget keeps
    the value it had. How many were removed."""
    widgets = msg.rerun_script.widget_states.widgets
    bad = [w for w in widgets if (w.WhichOneof("value") == "double_value" and not math.isfinite(w.double_value))
           or (w.WhichOneof("value") == "double_array_value"
               and not all(math.isfinite(v) for v in w.double_array_value.data))]
    for widget in bad:
        widgets.remove(widget)
    return len(bad)


def merge_reruns(older: BackMsg, newer: BackMsg) -> BackMsg:
    """One rerun that stands for both: the newer widget values, page and query, plus the older's button presses
    (a trigger is sent once, in the message of the click) unless the newer has the same widget. A fragment's
    rerun stays one only if both are of the same fragment; otherwise the whole script runs."""
    old, new = older.rerun_script, newer.rerun_script
    present = {w.id for w in new.widget_states.widgets}
    for widget in old.widget_states.widgets:
        if widget.id not in present and widget.WhichOneof("value") in TRIGGERS:
            new.widget_states.widgets.append(widget)
    if old.fragment_id != new.fragment_id:
        new.fragment_id = ""
    return newer


class WebsocketGuard:
    """ASGI middleware: `st.App(..., middleware=[Middleware(WebsocketGuard)])`."""

    def __init__(self, app):
        self.app = app
        self.traffic = Traffic()
        self.inboxes: set[_Inbox] = set()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket" or not scope.get("path", "").endswith(STREAM_PATH):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        host = (scope.get("client") or (None, None))[0]
        self.traffic.forget_idle(loop.time())
        try:
            connection = self.traffic.open(host, loop.time())
        except Refused as exc:
            log.warning("websocket refused: %s", exc)
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
            return
        inbox = _Inbox(connection, loop)
        inbox.session_id = claimed_session(scope)  # a reconnecting browser's, until the server's reply names it
        self.inboxes.add(inbox)
        reader = asyncio.create_task(inbox.read(receive))

        async def watched_send(message):
            data = message.get("bytes") if message["type"] == "websocket.send" else None
            if data is not None and not inbox.session_named and (named := session_id_of(data)) is not None:
                inbox.session_id, inbox.session_named = named, True
            if data is not None and (status := finished_status(data)) is not None:
                connection.run_ended(loop.time(), restarting=status == ForwardMsg.FINISHED_EARLY_FOR_RERUN)
                self._wake_all()  # a rerun waiting for this run to end may start now
            await send(message)

        try:
            await self.app(scope, inbox.next, watched_send)
        finally:
            reader.cancel()
            self.inboxes.discard(inbox)
            connection.close(loop.time())
            self._wake_all()

    def _wake_all(self) -> None:
        for inbox in self.inboxes:
            if inbox.rerun is not None:
                inbox.arrived.set()


class _Inbox:
    """What one connection's browser sent, read as it arrives (so pings and the close are always seen), and
    handed to Streamlit as the limits allow: other messages while the message buckets allow (the rest are
    dropped), reruns when the script-time buckets allow too (until then the latest waits, merged with those
    before it)."""

    def __init__(self, connection, loop):
        self.connection, self.loop = connection, loop
        self.ready: deque = deque()  # ASGI messages to hand on now
        self.rerun: BackMsg | None = None  # the rerun waiting for its turn
        self.arrived = asyncio.Event()
        self.dropped = 0
        self.session_id: str | None = None  # Streamlit's session of this connection, once its first run began
        self.session_named = False  # whether the server has named it (a new_session reply)

    async def read(self, receive) -> None:
        while True:
            message = await receive()
            data = message.get("bytes") if message["type"] == "websocket.receive" else None
            if data is None or len(data) > limits.LIMITS.widget_state_mb * 1_000_000:
                self.ready.append(message)  # connect, disconnect, a text frame, an oversized one: Streamlit
                self.arrived.set()          # answers those itself (it closes the connection)
                if message["type"] == "websocket.disconnect":
                    return
                continue
            msg = BackMsg()
            try:
                msg.ParseFromString(data)
            except Exception:  # noqa: BLE001 - Streamlit closes the connection over it
                self.ready.append(message)
                self.arrived.set()
                continue
            kind = msg.WhichOneof("type")
            if kind in DROPPED:
                self._drop(kind)
            elif kind == "rerun_script":
                if drop_non_finite(msg):
                    self._drop("non-finite widget value")
                self.rerun = msg if self.rerun is None else merge_reruns(self.rerun, msg)
            elif self.connection.message_wait_s(self.loop.time()) == 0:
                self.connection.message_passed(self.loop.time())
                self.ready.append(message)
            else:
                self._drop(kind)
            self.arrived.set()

    def _drop(self, kind) -> None:
        self.dropped += 1
        if self.dropped in (1, 10, 100, 1000) or self.dropped % 10_000 == 0:
            log.warning("dropped %s messages from %s (the latest: %s)", self.dropped, self.connection.address.key, kind)

    async def next(self):
        """Starlette's `receive`: the next message Streamlit may have."""
        while True:
            if self.ready:
                return self.ready.popleft()
            wait = None
            if self.rerun is not None:
                now = self.loop.time()
                wait = max(self.connection.message_wait_s(now), self.connection.run_wait_s(now))
                if wait == 0 and self.connection.may_run(now):
                    msg, self.rerun = self.rerun, None
                    kinds = registered_value_kinds(self.session_id)  # as registered by now
                    for widget in drop_unexpected(msg, kinds):
                        self._drop(f"a {widget.WhichOneof('value')} for {widget.id}, which takes "
                                   f"{(kinds or {}).get(widget.id, 'nothing: not drawn in this session')}")
                    self.connection.message_passed(now)
                    self.connection.run_asked(now)
                    return {"type": "websocket.receive", "bytes": msg.SerializeToString()}
            self.arrived.clear()
            try:  # woken by a message, by the end of someone's run, or when its credit is back
                await asyncio.wait_for(self.arrived.wait(), timeout=None if wait is None else min(wait or RECHECK_S, RECHECK_S))
            except asyncio.TimeoutError:  # (TimeoutError itself from Python 3.11)
                pass
