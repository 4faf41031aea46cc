"""Turn decisions into driver calls: only what changed, plus a periodic re-assert.

A charger that rebooted has forgotten its setpoint; re-sending the full command set every
`reassert_s` gives it back. On a start the setpoint goes first, then the enable, so the car
never draws the previous (possibly higher) current for a moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chargers.base import Charger, ChargerError, CurrentLimiter, PhaseSwitcher, PowerLimiter
from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Decision
from divert.daemon.throttle import LogThrottle

log = logging.getLogger(__name__)

ShutdownState = Literal["pause", "minimum", "leave"]


def check_fit(charger: Charger, caps: Capabilities) -> None:
    """Raise TypeError if the driver lacks a method its capabilities promise."""
    if caps.control is ControlKind.POWER and not isinstance(charger, PowerLimiter):
        raise TypeError(f"charger {charger.name}: declares power control but has no set_power")
    if caps.control is not ControlKind.POWER and not isinstance(charger, CurrentLimiter):
        raise TypeError(f"charger {charger.name}: declares {caps.control} control but has no "
                        "set_current")
    if caps.phase_switching and not isinstance(charger, PhaseSwitcher):
        raise TypeError(f"charger {charger.name}: declares phase switching but has no "
                        "set_phases")


@dataclass(frozen=True)
class _Sent:
    charging: bool
    setpoint: float | None  # A or W, by control kind; None while paused
    phases: int


class Actuator:
    """Drives one connected charger. Called from the control thread only."""

    def __init__(self, charger: Charger, caps: Capabilities, reassert_s: float,
                 on_error: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_fit(charger, caps)
        self.charger = charger
        self.caps = caps
        self.reassert_s = reassert_s
        self._on_error = on_error
        self._clock = clock
        self._sent: _Sent | None = None  # what the charger was last told; None: unknown
        self._sent_s = 0.0
        self._warn = LogThrottle(log)

    def _target(self, d: Decision) -> _Sent:
        if not d.charging:
            return _Sent(False, None, d.phases)
        value = d.power_w if self.caps.control is ControlKind.POWER else d.current_a
        return _Sent(True, value, d.phases)

    def apply(self, decision: Decision) -> bool:
        """Send what `decision` changes (everything when a re-assert is due). False on error."""
        now_s = self._clock()
        want = self._target(decision)
        old = self._sent
        full = old is None or now_s - self._sent_s >= self.reassert_s
        if not full and want == old:
            return True
        command = "phases"
        try:
            if self.caps.phase_switching and (full or old is None or want.phases != old.phases):
                assert isinstance(self.charger, PhaseSwitcher)
                self.charger.set_phases(want.phases)
            if want.charging:
                assert want.setpoint is not None
                if full or old is None or want.setpoint != old.setpoint:
                    command = "setpoint"
                    self._send_setpoint(want.setpoint)
                if full or old is None or not old.charging:
                    command = "enable"
                    self.charger.enable(True)
            elif full or old is None or old.charging:
                command = "enable"
                self.charger.enable(False)
        except (ChargerError, OSError) as exc:
            self._sent = None  # state unknown: send everything again next time
            if self._on_error is not None:
                self._on_error(command)
            self._warn.warning(now_s, "charger %s: %s command failed: %s", self.charger.name,
                               command, exc)
            return False
        self._sent, self._sent_s = want, now_s
        self._warn.reset()
        return True

    def _send_setpoint(self, value: float) -> None:
        if self.caps.control is ControlKind.POWER:
            assert isinstance(self.charger, PowerLimiter)
            self.charger.set_power(value)
        else:
            assert isinstance(self.charger, CurrentLimiter)
            self.charger.set_current(value)

    def shutdown(self, state: ShutdownState) -> bool:
        """Leave the charger in `state`; True if it was paused by this call."""
        try:
            if state == "pause":
                self.charger.enable(False)
                return True
            if state == "minimum" and self._sent is not None and self._sent.charging:
                self._send_setpoint(self.caps.min_power_at() if self.caps.control is
                                    ControlKind.POWER else self.caps.min_current_a)
        except (ChargerError, OSError) as exc:
            log.warning("charger %s: shutdown command failed: %s", self.charger.name, exc)
        return False
