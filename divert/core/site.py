"""The site: several chargers behind one meter and one main fuse, maybe a home battery.

`Site.step` runs once per loop. The surplus is computed once for the whole site (the
chargers' measured draw added back once when the grid meter sees them) and handed down the
chargers in priority order: higher `priority` first, ties in config order. Each charger
keeps its own policy, capabilities and relay guard; its controller decides on the share it
is offered, and what it then draws is taken from what the chargers after it are offered.

* `priority` sharing: a charger is offered what the chargers before it left.
* `fair` sharing: equal shares, planned before the step among the chargers that can take
  one, each within what it can draw (its minimum to its maximum power); when the surplus
  cannot carry every charger's minimum, the lowest priorities get none, so that a share
  too small to charge on is not wasted. What a charger leaves goes to the ones after it,
  and what a restart-only charger cannot take before its next restart to the ones before.
* A charger that cannot use its share takes nothing from the others in the same loop:
  no car, a fault, offline (its draw is in the meter, not added back), held back by its
  guard, or drawing clearly less than it is set to (a full car: its measured draw counts).
* The site limit (`max_import_w`: house plus chargers; `max_phase_current_a` per line) caps
  each charger, highest priority first, on the house load of the latest fresh reading (the
  last known one while the meter is stale; none known yet: charging cars are held at their
  minimum and nothing starts). Below its minimum a charger pauses, even inside its minimum
  on-time: the one stop the guard allows there, and records.
* The home battery (`BatteryRule`): its charging is surplus unless it charges first; its
  discharge is not surplus, except in buffer mode where it carries a charging car through
  a dip at its minimum power (its share is raised to that, never more).

Powers in W, currents in A per phase, voltages in V, times in s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from divert.core.capabilities import ControlKind
from divert.core.controller import Controller, Decision, Offer, SiteCap, SiteParams
from divert.core.modes import Mode
from divert.core.reasons import Reason
from divert.core.surplus import surplus_w

LINES = (0, 1, 2)
# Decisions the policy made on its share: the site names the share in their reason.
_POLICY_CODES = frozenset({Reason.WAITING, Reason.STARTING, Reason.CHARGING, Reason.BRIDGING,
                           Reason.STOPPING})


class Sharing(StrEnum):
    PRIORITY = "priority"  # down the priority list: each takes what it can
    FAIR = "fair"  # equal shares among the chargers that can take one


@dataclass(frozen=True)
class SiteRules:
    """How the site shares its surplus, and the limits it must never exceed."""

    sharing: Sharing = Sharing.PRIORITY
    max_import_w: float | None = None  # grid import of house plus chargers, W
    max_phase_current_a: float | None = None  # import current per line, A
    settle_s: float = 60.0  # a car counts as full only this long after its setpoint last rose


@dataclass(frozen=True)
class Member:
    """One charger of the site: its name, priority (higher first) and, for a single-phase
    charger, the line (1–3) it is wired to."""

    name: str
    priority: int = 0
    line: int = 1


@dataclass(frozen=True)
class ChargerInputs:
    """One charger's readings for a step."""

    ev_w: float | None = None  # its measured draw: its own meter, else its reading
    voltage_v: float | None = None  # its measured voltage per phase
    online: bool = True  # its reading answers
    vehicle_connected: bool | None = None  # None: the charger does not tell
    fault: str | None = None  # the charger's words for a fault it reports
    ev_soc_pct: float | None = None  # its car's state of charge (departure plans in %)


@dataclass(frozen=True)
class SiteInputs:
    """The site's readings for one step. Powers in W (grid + import, battery + charging),
    line currents in A (+ import), SoC in %; None: not known or stale. Chargers left out of
    `chargers` are not connected: they are not stepped."""

    time_s: float
    grid_w: float | None = None
    solar_w: float | None = None
    load_w: float | None = None  # house load without the chargers
    voltage_v: float | None = None
    battery_w: float | None = None
    battery_soc_pct: float | None = None
    grid_a: tuple[float | None, float | None, float | None] = (None, None, None)
    chargers: Mapping[str, ChargerInputs] = field(default_factory=dict)
    wall_s: float | None = None  # wall-clock unix time when time_s is not (time of day)


