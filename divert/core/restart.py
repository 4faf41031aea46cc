"""Restart-only chargers (EVSEMaster): the current is fixed for a session, so a new current
costs a stop and a start, a relay cycle from the budget. The economics of spending one live
here; the controller asks at every step while charging and before every start.

Currents in A per phase, times in s on the controller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from divert.core.guard import RelayGuard
from divert.core.reasons import Reason


@dataclass(frozen=True)
class RestartParams:
    """When a new current is worth a relay cycle."""

    min_gain_a: float = 3.0  # change the current only for a step of at least this
    reserve_starts: int = 2  # a step up leaves this many of the day's starts for later


class Restarts:
    """The pending restart of one restart-only charger, and the rules for the next one."""

    def __init__(self, params: RestartParams) -> None:
        self.params = params
        self.to_a: float | None = None  # the current to start at after the gap
        self._wanted: tuple[float, bool] | None = None  # since when a step (up?) is wanted

    def clear(self) -> None:
        self.to_a = self._wanted = None

    def track(self, t_s: float, guard: RelayGuard, setpoint_a: float,
              target_a: float) -> tuple[str, Reason]:
        """While charging at `setpoint_a` with `target_a` wanted: hold, or stop to restart.

        A restart is spent only for a step of at least `min_gain_a`, wanted for as long as
        a minimum session, and (stepping up) leaving starts in the day's budget to resume
        after a real stop."""
        lim = guard.limits
        gain_a = target_a - setpoint_a
        hold = f"charging: holding {setpoint_a:g} A (restart-only)"
        if abs(gain_a) < self.params.min_gain_a:
            self._wanted = None
            return hold, Reason.RESTART_HOLD
        up = gain_a > 0
        if self._wanted is None or self._wanted[1] != up:
            self._wanted = (t_s, up)
        wanted_s = t_s - self._wanted[0]
        if wanted_s < lim.min_on_s:
            return f"{hold}, {target_a:g} A wanted for {wanted_s:.0f} s", Reason.RESTART_HOLD
        no_stop = guard.why_no_stop(t_s)
        if no_stop is not None:
            return f"{hold}, {no_stop}", Reason.RESTART_HOLD
        reserve = min(self.params.reserve_starts, lim.max_starts_per_day - 2) if up else 0
        if guard.why_no_budget(t_s, max(0, reserve)) is not None:
            return f"{hold}, no start left in the budget to restart", Reason.RESTART_HOLD
        guard.stop(t_s)
        self.to_a, self._wanted = target_a, None
        return f"restarting: {setpoint_a:g} A → {target_a:g} A", Reason.RESTARTING

    def gap_left_s(self, t_s: float, guard: RelayGuard, gap_s: float) -> float:
        """How long a pending restart must still wait after its stop (0: start now)."""
        if self.to_a is None or guard.changed_s is None:
            return 0.0
        return max(0.0, guard.changed_s + gap_s - t_s)
