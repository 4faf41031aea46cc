"""The Snapshot: what the daemon knows at the end of one control cycle (LOOP.md).

Built once per cycle at "report" and handed to the publishers; MQTT state, Home Assistant,
the status page, `/api/state` and `divert status` all read it. It is frozen, so a publisher
on another thread can hold it while the next cycle runs. Times are wall-clock seconds since
the epoch; powers in W, currents in A per phase, energies in kWh.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from divert.core.controller import Controller, Decision
from divert.core.guard import DAY_S, HOUR_S
from divert.core.modes import Mode
from divert.core.reasons import Reason
from divert.core.site import Site

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedState:
    name: str
    age_s: float | None  # since the last good value; None before the first
    fresh: bool  # young enough to be used

    @property
    def health(self) -> str:
        """ok, stale (too old to use) or missing (never received)."""
        return "ok" if self.fresh else ("missing" if self.age_s is None else "stale")


@dataclass(frozen=True)
class SiteState:
    surplus_w: float | None  # what the EVs could draw without import; None when unknown
    grid_w: float | None  # + import / − export
    solar_w: float | None
    feeds: tuple[FeedState, ...]
    limited: bool | None = None  # the site limit holds chargers back; None: no limit set
    limit_w: float | None = None  # the import limit (house plus chargers), W


@dataclass(frozen=True)
class ChargerState:
    name: str
    connected: bool  # connected and its last read answered
    mode: Mode  # in force for this charger (config, schedule, command or boost)
    setpoint_a: float  # commanded, 0 while paused
    power_w: float | None  # measured into the EV
    charging: bool
    reason: str  # the core's one line
    code: Reason | None  # None before the first decision
    phases: int
    min_current_a: float  # in force (a command may have raised the charger's own)
    max_current_a: float  # in force (schedule cap or command)
    boost_until_s: float | None  # a boost runs fast mode until then
    starts_today: int  # relay starts since local midnight
    starts_left_hour: int  # the guard's budget left in the rolling hour
    starts_left_day: int  # … and in the rolling 24 h
    energy_from_surplus_today_kwh: float
    energy_from_grid_today_kwh: float
    energy_from_surplus_total_kwh: float
    energy_from_grid_total_kwh: float
    share_w: float | None = None  # the site's surplus offered to this charger


@dataclass(frozen=True)
class Snapshot:
    time_s: float
    mode: Mode  # the daemon's mode (config or schedule); a charger's own may differ
    site: SiteState
    chargers: tuple[ChargerState, ...]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what `/api/state` serves); feeds by name, with their health."""
        data = asdict(self)
        data["site"]["feeds"] = {f.name: {"age_s": f.age_s, "health": f.health}
                                 for f in self.site.feeds}
        out: dict[str, Any] = _finite(data)
        return out


@dataclass(frozen=True)
class ChargerFacts:
    """One charger's part of a cycle, as the daemon holds it."""

    controller: Controller
    decision: Decision | None
    connected: bool
    power_w: float | None
    surplus_wh: float  # energy counters since the state file began
    grid_wh: float
    limit_a: float | None  # the cap in force; None: the charger's maximum
    boost_until_s: float | None
    share_w: float | None = None  # the site's surplus offered to it this cycle


class SnapshotBuilder:
    """Builds Snapshots; keeps where today's energy counting began (kept in the state file,
    so a restart does not forget the morning)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._day: str | None = None  # ISO date of the local day being counted
        self._day_start: dict[str, tuple[float, float]] = {}  # surplus, grid Wh at its start

    def build(self, wall_s: float, control_s: float, mode: Mode,
              values: Mapping[str, float | None], ages_s: Mapping[str, float | None],
              site: Site, chargers: Mapping[str, ChargerFacts]) -> Snapshot:
        """`wall_s` for display and the local day, `control_s` the clock the guards run on;
        the site's surplus and limit as its last step left them."""
        now = datetime.fromtimestamp(wall_s, self.tz)
        day = now.date().isoformat()
        if day != self._day:
            self._day, self._day_start = day, {}
        midnight = datetime.combine(now.date(), time(), self.tz)
        since_midnight_s = min(DAY_S, max(0.0, wall_s - midnight.timestamp()))
        rules, status = site.rules, site.status
        has_limit = rules.max_import_w is not None or rules.max_phase_current_a is not None
        state = SiteState(status.surplus_w, values.get("grid"), values.get("solar"),
                          tuple(FeedState(name, ages_s.get(name), values.get(name) is not None)
                                for name in ages_s),
                          status.limited if has_limit else None, rules.max_import_w)
        return Snapshot(wall_s, mode, state, tuple(
            self._charger(name, facts, control_s, since_midnight_s)
            for name, facts in chargers.items()))

    def _charger(self, name: str, facts: ChargerFacts, control_s: float,
                 since_midnight_s: float) -> ChargerState:
        c, d = facts.controller, facts.decision
        guard, limits = c.guard, c.guard.limits
        start = self._day_start.setdefault(name, (facts.surplus_wh, facts.grid_wh))
        return ChargerState(
            name=name, connected=facts.connected, mode=c.mode,
            setpoint_a=0.0 if d is None else d.current_a, power_w=facts.power_w,
            charging=c.charging, reason=charger_reason(d, facts.connected),
            code=None if d is None else d.code, phases=c.phases,
            min_current_a=c.caps.min_current_a,
            max_current_a=c.caps.max_current_a if facts.limit_a is None
            else min(facts.limit_a, c.caps.max_current_a),
            boost_until_s=facts.boost_until_s,
            starts_today=guard.starts_within(control_s, since_midnight_s),
            starts_left_hour=max(0, limits.max_starts_per_hour
                                 - guard.starts_within(control_s, HOUR_S)),
            starts_left_day=max(0, limits.max_starts_per_day
                                - guard.starts_within(control_s, DAY_S)),
            energy_from_surplus_today_kwh=max(0.0, facts.surplus_wh - start[0]) / 1000,
            energy_from_grid_today_kwh=max(0.0, facts.grid_wh - start[1]) / 1000,
            energy_from_surplus_total_kwh=facts.surplus_wh / 1000,
            energy_from_grid_total_kwh=facts.grid_wh / 1000, share_w=facts.share_w)

    def to_state(self) -> dict[str, Any]:
        return {"day": self._day, "chargers": {n: list(v) for n, v in self._day_start.items()}}

    def restore(self, saved: Any) -> None:
        """Take a saved day start; anything unusable is dropped (logged), never fatal."""
        if saved is None:
            return
        try:
            day = saved["day"]
            starts = {str(name): (_wh(v[0]), _wh(v[1]))
                      for name, v in dict(saved["chargers"]).items()}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.error("state file: energy_today is unusable (%r); today's energy counts "
                      "from now", exc)
            return
        if isinstance(day, str):
            self._day, self._day_start = day, starts


def _wh(value: Any) -> float:
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"expected a finite amount >= 0, got {value!r}")
    return out


def _finite(node: Any) -> Any:
    """`node` with NaN and infinities as None (JSON has no such numbers)."""
    if isinstance(node, float) and not math.isfinite(node):
        return None
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    return node


def charger_reason(decision: Decision | None, connected: bool) -> str:
    """The decision's line; before the first decision, what the daemon waits for."""
    if decision is not None:
        return decision.reason
    if connected:  # no command before a reading and the feeds' chance (adopt, not bounce)
        return "waiting for a reading and fresh feed values"
    return "not connected"
