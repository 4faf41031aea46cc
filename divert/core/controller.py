"""The control core: one pure, clock-injected object per charger.

`Controller.step(inputs)` turns one set of readings into a `Decision`. It does no I/O and
reads no clock: the daemon, `divert simulate` and `divert bench` all drive this same code.
Order of authority, top to bottom: mode → policy → charger capabilities → relay guard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.guard import DAY_S, RelayGuard, RelayLimits
from divert.core.modes import Mode
from divert.core.phases import PhaseChooser, PhaseParams
from divert.core.plan import Need, PlanProgress, Target
from divert.core.policy import Desire, Observation, Policy
from divert.core.reasons import Reason
from divert.core.restart import RestartParams, Restarts
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
    ev_soc_pct: float | None = None  # the car's state of charge (departure plans in %)
    wall_s: float | None = None  # wall-clock unix time when time_s is not (time of day)


@dataclass(frozen=True)
class Decision:
    """What the charger should do now, and why: a code, and one line for people."""

    charging: bool
    current_a: float  # per phase; 0 when not charging
    power_w: float  # current × voltage × phases: the setpoint for power-setpoint chargers
    phases: int
    reason: str
    code: Reason


@dataclass(frozen=True)
class SiteParams:
    """How the feeds relate to the charger, and the fail-safe for missing data."""

    grid_includes_ev: bool = True  # the grid meter sees the EV's draw
    battery_first_below_soc_pct: float | None = None  # home battery charges first below this
    stale_pause_s: float = 300.0  # surplus unknown this long while charging: pause


@dataclass
class _State:
    last_time_s: float | None = None
    setpoint_a: float = 0.0
    unknown_since_s: float | None = None
    limit_a: float | None = None  # temporary maximum (schedules)
    available_w: float | None = None  # this step's surplus for the EV, W
    voltage_v: float = 0.0  # this step's voltage per phase, V
    power_w: float = 0.0  # the last decision's power, W


class Controller:
    """Decides for one charger. Stateful, but its state is small and explicit."""

    def __init__(self, caps: Capabilities, policy: Policy, limits: RelayLimits,
                 mode: Mode = Mode.SOLAR, site: SiteParams | None = None,
                 guard: RelayGuard | None = None, restart: RestartParams | None = None,
                 phase: PhaseParams | None = None) -> None:
        self.caps = caps
        self.policy = policy
        self.mode = mode
        self.site = site or SiteParams()
        self.guard = guard or RelayGuard(limits)
        self.phases = caps.phases
        self._s = _State(setpoint_a=caps.min_current_a)
        self._restarts = Restarts(restart or RestartParams())
        self._phase = PhaseChooser(phase or PhaseParams())
        self.plan = PlanProgress()

    @property
    def charging(self) -> bool:
        return self.guard.on

    def set_limit(self, max_current_a: float | None) -> None:
        """A temporary maximum current (from a schedule); None lifts it."""
        self._s.limit_a = max_current_a

    def set_target(self, target: Target | None) -> None:
        """The departure plan's next deadline (`divert.core.plan.target_now`); None: none."""
        self.plan.set(target)

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
            plan, limits = self.plan, self.guard.limits
            pending = plan.pending(t_s) and self.mode not in (Mode.OFF, Mode.FAST)
            if pending:  # the plan keeps a start of the day's budget for itself
                limits = replace(limits, max_starts_per_day=limits.max_starts_per_day - 1)
            obs = Observation(t_s, dt_s, available_w, inp.grid_w is not None,
                              inp.voltage_v or caps.voltage_v, self.phases, self.charging,
                              self._s.setpoint_a, since_s, self.guard.sessions_within(t_s, DAY_S),
                              self.mode, caps, limits,
                              t_s if inp.wall_s is None else inp.wall_s,
                              plan.remaining_wh() if pending else None,
                              plan.target.by_s if pending and plan.target else None)
            wish = self.policy.decide(obs)  # every step, so the policy's filters stay warm
        if self.mode is Mode.OFF:
            return Desire(False, caps.min_current_a, "off: mode is off", Reason.OFF)
        if self.mode is Mode.FAST:
            return Desire(True, caps.max_current_a, "fast: maximum current, grid allowed",
                          Reason.FAST)
        if wish is None:
            stale_s = t_s - (self._s.unknown_since_s or t_s)
            if not self.charging and self.mode is not Mode.MIN_SOLAR:
                return Desire(False, caps.min_current_a, "waiting: no fresh surplus data",
                              Reason.NO_DATA)
            if stale_s >= site.stale_pause_s:
                return Desire(False, caps.min_current_a,
                              f"fail-safe: no fresh surplus data for {stale_s:.0f} s, pausing",
                              Reason.FAIL_SAFE_PAUSE)
            return Desire(True, caps.min_current_a,
                          "fail-safe: no fresh surplus data, minimum current", Reason.FAIL_SAFE)
        if self.mode is Mode.MIN_SOLAR:
            return Desire(True, max(caps.min_current_a, wish.current_a),
                          f"min-solar: {wish.reason}", wish.code)
        return wish

    def step(self, inp: Inputs) -> Decision:
        """One control step at `inp.time_s`. Times must not go backwards."""
        t_s = inp.time_s
        last_s = self._s.last_time_s
        dt_s = 0.0 if last_s is None else max(0.0, t_s - last_s)
        self._s.last_time_s = t_s if last_s is None else max(t_s, last_s)
        drawn_w = self._s.power_w if inp.ev_w is None else max(0.0, inp.ev_w)
        self.plan.account(drawn_w * dt_s / 3600.0, inp.ev_soc_pct)
        wish, need = self._planned(t_s, dt_s, self._desire(t_s, dt_s, inp))
        switched = self._switch_phases(t_s, dt_s, wish)
        if switched is not None:
            return self._decision(switched, Reason.PHASE_SWITCH)
        target_a = self._settable(wish.current_a)
        reason, code = wish.reason, wish.code
        guard = self.guard
        if guard.on and wish.charge:
            reason, code = self._track(t_s, target_a, reason, code)
        elif guard.on:
            hold = guard.why_no_stop(t_s)
            if hold is None:
                guard.stop(t_s)
                self._restarts.clear()
            else:
                if self.caps.control is not ControlKind.RESTART:
                    self._s.setpoint_a = target_a
                reason, code = f"holding: {hold}", hold.code
        elif wish.charge:
            keep = 0 if need is None else need.keep_starts
            reason, code = self._try_start(t_s, target_a, reason, code, keep)
        else:
            self._restarts.clear()
        return self._decision(reason, code)

    def _planned(self, t_s: float, dt_s: float, wish: Desire) -> tuple[Desire, Need | None]:
        """The wish as the departure plan amends it: full power when it must, no stop when a
        restart would come too late; otherwise the policy's, with the plan's progress."""
        if self.mode in (Mode.OFF, Mode.FAST) or self.plan.target is None:
            return wish, None
        caps, guard = self.caps, self.guard
        full_a = self._settable(caps.max_current_a)
        voltage_v = self._s.voltage_v or caps.voltage_v
        need = self.plan.need(t_s, full_a * voltage_v * self.phases, full_a, guard.on,
                              t_s + guard.wait_to_start_s(t_s), dt_s, self._s.power_w)
        if need is None:
            return wish, None
        if need.force:
            return Desire(True, full_a, need.note, Reason.PLAN), need
        if need.hold and not wish.charge:
            return Desire(True, wish.current_a, need.note, Reason.PLAN), need
        return Desire(wish.charge, wish.current_a, f"{wish.reason}; {need.note}",
                      wish.code), need

    def _switch_phases(self, t_s: float, dt_s: float, wish: Desire) -> str | None:
        """Switch between one and three phases when the charger can and the guard allows;
        the reason if it did. A refused switch leaves the step to the usual start/stop."""
        caps, s, guard = self.caps, self._s, self.guard
        if not (caps.phase_switching and caps.phases == 3):
            return None
        self._phase.observe(s.available_w, dt_s)
        want = self._phase.want(caps, self.mode, self.phases, s.available_w, guard.on,
                                wish.charge)
        if want is None or guard.why_no_switch(t_s) is not None:
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
        self._restarts.to_a = None
        return f"switching to {to}: {why}"

    def _track(self, t_s: float, target_a: float, reason: str,
               code: Reason) -> tuple[str, Reason]:
        s = self._s
        if self.caps.control is not ControlKind.RESTART or target_a == s.setpoint_a:
            s.setpoint_a = target_a
            self._restarts.clear()
            return reason, code
        return self._restarts.track(t_s, self.guard, s.setpoint_a, target_a)

    def _try_start(self, t_s: float, target_a: float, reason: str, code: Reason,
                   keep_today: int = 0) -> tuple[str, Reason]:
        """Start if the guard allows, leaving `keep_today` starts of the day's budget."""
        guard = self.guard
        gap_s = self._restarts.gap_left_s(t_s, guard, self.caps.restart_gap_s)
        if gap_s > 0:
            return f"restarting: {gap_s:.0f} s gap before {target_a:g} A", Reason.RESTARTING
        hold = guard.why_no_start(t_s) or (guard.why_no_budget(t_s, keep_today)
                                           if keep_today else None)
        if hold is not None:
            return f"blocked: {hold}", hold.code
        guard.start(t_s)
        self._s.setpoint_a = target_a
        self._restarts.clear()
        return reason, code

    def _decision(self, reason: str, code: Reason) -> Decision:
        on = self.guard.on
        current_a = self._s.setpoint_a if on else 0.0
        self._s.power_w = current_a * (self._s.voltage_v or self.caps.voltage_v) * self.phases
        return Decision(on, current_a, self.caps.power_w(current_a, self.phases), self.phases,
                        reason, code)

    def to_state(self) -> dict[str, Any]:
        """What must survive a restart: the relay history, the setpoint and the energy
        counted towards a departure plan's deadline."""
        return {"guard": self.guard.to_state(), "setpoint_a": self._s.setpoint_a,
                "mode": str(self.mode), "phases": self.phases, "plan": self.plan.to_state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.guard = RelayGuard.from_state(self.guard.limits, state.get("guard", {}))
        self._s.setpoint_a = float(state.get("setpoint_a", self.caps.min_current_a))
        if "mode" in state:
            self.mode = Mode(state["mode"])
        if isinstance(state.get("plan"), dict):
            self.plan.restore(state["plan"])
        phases = int(state.get("phases", self.caps.phases))
        # Wiring may have changed since the save: only a count the charger has now is kept.
        self.phases = phases if phases in (1, self.caps.phases) and (
            phases == self.caps.phases or self.caps.phase_switching) else self.caps.phases