@dataclass(frozen=True)
class SiteStatus:
    """The site after a step: what the metrics, the status line and the snapshot show."""

    time_s: float | None = None
    surplus_w: float | None = None  # the whole site's, W
    shares_w: Mapping[str, float | None] = field(default_factory=dict)  # offered to each
    max_import_w: float | None = None  # the import limit, W
    room_w: float | None = None  # left for the chargers under it, W
    limited: bool = False  # the limit held a charger back


@dataclass
class _Room:
    """What the site limit leaves for the chargers not yet stepped."""

    power_w: float  # inf: no import limit
    power_why: str
    line_a: list[float]  # per line; inf: no phase-current limit
    line_why: list[str]
    missing: str | None  # a reading the limit needs and never had: cars keep their minimum

    def cap(self, lines: Sequence[int], charging_min_a: float) -> SiteCap:
        """The cap of the next charger, drawing on `lines`; without every reading, the
        minimum current for a charging car (`charging_min_a`; 0 for the others)."""
        if self.missing is not None:
            return SiteCap(math.inf, "", charging_min_a, self.missing)
        p = min(lines, key=lambda i: self.line_a[i])
        return SiteCap(self.power_w, self.power_why, self.line_a[p], self.line_why[p])

    def take(self, lines: Sequence[int], power_w: float, current_a: float) -> None:
        self.power_w -= power_w
        for p in lines:
            self.line_a[p] -= current_a


