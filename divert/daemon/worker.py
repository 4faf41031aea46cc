"""Bounded calls to one charger: its driver runs on a thread of its own, the caller waits only
so long.

Drivers are synchronous and not thread-safe, so each charger gets one worker that runs its
calls one at a time. A charger that hangs holds up only its own worker: the cycle stops
waiting for it at a deadline (or at once when the daemon stops) and skips it while it is
still busy. Worker threads are daemon threads, so a call that never returns cannot keep the
process from exiting.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, TypeVar

T = TypeVar("T")


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue())
        self._last: Future[Any] | None = None
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A call is still running or waiting."""
        return self._last is not None and not self._last.done()

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"charger {self.name}",
                                            daemon=True)
            self._thread.start()
        self._jobs.put((call, future))
        self._last = future
        return future

    def close(self) -> None:
        """End the thread after the calls already submitted."""
        if self._thread is not None:
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller, who decides
                future.set_exception(exc)


def wait_all(futures: Iterable[Future[Any]], timeout_s: float, abort: Future[Any]) -> None:
    """Wait until every future is done, `timeout_s` has passed, or `abort` is done."""
    pending = set(futures)
    deadline = time.monotonic() + timeout_s
    while pending and not abort.done():
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            return
        done, _ = wait([*pending, abort], left_s, FIRST_COMPLETED)
        pending -= done
