"""Work a page starts once and does not wait for: a t-SNE of a model's digits runs here, in one worker thread,
while the visitor keeps using the page, which asks how far it is on each refresh. Keyed, so a second visitor
asking for the same work finds the first one's run."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    done: bool
    result: object = None
    error: str | None = None
    seconds: float = 0.0  # since it started (or was queued), until now or until it ended


class Background:
    def __init__(self, workers: int = 1):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="background")
        self._runs: dict[object, tuple[Future, float, list]] = {}
        self._lock = threading.Lock()

    def start(self, key, work: Callable[[], object]) -> None:
        """Run `work()` unless a run under `key` exists (running, done or failed)."""
        with self._lock:
            if key in self._runs:
                return
            ended: list[float] = []
            future = self._pool.submit(work)
            future.add_done_callback(lambda _: ended.append(time.monotonic()))
            self._runs[key] = (future, time.monotonic(), ended)

    def status(self, key) -> Status | None:
        """None if nothing was started under `key`."""
        with self._lock:
            run = self._runs.get(key)
        if run is None:
            return None
        future, started, ended = run
        seconds = (ended[0] if ended else time.monotonic()) - started
        if not future.done():
            return Status(False, seconds=seconds)
        error = future.exception()
        if error is not None:
            return Status(True, error=f"{type(error).__name__}: {error}", seconds=seconds)
        return Status(True, result=future.result(), seconds=seconds)
