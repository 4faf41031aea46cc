"""The control core: one pure, clock-injected object per charger.

`Controller.step(inputs)` turns one set of readings into a `Decision`. It does no I/O and
reads no clock: the daemon, `divert simulate` and `divert bench` all drive this same code.
Order of authority, top to bottom: mode → policy → charger capabilities → relay guard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from divert.capabilities import Capabilities, ControlKind
from divert.guard import RelayGuard, RelayLimits
from divert.modes import Mode
from divert.policy import Desire, Observation, Policy
from divert.surplus import surplus_w


@dataclass(frozen=True)
class Inputs:
    """Readings for one step. Powers in W (grid + import/− export, battery + charging),
    voltage in V per phase, SoC in %. None: not known (or stale) this step."""

    time_s: float
    grid_w: float | None = None
    solar_w: float | None = None
    load_w: float | None = None  # house load without the EV
    ev_w: float | None = None  # the EV's measured draw
    voltage_v: float | None = None
    battery_w: float | None = None
    battery_soc_pct: float | None = None


@dataclass(frozen=True)
class Decision:
    """What the charger should do now, and why in one line."""

    charging: bool
    current_a: float  # per phase; 0 when not charging
    power_w: float  # current × voltage × phases: the setpoint for power-setpoint chargers
    phases: int
    reason: str


@dataclass(frozen=True)
class SiteParams:
    """How the feeds relate to the charger, and the fail-safe for missing data."""

    grid_includes_ev: bool = True  # the grid meter sees the EV's draw
    battery_first_below_soc_pct: float | None = None  # home battery charges first below this
    stale_pause_s: float = 300.0  # surplus unknown this long while charging: pause
    restart_min_gain_a: float = 2.0  # restart-only: change current only for at least this


@dataclass
class _State:
    last_time_s: float | None = None
    setpoint_a: float = 0.0
    unknown_since_s: float | None = None
    restart_to_a: float | None = None  # restart-only: the current to start at after the gap
    limit_a: float | None = None  # temporary maximum (schedules)


class Controller:
    """Decides for one charger. Stateful, but its state is small and explicit."""

    def __init__(self, caps: Capabilities, policy: Policy, limits: RelayLimits,
                 mode: Mode = Mode.SOLAR, site: SiteParams | None = None,
                 guard: RelayGuard | None = None) -> None:
        self.caps = caps
        self.policy = policy
        self.mode = mode
        self.site = site or SiteParams()
        self.guard = guard or RelayGuard(limits)
        self.phases = caps.phases
        self._s = _State(setpoint_a=caps.min_current_a)

    @property
    def charging(self) -> bool:
        return self.guard.on

    def set_limit(self, max_current_a: float | None) -> None:
        """A temporary maximum current (from a schedule); None lifts it."""
        self._s.limit_a = max_current_a

    def _settable(self, current_a: float) -> float:
        caps = self.caps
        hi = caps.max_current_a if self._s.limit_a is None else min(caps.max_current_a,
                                                                    self._s.limit_a)
        steps = math.floor(current_a / caps.step_a + 1e-9)
        return round(min(hi, max(caps.min_current_a, steps * caps.step_a)), 6)

    def _desire(self, t_s: float, dt_s: float, inp: Inputs) -> Desire:
        site = self.site
        battery_first = (site.battery_first_below_soc_pct is not None
                         and inp.battery_soc_pct is not None
                         and inp.battery_soc_pct < site.battery_first_below_soc_pct)
        available_w = surplus_w(inp.grid_w, inp.solar_w, inp.load_w, inp.ev_w,
                                site.grid_includes_ev, inp.battery_w, battery_first)
        caps = self.caps
        wish: Desire | None = None
        if available_w is None:
            self._s.unknown_since_s = self._s.unknown_since_s or t_s
        else:
            self._s.unknown_since_s = None
            since_s = None if self.guard.changed_s is None else t_s - self.guard.changed_s
            obs = Observation(t_s, dt_s, available_w, inp.grid_w is not None,
                              inp.voltage_v or caps.voltage_v, self.phases, self.charging,
                              self._s.setpoint_a, since_s, self.mode, caps)
            wish = self.policy.decide(obs)  # every step, so the policy's filters stay warm
        if self.mode is Mode.OFF:
            return Desire(False, caps.min_current_a, "off: mode is off")
        if self.mode is Mode.FAST:
            return Desire(True, caps.max_current_a, "fast: maximum current, grid allowed")
        if wish is None:
            stale_s = t_s - (self._s.unknown_since_s or t_s)
            if not self.charging and self.mode is not Mode.MIN_SOLAR:
                return Desire(False, caps.min_current_a, "waiting: no fresh surplus data")
            if stale_s >= site.stale_pause_s:
                return Desire(False, caps.min_current_a,
                              f"fail-safe: no fresh surplus data for {stale_s:.0f} s, pausing")
            return Desire(True, caps.min_current_a,
                          "fail-safe: no fresh surplus data, minimum current")
        if self.mode is Mode.MIN_SOLAR:
            return Desire(True, max(caps.min_current_a, wish.current_a),
                          f"min-solar: {wish.reason}")
        return wish

    def step(self, inp: Inputs) -> Decision:
        """One control step at `inp.time_s`. Times must not go backwards."""
        t_s = inp.time_s
        last_s = self._s.last_time_s
        dt_s = 0.0 if last_s is None else max(0.0, t_s - last_s)
        self._s.last_time_s = t_s if last_s is None else max(t_s, last_s)
        wish = self._desire(t_s, dt_s, inp)
        target_a = self._settable(wish.current_a)
        reason = wish.reason
        guard = self.guard
        if guard.on and wish.charge:
            reason = self._track(t_s, target_a, reason)
        elif guard.on:
            why = guard.why_no_stop(t_s)
            if why is None:
                guard.stop(t_s)
                self._s.restart_to_a = None
            else:
                self._s.setpoint_a = self._hold_current(target_a)
                reason = f"holding: {why}"
        elif wish.charge:
            reason = self._try_start(t_s, target_a, reason)
        else:
            self._s.restart_to_a = None
        return self._decision(reason)

    def _hold_current(self, target_a: float) -> float:
        """While the guard holds the relay on against the policy's wish."""
        if self.caps.control is ControlKind.RESTART:
            return self._s.setpoint_a
        return target_a

    def _track(self, t_s: float, target_a: float, reason: str) -> str:
        s = self._s
        if self.caps.control is not ControlKind.RESTART or target_a == s.setpoint_a:
            s.setpoint_a = target_a
            return reason
        # Restart-only: a new current costs a stop and a start; spend it only when worth it.
        gain_a = abs(target_a - s.setpoint_a)
        guard = self.guard
        hold = f"charging: holding {s.setpoint_a:g} A (restart-only)"
        if gain_a < self.site.restart_min_gain_a:
            return hold
        if guard.why_no_stop(t_s) is not None:
            return f"{hold}, {guard.why_no_stop(t_s)}"
        lim = guard.limits
        if (guard.starts_within(t_s, 3600) >= lim.max_starts_per_hour
                or guard.starts_within(t_s, 86400) >= lim.max_starts_per_day):
            return f"{hold}, no start left in the budget to restart"
        guard.stop(t_s)
        s.restart_to_a = target_a
        return f"restarting: {s.setpoint_a:g} A → {target_a:g} A"

    def _try_start(self, t_s: float, target_a: float, reason: str) -> str:
        s, guard = self._s, self.guard
        if s.restart_to_a is not None and guard.changed_s is not None:
            left_s = guard.changed_s + self.caps.restart_gap_s - t_s
            if left_s > 0:
                return f"restarting: {left_s:.0f} s gap before {target_a:g} A"
        why = guard.why_no_start(t_s)
        if why is not None:
            return f"blocked: {why}"
        guard.start(t_s)
        s.setpoint_a = target_a
        s.restart_to_a = None
        return reason

    def _decision(self, reason: str) -> Decision:
        on = self.guard.on
        current_a = self._s.setpoint_a if on else 0.0
        return Decision(on, current_a, self.caps.power_w(current_a, self.phases), self.phases,
                        reason)

    def to_state(self) -> dict[str, Any]:
        """What must survive a restart: the relay history and the setpoint."""
        return {"guard": self.guard.to_state(), "setpoint_a": self._s.setpoint_a,
                "mode": str(self.mode)}

    def restore(self, state: dict[str, Any]) -> None:
        self.guard = RelayGuard.from_state(self.guard.limits, state.get("guard", {}))
        self._s.setpoint_a = float(state.get("setpoint_a", self.caps.min_current_a))
        if "mode" in state:
            self.mode = Mode(state["mode"])
