"""The control core: one pure, clock-injected object per charger.

`Controller.step(inputs)` turns one set of readings into a `Decision`. It does no I/O and
reads no clock: the daemon, `divert simulate` and `divert bench` all drive this same code.
Order of authority, top to bottom: mode → policy → charger capabilities → relay guard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.guard import RelayGuard, RelayLimits
from divert.core.modes import Mode
from divert.core.policy import Desire, Observation, Policy
from divert.core.surplus import surplus_w


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
    restart_min_gain_a: float = 3.0  # restart-only: change current only for at least this
    restart_reserve_starts: int = 2  # restart-only: starts a step up leaves for later sessions


@dataclass
class _State:
    last_time_s: float | None = None
    setpoint_a: float = 0.0
    unknown_since_s: float | None = None
    restart_to_a: float | None = None  # restart-only: the current to start at after the gap
    restart_wanted: tuple[float, bool] | None = None  # since when a step (up?) has been wanted
    limit_a: float | None = None  # temporary maximum (schedules)
    available_w: float | None = None  # this step's surplus for the EV, W
    voltage_v: float = 0.0  # this step's voltage per phase, V
    phase_w: float | None = None  # the surplus averaged for phase switching, W


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
        self._s.available_w = available_w
        self._s.voltage_v = inp.voltage_v or caps.voltage_v
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
        switched = self._switch_phases(t_s, dt_s, wish)
        if switched is not None:
            return self._decision(switched)
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

    def _better_phases(self, surplus_w: float | None) -> int | None:
        """The phase count `surplus_w` calls for, None when it is unknown.

        Down to one phase when the surplus cannot carry the three-phase minimum; up to three
        when it exceeds the one-phase maximum and carries the three-phase minimum. `fast`
        mode wants all three."""
        caps = self.caps
        if self.mode is Mode.FAST:
            return 3
        if self.mode is Mode.OFF or surplus_w is None:
            return None
        three_min_w = caps.min_power_at(3)
        if self.phases == 3:
            return 1 if surplus_w < three_min_w else 3
        up_w = max(caps.power_w(caps.max_current_a, 1), three_min_w)
        return 3 if surplus_w >= up_w else 1

    def _switch_phases(self, t_s: float, dt_s: float, wish: Desire) -> str | None:
        """Switch between one and three phases when the charger can; the reason if it did.

        The surplus averaged over the relay limits' `phase_tau_s` decides, so that a passing
        cloud or spike does not cost a relay cycle; the surplus now decides when the policy
        would otherwise stop on three phases and one phase can carry it. The guard has the
        last word (`RelayGuard.why_no_switch`); a refused switch leaves the step to the
        usual start/stop logic."""
        caps, s, guard = self.caps, self._s, self.guard
        if not (caps.phase_switching and caps.phases == 3):
            return None
        if s.available_w is not None:
            tau_s = guard.limits.phase_tau_s
            k = 1.0 if s.phase_w is None or tau_s <= 0 else 1.0 - math.exp(-dt_s / tau_s)
            s.phase_w = (s.phase_w or 0.0) + k * (s.available_w - (s.phase_w or 0.0))
        want = self._better_phases(s.phase_w)
        one_carries = s.available_w is not None and s.available_w >= caps.min_power_at(1)
        if guard.on and not wish.charge:  # the policy would stop: one phase rather than stop
            want = 1 if self.phases == 3 and one_carries else None
        if want is None or want == self.phases or guard.why_no_switch(t_s) is not None:
            return None
        guard.switch(t_s)
        self.phases = want
        available_w = s.available_w or 0.0
        if want == 1:
            to, why = "1 phase", f"cannot carry {caps.min_power_at(3):.0f} W on 3"
        else:
            to, why = "3 phases", f"exceeds {caps.power_w(caps.max_current_a, 1):.0f} W on 1"
        why = "fast mode" if self.mode is Mode.FAST else f"surplus {available_w:.0f} W {why}"
        if not guard.on:
            return f"waiting: set to {to}, {why}"
        s.setpoint_a = self._settable(available_w / (s.voltage_v * want))
        s.restart_to_a = None
        return f"switching to {to}: {why}"

    def _hold_current(self, target_a: float) -> float:
        """While the guard holds the relay on against the policy's wish."""
        if self.caps.control is ControlKind.RESTART:
            return self._s.setpoint_a
        return target_a

    def _track(self, t_s: float, target_a: float, reason: str) -> str:
        s = self._s
        if self.caps.control is not ControlKind.RESTART or target_a == s.setpoint_a:
            s.setpoint_a, s.restart_wanted = target_a, None
            return reason
        # Restart-only: a new current costs a stop and a start; spend it only when worth it:
        # a step of at least restart_min_gain_a, wanted for as long as a minimum session, and
        # (stepping up) leaving starts in the day's budget to resume after a real stop.
        gain_a = target_a - s.setpoint_a
        guard, lim = self.guard, self.guard.limits
        hold = f"charging: holding {s.setpoint_a:g} A (restart-only)"
        if abs(gain_a) < self.site.restart_min_gain_a:
            s.restart_wanted = None
            return hold
        up = gain_a > 0
        if s.restart_wanted is None or s.restart_wanted[1] != up:
            s.restart_wanted = (t_s, up)
        wanted_s = t_s - s.restart_wanted[0]
        if wanted_s < lim.min_on_s:
            return f"{hold}, {target_a:g} A wanted for {wanted_s:.0f} s"
        if guard.why_no_stop(t_s) is not None:
            return f"{hold}, {guard.why_no_stop(t_s)}"
        reserve = min(self.site.restart_reserve_starts, lim.max_starts_per_day - 2) if up else 0
        if guard.why_no_budget(t_s, max(0, reserve)) is not None:
            return f"{hold}, no start left in the budget to restart"
        guard.stop(t_s)
        s.restart_to_a, s.restart_wanted = target_a, None
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
        s.restart_to_a = s.restart_wanted = None
        return reason

    def _decision(self, reason: str) -> Decision:
        on = self.guard.on
        current_a = self._s.setpoint_a if on else 0.0
        return Decision(on, current_a, self.caps.power_w(current_a, self.phases), self.phases,
                        reason)

    def to_state(self) -> dict[str, Any]:
        """What must survive a restart: the relay history and the setpoint."""
        return {"guard": self.guard.to_state(), "setpoint_a": self._s.setpoint_a,
                "mode": str(self.mode), "phases": self.phases}

    def restore(self, state: dict[str, Any]) -> None:
        self.guard = RelayGuard.from_state(self.guard.limits, state.get("guard", {}))
        self._s.setpoint_a = float(state.get("setpoint_a", self.caps.min_current_a))
        if "mode" in state:
            self.mode = Mode(state["mode"])
        phases = int(state.get("phases", self.caps.phases))
        # Wiring may have changed since the save: only a count the charger has now is kept.
        self.phases = phases if phases in (1, self.caps.phases) and (
            phases == self.caps.phases or self.caps.phase_switching) else self.caps.phases
