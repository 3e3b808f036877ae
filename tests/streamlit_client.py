"""A plain websocket client of a Streamlit server, as a hostile visitor would write one (no browser).

It speaks Streamlit's own protocol: BackMsg protobufs out, ForwardMsg protobufs in, over /_stcore/stream.
Used by the hostile tests and by scripts/load_test.py (--flood). Synchronous: one thread per client.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class StreamlitClient:
    """One session: `run()` asks for a script run and waits for it to finish."""

    def __init__(self, url: str, page: str = "", query: str = "", open_timeout: float = 30,
                 source: str | None = None):
        """`source`: the local address to connect from (any 127.x.y.z reaches a server on 127.0.0.1, so
        tests can play visitors from several addresses)."""
        parts = urlsplit(url)
        self.page, self.query = page, query
        self.ws = connect(f"ws://{parts.netloc}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                          open_timeout=open_timeout, compression=None, ping_interval=None,
                          **({"source_address": (source, 0)} if source else {})).__enter__()  # closed by close()
        self.session_id: str | None = None
        self.page_script_hash = ""  # empty: the page is found by its name (url path), run after run
        self.received = 0  # ForwardMsgs received
        self.finished_runs = 0
        self.elements: list = []  # the delta elements of the latest run(s), as protobufs
        self.close_code: int | None = None
        self.query_string: str | None = None  # the latest query string the server set (st.query_params)
        self.finished_statuses: list[int] = []  # every script_finished, in order (ForwardMsg.ScriptFinishedStatus)

    # --- sending ----------------------------------------------------------------------------------
    def rerun_message(self, widgets=()) -> BackMsg:
        """A rerun_script BackMsg for this page; `widgets`: WidgetState protobufs (forged values)."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query
        state.page_name = self.page
        state.page_script_hash = self.page_script_hash
        state.widget_states.widgets.extend(widgets)
        return msg

    def send(self, msg: BackMsg | bytes) -> None:
        self.ws.send(msg if isinstance(msg, bytes) else msg.SerializeToString())

    def send_rerun(self, widgets=()) -> None:
        self.send(self.rerun_message(widgets))

    # --- receiving --------------------------------------------------------------------------------
    def receive(self, timeout: float) -> ForwardMsg | None:
        """The next ForwardMsg, or None after `timeout` s; ConnectionClosed once the server has closed."""
        try:
            data = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else None
            raise
        msg = ForwardMsg()
        msg.ParseFromString(data)
        self.received += 1
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.session_id = msg.new_session.initialize.session_id
            self.elements = []
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self.elements.append(msg.delta.new_element)
        elif kind == "script_finished":
            self.finished_statuses.append(msg.script_finished)
            if msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                self.finished_runs += 1
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        return msg

    def wait_finished(self, timeout: float) -> float:
        """Read until a script run has finished; seconds it took. TimeoutError after `timeout` s."""
        start = time.monotonic()
        before = self.finished_runs
        while self.finished_runs == before:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError(f"no script_finished within {timeout:g} s")
            self.receive(min(left, 1.0))
        return time.monotonic() - start

    def run(self, timeout: float = 120, widgets=()) -> float:
        """Ask for a run (the first one opens the session) and wait for it to finish; seconds it took."""
        self.send_rerun(widgets)
        return self.wait_finished(timeout)

    def drain(self, seconds: float) -> None:
        """Read whatever arrives for `seconds` (a flooding client must read, or the server's queue grows)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.receive(min(left, 0.2))

    def texts(self) -> list[str]:
        """The markdown, alert, progress and exception texts of the elements of the latest run."""
        out = []
        for element in self.elements:
            kind = element.WhichOneof("type")
            if kind == "markdown":
                out.append(element.markdown.body)
            elif kind == "alert":
                out.append(element.alert.body)
            elif kind == "progress":
                out.append(element.progress.text)
            elif kind == "exception":
                out.append(f"{element.exception.type}: {element.exception.message}")
        return out

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bytes_accepted_of_a_huge_message(url: str, announced: int, chunk: int = 1 << 20, timeout: float = 60) -> int:
    """Open a raw websocket, announce one binary message of `announced` bytes and stream its payload: how many
    payload bytes the server took before it closed the connection (all of them if it never did).

    A real client library would build the whole message in memory first; this one never holds more than a
    chunk, so it can announce 150 MB cheaply.
    """
    import base64
    import os
    import socket
    import struct

    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=timeout) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Protocol: streamlit\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        if not response.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(response.split(b"\r\n")[0].decode())
        mask = os.urandom(4)
        sock.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", announced) + mask)  # FIN, binary, masked
        payload = bytes(mask) * (chunk // 4)  # zeros, masked
        sent = 0
        try:
            while sent < announced:
                sock.sendall(payload[: min(chunk, announced - sent)])
                sent += min(chunk, announced - sent)
        except OSError:  # the server closed the connection: what it had not read it never holds
            pass
        return sent
