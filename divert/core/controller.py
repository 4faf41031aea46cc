"""The control core: one pure, clock-injected object per charger.

`Controller.step(inputs)` turns one set of readings into a `Decision`; inside a site
(`divert.core.site`) the site computes the surplus once and hands each charger an `Offer`
(`Controller.decide`). It does no I/O and reads no clock: the daemon, `divert simulate` and
`divert bench` all drive this same code. Order of authority, top to bottom: site limit →
mode → policy → charger capabilities → relay guard; only the site limit may stop a charger
inside its minimum on-time (the guard records that stop too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.guard import DAY_S, RelayGuard, RelayLimits
from divert.core.modes import Mode
from divert.core.phases import PhaseChooser, PhaseParams
from divert.core.plan import Need, PlanProgress, Target
from divert.core.policy import Desire, Observation, Policy
from divert.core.reasons import Reason
from divert.core.restart import RestartParams, Restarts
from divert.core.surplus import BatteryRule, surplus_w


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
    """How the feeds relate to the chargers, and the fail-safe for missing data."""

    grid_includes_ev: bool = True  # the grid meter sees the chargers' draw
    battery: BatteryRule = field(default_factory=BatteryRule)  # its place in the surplus
    stale_pause_s: float = 300.0  # surplus unknown this long while charging: pause


@dataclass(frozen=True)
class SiteCap:
    """The most one charger may draw this step under the site's limits, and why: a power
    over all its phases (W) and a current per phase (A); inf where no limit applies."""

    power_w: float
    power_why: str
    current_a: float = math.inf
    current_why: str = ""

    def current_at(self, voltage_v: float, phases: int) -> tuple[float, str]:
        """The most current per phase at `voltage_v` on `phases` phases, and the limit that
        sets it."""
        by_power_a = self.power_w / (voltage_v * phases)
        if by_power_a <= self.current_a:
            return by_power_a, self.power_why
        return self.current_a, self.current_why


@dataclass(frozen=True)
class Offer:
    """What one charger is given for one step: the surplus it may take (W; None: unknown),
    whether that came from a grid meter, the voltage per phase (V) and the site's cap."""

    time_s: float
    surplus_w: float | None
    from_grid_meter: bool = True
    voltage_v: float | None = None
    cap: SiteCap | None = None
    wall_s: float | None = None  # wall-clock unix time when time_s is not (time of day)
    ev_soc_pct: float | None = None  # the car's state of charge, %


