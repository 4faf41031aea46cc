"""Log a recurring problem at most once per interval, saying how many repeats were held back."""

from __future__ import annotations

import logging


class LogThrottle:
    """A warning channel for one recurring problem (one feed, one charger). Times in s."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._last_s: float | None = None
        self._held = 0

    def due(self, now_s: float) -> bool:
        """Whether a warning now would be logged (not held back)."""
        return self._last_s is None or now_s - self._last_s >= self._interval_s

    def warning(self, now_s: float, msg: str, *args: object) -> None:
        if not self.due(now_s):
            self._held += 1
            return
        if self._held:
            msg += f" ({self._held} more since the last report)"
        self._log.warning(msg, *args)
        self._last_s = now_s
        self._held = 0

    def reset(self) -> None:
        """The problem went away: the next occurrence is logged at once."""
        self._last_s = None
        self._held = 0