class Site:
    """The chargers of one site and the state the site keeps between steps."""

    def __init__(self, members: Sequence[Member], controllers: Mapping[str, Controller],
                 rules: SiteRules | None = None, params: SiteParams | None = None) -> None:
        self.members = sorted(members, key=lambda m: -m.priority)  # stable: config order
        self.controllers = dict(controllers)  # the daemon swaps one in at connect
        self.rules = rules or SiteRules()
        self.params = params or SiteParams()
        self.status = SiteStatus(max_import_w=self.rules.max_import_w)
        self._house_w: float | None = None  # last known house import, W
        self._house_a: list[float | None] = [None, None, None]  # … per line, A
        self._set_w: dict[str, float] = {}  # each charger's setpoint power after the last step
        self._raised_s: dict[str, float] = {}  # when that last rose

    def step(self, inp: SiteInputs) -> dict[str, Decision]:
        """One loop for the whole site: a decision for every connected charger."""
        t_s = inp.time_s
        present = [m for m in self.members if m.name in inp.chargers]
        for m in self.members:  # one not connected starts afresh when it comes back
            if m.name not in inp.chargers:
                self._set_w.pop(m.name, None)
        ev_total_w = sum(w for m in present if (w := inp.chargers[m.name].ev_w) is not None)
        battery, soc = self.params.battery, inp.battery_soc_pct
        site_w = surplus_w(inp.grid_w, inp.solar_w, inp.load_w, ev_total_w,
                           self.params.grid_includes_ev, inp.battery_w,
                           battery.charges_first(soc))
        carried = battery.carries(soc)
        room = self._room(inp, present, ev_total_w)
        planned = ({} if site_w is None or self.rules.sharing is Sharing.PRIORITY
                   else self._plan(site_w, present, inp))
        reserved_w = sum(planned.values())  # planned for the chargers not yet stepped
        spare = self._spare(planned)
        spare_w = sum(spare.values())  # … of which they will not use this loop
        pool_w = site_w
        decisions: dict[str, Decision] = {}
        shares: dict[str, float | None] = {}
        for m in present:
            c, ci = self.controllers[m.name], inp.chargers[m.name]
            reserved_w -= planned.get(m.name, 0.0)
            spare_w -= spare.get(m.name, 0.0)
            share_w, sun_w = None, 0.0
            if pool_w is not None:
                share_w = sun_w = pool_w - reserved_w + spare_w if _can_draw(ci) else 0.0
                if m.name in spare:  # the share it was planned, for its own economics
                    share_w = max(share_w, planned[m.name])
            floored = carried and c.charging and share_w is not None \
                and share_w < self._min_w(m.name)
            if floored:  # the battery carries it through the dip at its minimum
                share_w = self._min_w(m.name)
            volts = inp.voltage_v or ci.voltage_v
            cap = None if room is None else room.cap(
                self._lines(m, c.caps.phases), c.caps.min_current_a if c.charging else 0.0)
            d = c.decide(Offer(t_s, share_w, inp.grid_w is not None, volts, cap, inp.wall_s,
                               ci.ev_soc_pct))
            d = _explain(m, ci, d, share_w, site_w)
            power_w = d.current_a * (volts or c.caps.voltage_v) * d.phases
            if room is not None:
                room.take(self._lines(m, d.phases), power_w, d.current_a)
            used_w = self._used_w(m.name, ci, d, power_w, t_s)
            if pool_w is not None:
                # What the battery carries is not the sun's: only the rest leaves the pool.
                pool_w -= min(used_w, max(0.0, sun_w)) if floored else used_w
            decisions[m.name], shares[m.name] = d, share_w
        self.status = SiteStatus(t_s, site_w, shares, self.rules.max_import_w,
                                 None if self._house_w is None or self.rules.max_import_w is None
                                 else self.rules.max_import_w - self._house_w,
                                 any(d.code is Reason.SITE_LIMITED for d in decisions.values()))
        return decisions

    # --- the pieces of a step ------------------------------------------------------------

    def _min_w(self, name: str) -> float:
        c = self.controllers[name]
        return c.caps.min_power_at(c.phases)

    def _lines(self, m: Member, phases: int) -> tuple[int, ...]:
        """The lines a charger draws on with `phases` phases; a charger that may switch to
        three phases is capped on all three."""
        caps = self.controllers[m.name].caps
        return LINES if phases == 3 or caps.phase_switching else (m.line - 1,)

    def _room(self, inp: SiteInputs, present: Sequence[Member],
              ev_total_w: float) -> _Room | None:
        """What the site limit leaves for the chargers: the limit minus the house's import
        (the latest fresh reading, else the last known), or None without a limit."""
        rules = self.rules
        if rules.max_import_w is None and rules.max_phase_current_a is None:
            return None
        seen = self.params.grid_includes_ev
        if inp.grid_w is not None:
            self._house_w = inp.grid_w - (ev_total_w if seen else 0.0)
        elif inp.solar_w is not None and inp.load_w is not None:
            self._house_w = inp.load_w - inp.solar_w + (inp.battery_w or 0.0)
        for p, grid_a in enumerate(inp.grid_a):
            if grid_a is not None:
                self._house_a[p] = grid_a - (self._ev_a(inp, present, p) if seen else 0.0)
        missing = None
        power_w, power_why = math.inf, ""
        if rules.max_import_w is not None:
            power_why = f"site import limit {rules.max_import_w:.0f} W"
            if self._house_w is None:
                missing = f"{power_why}, house load not read yet"
            else:
                power_w = rules.max_import_w - self._house_w
                power_why += f", {max(0.0, power_w) / 1000:.1f} kW left for chargers"
        line_a, line_why = [math.inf] * 3, [""] * 3
        if rules.max_phase_current_a is not None:
            for p in LINES:
                house_a = self._house_a[p]
                why = f"phase current limit {rules.max_phase_current_a:g} A"
                if house_a is None:
                    missing = missing or f"{why}, L{p + 1} not read yet"
                    continue
                line_a[p] = rules.max_phase_current_a - house_a
                line_why[p] = f"{why}, {max(0.0, line_a[p]):.1f} A left for chargers on L{p + 1}"
        return _Room(power_w, power_why, line_a, line_why, missing)

    def _ev_a(self, inp: SiteInputs, present: Sequence[Member], line: int) -> float:
        """The chargers' measured current on `line`, A."""
        total_a = 0.0
        for m in present:
            ev_w, c = inp.chargers[m.name].ev_w, self.controllers[m.name]
            if ev_w is not None and line in (LINES if c.phases == 3 else (m.line - 1,)):
                volts = inp.voltage_v or inp.chargers[m.name].voltage_v or c.caps.voltage_v
                total_a += ev_w / (volts * c.phases)
        return total_a

    def _plan(self, site_w: float, present: Sequence[Member],
              inp: SiteInputs) -> dict[str, float]:
        """Fair shares, planned before the step: `fast` chargers first (they draw their
        maximum whatever they are offered), then equal shares among the chargers that can
        take one, as many as the surplus carries at their minimum, highest priority first."""
        t_s = inp.time_s
        planned: dict[str, float] = {}
        takers: list[tuple[str, float, float]] = []  # name, minimum and maximum power, W
        pool_w = site_w
        for m in present:
            c = self.controllers[m.name]
            if not _can_draw(inp.chargers[m.name]) or not inp.chargers[m.name].online \
                    or c.mode is Mode.OFF \
                    or not (c.charging or c.guard.why_no_start(t_s) is None):
                continue
            top_w = c.caps.power_w(c.caps.max_current_a)
            if c.mode is Mode.FAST:
                planned[m.name] = top_w
                pool_w -= top_w
                continue
            low_w = c.caps.min_power_at(1 if c.caps.phase_switching else c.phases)
            if sum(lo for _, lo, _ in takers) + low_w <= pool_w:
                takers.append((m.name, low_w, top_w))
        shares = _fill(pool_w, [(lo, hi) for _, lo, hi in takers])
        planned.update((name, w) for (name, _, _), w in zip(takers, shares, strict=True))
        return planned

    def _spare(self, planned: Mapping[str, float]) -> dict[str, float]:
        """What a restart-only charger that is charging leaves of its planned fair share: it
        keeps its current for the session (a new one starts with a stop), so the chargers
        stepped before it may take the rest this loop."""
        spare = {}
        for name, planned_w in planned.items():
            c = self.controllers[name]
            if c.charging and c.caps.control is ControlKind.RESTART:
                spare[name] = max(0.0, planned_w - self._set_w.get(name, 0.0))
        return spare

    def _used_w(self, name: str, ci: ChargerInputs, d: Decision, power_w: float,
                t_s: float) -> float:
        """What a charger takes from the surplus the chargers after it share: its setpoint's
        power, or its measured draw when that is clearly less (a full car), once the car has
        had `settle_s` to follow its last raise (a start is one). No car, fault: nothing.
        Offline (it may not have heard): what its own meter measures, else nothing (its draw
        is in the grid meter, not added back). Called at every step, to see every raise."""
        set_w = power_w if d.charging else 0.0
        if set_w > self._set_w.get(name, 0.0) + 1e-9:
            self._raised_s[name] = t_s
        self._set_w[name] = set_w
        if not ci.online:  # what it draws, if its own meter tells (else it is in the meter)
            return 0.0 if ci.ev_w is None else max(0.0, ci.ev_w)
        if not d.charging or not _can_draw(ci):
            return 0.0
        caps = self.controllers[name].caps
        slack_w = max(caps.power_w(caps.step_a, d.phases), 0.1 * power_w)
        settled = t_s - self._raised_s.get(name, t_s) >= self.rules.settle_s
        if settled and ci.ev_w is not None and ci.ev_w < power_w - slack_w:
            return max(0.0, ci.ev_w)
        return power_w


