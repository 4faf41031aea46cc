"""Turn decisions into driver calls: only what changed, plus a periodic re-assert.

A charger that rebooted has forgotten its setpoint; re-sending the full command set every
`reassert_s` gives it back. Sooner, when a reading contradicts what was sent (charging while
paused, drawing above the setpoint): then everything is sent again at once, at most every
`RESEND_MIN_S`, once the charger has had `SETTLE_S` to follow the last change. On a start the
setpoint goes first, then the enable, so the car never draws the previous (possibly higher)
current for a moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chargers.base import (
    Charger,
    ChargerError,
    ChargerReading,
    CurrentLimiter,
    PhaseSwitcher,
    PowerLimiter,
)
from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Decision
from divert.daemon.throttle import LogThrottle

log = logging.getLogger(__name__)

ShutdownState = Literal["pause", "minimum", "leave"]

RESEND_MIN_S = 5.0  # a contradicted command is sent again at most this often
SETTLE_S = 5.0  # a charger's time to follow a change before its reading can contradict it
TOLERANCE_A = 2.0  # drawing this much above the setpoint (per phase) contradicts it


def bind(charger: Charger, caps: Capabilities) -> tuple[Callable[[float], None],
                                                      Callable[[int], None] | None]:
    """The driver's setpoint sender (A or W, by control kind) and phase switcher (None
    without phase switching); TypeError if the driver lacks what its capabilities promise."""
    if caps.control is ControlKind.POWER:
        if not isinstance(charger, PowerLimiter):
            raise TypeError(f"charger {charger.name}: declares power control but has no "
                            "set_power")
        send: Callable[[float], None] = charger.set_power
    elif isinstance(charger, CurrentLimiter):
        send = charger.set_current
    else:
        raise TypeError(f"charger {charger.name}: declares {caps.control} control but has no "
                        "set_current")
    if not caps.phase_switching:
        return send, None
    if not isinstance(charger, PhaseSwitcher):
        raise TypeError(f"charger {charger.name}: declares phase switching but has no "
                        "set_phases")
    return send, charger.set_phases


@dataclass(frozen=True)
class Applied:
    """What `apply` did: False on a command error; the contradiction that made it re-send
    everything (`charging_while_paused`, `above_setpoint`), if one did."""

    ok: bool
    contradiction: str | None = None


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
        self._send_setpoint, self._set_phases = bind(charger, caps)
        self.charger = charger
        self.caps = caps
        self.reassert_s = reassert_s
        self._on_error = on_error
        self._clock = clock
        self._sent: _Sent | None = None  # what the charger was last told; None: unknown
        self._sent_s = 0.0  # when everything was last sent
        self._changed_s = -RESEND_MIN_S  # when the last change was sent
        self._resent_s = -RESEND_MIN_S  # when a contradiction was last answered
        self._warn = LogThrottle(log)

    def _target(self, d: Decision) -> _Sent:
        if not d.charging:
            return _Sent(False, None, d.phases)
        value = d.power_w if self.caps.control is ControlKind.POWER else d.current_a
        return _Sent(True, value, d.phases)

    def contradiction(self, reading: ChargerReading | None, now_s: float) -> str | None:
        """How a fresh `reading` contradicts what was sent, if it does and a re-send is due."""
        sent = self._sent
        if (sent is None or reading is None or not reading.charging
                or now_s - self._changed_s < SETTLE_S or now_s - self._resent_s < RESEND_MIN_S):
            return None
        if not sent.charging:
            return "charging_while_paused"
        assert sent.setpoint is not None
        caps = self.caps
        if caps.control is ControlKind.POWER:
            drawing, limit = reading.power_w, sent.setpoint + caps.power_w(TOLERANCE_A,
                                                                           sent.phases)
        else:
            drawing, limit = reading.current_a, sent.setpoint + TOLERANCE_A
        return "above_setpoint" if drawing is not None and drawing > limit else None

    def apply(self, decision: Decision, reading: ChargerReading | None = None) -> Applied:
        """Send what `decision` changes: everything when a re-assert is due or the fresh
        `reading` (if given) contradicts what was sent."""
        now_s = self._clock()
        want = self._target(decision)
        old = self._sent
        contradiction = self.contradiction(reading, now_s)
        if contradiction is not None:
            self._resent_s = now_s
        full = (old is None or now_s - self._sent_s >= self.reassert_s
                or contradiction is not None)
        if not full and want == old:
            return Applied(True)
        if want != old:
            self._changed_s = now_s
        command = "phases"
        try:
            if self._set_phases is not None and (full or old is None
                                                 or want.phases != old.phases):
                self._set_phases(want.phases)
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
            return Applied(False, contradiction)
        self._sent, self._sent_s = want, now_s
        self._warn.reset()
        return Applied(True, contradiction)

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
