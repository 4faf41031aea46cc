"""One charger as the daemon's shell sees it: its driver behind a bounded worker, its actuator
once connected, its latest reading, and the shell's bookkeeping (energy, starts, warnings).

Reads are paced: at most one per the driver's `min_read_s` (class attribute; default
`MIN_READ_S`), however often the loop runs. A charger that does not answer at start-up is
tried again every `CONNECT_RETRY_S`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from chargers.base import Charger, ChargerError, ChargerReading
from divert.core.capabilities import Capabilities
from divert.daemon.actuator import Actuator
from divert.daemon.throttle import LogThrottle
from divert.daemon.worker import Worker

log = logging.getLogger(__name__)

CONNECT_RETRY_S = 30.0
MIN_READ_S = 1.0


@dataclass(frozen=True)
class Polled:
    """One poll's outcome: the capabilities if it connected, the reading if it read, or
    which call failed and why."""

    caps: Capabilities | None = None
    reading: ChargerReading | None = None
    failed: str | None = None  # "connect" or "read"
    error: Exception | None = None


class Station:
    def __init__(self, name: str, charger: Charger) -> None:
        self.name = name
        self.charger = charger
        self.min_read_s = float(getattr(charger, "min_read_s", MIN_READ_S))
        self.worker = Worker(name)
        self.actuator: Actuator | None = None
        self.reading: ChargerReading | None = None  # the latest; None after a failed read
        self.fresh = False  # `reading` was taken in this cycle
        self.adopted = False  # a first reading was reconciled with the relay guard
        self._read_tried_s: float | None = None
        self._connect_tried_s: float | None = None
        self.last_cycle_s: float | None = None  # for the energy integral
        self.blocked: str | None = None  # the blocked spell in progress (metric label)
        self.ev_w: float | None = None  # the EV's draw this cycle, as the inputs had it
        self.ev_from_surplus_wh = 0.0
        self.ev_from_grid_wh = 0.0
        self.relay_starts = 0.0
        self.warn = LogThrottle(log)

    def poll(self, now_s: float) -> Callable[[], Polled] | None:
        """The call to make now (connect if not yet, then read if due), None if none is."""
        connect = self.actuator is None
        last_s = self._connect_tried_s if connect else self._read_tried_s
        period_s = CONNECT_RETRY_S if connect else self.min_read_s
        if last_s is not None and now_s - last_s < period_s:
            return None
        self._read_tried_s = now_s
        if connect:
            self._connect_tried_s = now_s
        charger = self.charger

        def call() -> Polled:
            caps = None
            if connect:
                try:
                    caps = charger.connect()
                except Exception as exc:  # a driver bug must not stop the other chargers
                    return Polled(failed="connect", error=exc)
            try:
                return Polled(caps, charger.read())
            except (ChargerError, OSError) as exc:
                return Polled(caps, failed="read", error=exc)

        return call