@dataclass
class _State:
    last_time_s: float | None = None
    setpoint_a: float = 0.0
    unknown_since_s: float | None = None
    limit_a: float | None = None  # temporary maximum (schedules)
    available_w: float | None = None  # this step's surplus for the EV, W
    voltage_v: float = 0.0  # this step's voltage per phase, V
    cap: SiteCap | None = None  # this step's site limit
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

    def _settable(self, current_a: float, capped: bool = True) -> float:
        """`current_a` as the charger can set it, within the schedule's and (if `capped`)
        the site's limit."""
        caps = self.caps
        hi = caps.max_current_a if self._s.limit_a is None else min(caps.max_current_a,
                                                                    self._s.limit_a)
        if capped and self._s.cap is not None:
            cap_a = self._cap_a(self.phases)[0]
            hi = min(hi, max(caps.min_current_a,
                             math.floor(cap_a / caps.step_a + 1e-9) * caps.step_a))
        steps = math.floor(current_a / caps.step_a + 1e-9)
        return round(min(hi, max(caps.min_current_a, steps * caps.step_a)), 6)

    def _cap_a(self, phases: int) -> tuple[float, str]:
        """The site's most current per phase on `phases` phases (inf without a cap)."""
        cap = self._s.cap
        return (math.inf, "") if cap is None else cap.current_at(self._s.voltage_v, phases)

    def _desire(self, t_s: float, dt_s: float, offer: Offer) -> Desire:
        available_w = offer.surplus_w
        caps = self.caps
        self._s.available_w = available_w
        self._s.voltage_v = offer.voltage_v or caps.voltage_v
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
            obs = Observation(t_s, dt_s, available_w, offer.from_grid_meter,
                              self._s.voltage_v, self.phases, self.charging,
                              self._s.setpoint_a, since_s, self.guard.sessions_within(t_s, DAY_S),
                              self.mode, caps, limits,
                              t_s if offer.wall_s is None else offer.wall_s,
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
            if stale_s >= self.site.stale_pause_s:
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
        """One control step of a charger on its own, at `inp.time_s`: the surplus from the
        feeds, no site limit. Times must not go backwards."""
        site = self.site
        available_w = surplus_w(inp.grid_w, inp.solar_w, inp.load_w, inp.ev_w,
                                site.grid_includes_ev, inp.battery_w,
                                site.battery.charges_first(inp.battery_soc_pct))
        if available_w is not None and self.charging \
                and site.battery.carries(inp.battery_soc_pct):
            available_w = max(available_w, self.caps.min_power_at(self.phases))
        return self.decide(Offer(inp.time_s, available_w, inp.grid_w is not None,
                                 inp.voltage_v, wall_s=inp.wall_s, ev_soc_pct=inp.ev_soc_pct))

    def decide(self, offer: Offer) -> Decision:
        """One control step on what the site offers. Times must not go backwards."""
        t_s = offer.time_s
        last_s = self._s.last_time_s
        dt_s = 0.0 if last_s is None else max(0.0, t_s - last_s)
        self._s.last_time_s = t_s if last_s is None else max(t_s, last_s)
        self._s.cap = offer.cap
        # The energy a departure plan counts: the last decision's power since then.
        self.plan.account(self._s.power_w * dt_s / 3600.0, offer.ev_soc_pct)
        wish, need = self._planned(t_s, dt_s, self._desire(t_s, dt_s, offer))
        limited = self._site_limit(t_s, wish)
        if limited is not None:
            return limited
        switched = self._switch_phases(t_s, dt_s, wish)
        if switched is not None:
            return self._decision(switched, Reason.PHASE_SWITCH)
        target_a = self._settable(wish.current_a)
        reason, code = wish.reason, wish.code
        if wish.charge and target_a < self._settable(wish.current_a, capped=False):
            reason, code = f"limited: {self._cap_a(self.phases)[1]}", Reason.SITE_LIMITED
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

    def _site_limit(self, t_s: float, wish: Desire) -> Decision | None:
        """A pause when the site's cap leaves less than the minimum current (or, restart-only,
        less than the session's current): the one stop allowed inside the minimum on-time."""
        caps, guard = self.caps, self.guard
        cap_a, why = self._cap_a(self.phases)
        held_a = self._s.setpoint_a if guard.on and caps.control is ControlKind.RESTART else 0.0
        if cap_a >= max(caps.min_current_a, held_a) - 1e-9:
            return None
        if guard.on:
            guard.trip(t_s)
            self._restarts.clear()
        elif not wish.charge:
            return None
        return self._decision(f"limited: {why}", Reason.SITE_LIMITED)

    def _switch_phases(self, t_s: float, dt_s: float, wish: Desire) -> str | None:
        """Switch between one and three phases when the charger can and the guard allows;
        the reason if it did. A refused switch leaves the step to the usual start/stop."""
        caps, s, guard = self.caps, self._s, self.guard
        if not (caps.phase_switching and caps.phases == 3):
            return None
        self._phase.observe(s.available_w, dt_s)
        want = self._phase.want(caps, self.mode, self.phases, s.available_w, guard.on,
                                wish.charge)
        if want is None or guard.why_no_switch(t_s) is not None \
                or self._cap_a(want)[0] < caps.min_current_a:
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
        """What must survive a restart: the relay history, the setpoint, the policy's
        memory (its averages: a restart in sunshine need not wait for them again) and the
        energy counted towards a departure plan's deadline."""
        return {"guard": self.guard.to_state(), "setpoint_a": self._s.setpoint_a,
                "mode": str(self.mode), "phases": self.phases,
                "policy": self.policy.to_state(), "plan": self.plan.to_state()}

    def restore(self, state: dict[str, Any], warm: bool = True) -> None:
        """Take back a `to_state()`; the policy's memory only when `warm` (it is recent)."""
        self.guard = RelayGuard.from_state(self.guard.limits, state.get("guard", {}))
        if warm and state.get("policy") is not None:
            self.policy.restore(state["policy"])
        self._s.setpoint_a = float(state.get("setpoint_a", self.caps.min_current_a))
        if isinstance(state.get("plan"), dict):
            self.plan.restore(state["plan"])
        if "mode" in state:
            self.mode = Mode(state["mode"])
        phases = int(state.get("phases", self.caps.phases))
        # Wiring may have changed since the save: only a count the charger has now is kept.
        self.phases = phases if phases in (1, self.caps.phases) and (
            phases == self.caps.phases or self.caps.phase_switching) else self.caps.phases