def _can_draw(ci: ChargerInputs) -> bool:
    """A car is (or may be) connected and the charger reports no fault."""
    return ci.vehicle_connected is not False and ci.fault is None


def _explain(m: Member, ci: ChargerInputs, d: Decision, share_w: float | None,
             site_w: float | None) -> Decision:
    """The decision's reason with the site's part in it: no car, a fault, or the share."""
    if not d.charging and ci.fault is not None:
        return replace(d, reason=ci.fault, code=Reason.FAULT)
    if not d.charging and ci.vehicle_connected is False:
        return replace(d, reason="waiting: no car connected", code=Reason.NO_VEHICLE)
    if share_w is None or site_w is None or share_w >= site_w - 0.5 \
            or d.code not in _POLICY_CODES:
        return d
    return replace(d, reason=f"sharing: {share_w / 1000:.1f} of {site_w / 1000:.1f} kW "
                   f"(priority {m.priority}), {d.reason}", code=Reason.SHARING)


def _fill(pool_w: float, bounds: Sequence[tuple[float, float]]) -> list[float]:
    """Equal shares of `pool_w`, each within its (minimum, maximum): one level, clamped to
    each range, that uses the pool up (or every maximum). The caller ensures the minimums
    fit."""
    if not bounds:
        return []
    lo_w, hi_w = 0.0, max(hi for _, hi in bounds)
    for _ in range(60):  # bisection to well below a watt
        level_w = (lo_w + hi_w) / 2
        if sum(min(hi, max(lo, level_w)) for lo, hi in bounds) > pool_w:
            hi_w = level_w
        else:
            lo_w = level_w
    return [min(hi, max(lo, lo_w)) for lo, hi in bounds]
