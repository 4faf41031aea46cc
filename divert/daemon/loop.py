"""When the control cycle runs: every `interval_s`, and soon after a kick (a fresh feed value),
but never sooner than `debounce_s` after the previous cycle began.

A meter publishing 1000 values a second gets at most 1/debounce_s cycles a second: kicks
that land during a cycle or within the debounce share the next one. The loop has a thread
of its own; `stop` lets a running cycle finish first (the cycle bounds its own waits).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.05


def next_run_s(last_s: float, kicked: bool, interval_s: float,
               debounce_s: float = DEBOUNCE_S) -> float:
    """When the next cycle is due (s, monotonic), the previous one having begun at `last_s`."""
    return last_s + (debounce_s if kicked else interval_s)


class Loop:
    def __init__(self, cycle: Callable[[], None], interval_s: float,
                 debounce_s: float = DEBOUNCE_S) -> None:
        self._cycle = cycle
        self.interval_s = interval_s
        self.debounce_s = debounce_s
        self._cond = threading.Condition()
        self._kicked = False
        self._stopping = False
        self._last_s = -math.inf
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """Run a cycle soon (now, or when the debounce allows)."""
        with self._cond:
            self._kicked = True
            self._cond.notify()

    def stop(self, timeout_s: float) -> bool:
        """No more cycles; wait up to `timeout_s` for a running one. False if it still runs."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now_s = time.monotonic()
                    due_s = next_run_s(self._last_s, self._kicked, self.interval_s,
                                       self.debounce_s)
                    if now_s >= due_s:
                        break
                    self._cond.wait(due_s - now_s)
                self._kicked = False
                self._last_s = now_s
            try:
                self._cycle()
            except Exception:  # the loop must outlive any bug in one cycle
                log.exception("control cycle failed")
