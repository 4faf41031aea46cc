"""Departure plans: the car at a target by a time, as much of it from the sun as possible.

A plan (`[[plan]]`: `energy_kwh` to add, or `soc_pct` to reach; `by` a local time of day;
on `days`) becomes a `Target` for its next deadline, counted over the 24 h before it. The
controller lets the policy charge from the sun and steps in only where it must
(`PlanProgress.need`):

* it keeps one start of the day's budget for the plan while the target is not met;
* it refuses a stop after which the relay guard would not allow a restart in time;
* from the latest moment that still makes the target at full power it charges at full
  power, from the grid as far as the sun does not cover it — as late as possible, so that
  the sun has every chance first.

Energies in Wh, powers in W, times in s on the controller's clock; `wall_offset_s` turns
them into wall-clock time (for the reasons people read).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WINDOW_S = 86400.0  # a deadline's energy counts from this long before it
MARGIN_S = 300.0  # the grid phase begins this much before the last possible moment


def parse_days(text: str) -> frozenset[int]:
    """"mon-fri", "sat,sun", "mon,wed-fri" or "*" → weekday numbers (Monday 0)."""
    text = text.strip().lower()
    if text in ("*", ""):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        ends = [p.strip() for p in part.split("-")]
        if len(ends) > 2 or any(e not in WEEKDAYS for e in ends):
            raise ValueError(f"days must be weekday names like mon-fri or sat,sun, got {text!r}")
        first, last = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        days.update(range(first, last + 1) if first <= last
                    else [*range(first, 7), *range(0, last + 1)])
    return frozenset(days)


def parse_time_of_day(text: str) -> time:
    """"07:00" → 07:00 (ASCII digits: not "٠٧:٠٠", not "7_0:00")."""
    if not re.fullmatch(r"[0-9]{1,2}:[0-9]{2}", text.strip()):
        raise ValueError(f"by must be a time of day like 07:00, got {text[:40]!r}")
    try:
        hours, minutes = (int(x) for x in text.strip().split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ValueError(f"by must be a time of day like 07:00, got {text!r}") from None


@dataclass(frozen=True)
class PlanSpec:
    """One `[[plan]]` entry: what, by when, on which days."""

    by: time
    days: frozenset[int]
    energy_wh: float | None = None  # energy to add in the 24 h before the deadline
    soc_pct: float | None = None  # or the car's state of charge to reach …
    battery_wh: float | None = None  # … with this battery

    def __post_init__(self) -> None:
        if (self.energy_wh is None) == (self.soc_pct is None):
            raise ValueError("a plan needs exactly one of energy_kwh and soc_pct")
        if self.soc_pct is not None and not self.battery_wh:
            raise ValueError("a plan with soc_pct needs battery_kwh")
        if not self.days:
            raise ValueError("a plan needs at least one day")

    def next_deadline(self, wall_s: float, tz: tzinfo) -> float:
        """The first deadline after `wall_s` (unix time), as unix time."""
        today = datetime.fromtimestamp(wall_s, tz).date()
        for k in range(8):
            day = today + timedelta(days=k)
            if day.weekday() in self.days:
                at = datetime.combine(day, self.by, tz).timestamp()
                if at > wall_s:
                    return at
        raise AssertionError("a plan has at least one day a week")

    def deadlines(self, start_s: float, end_s: float, tz: tzinfo) -> list[float]:
        """Every deadline in (start_s, end_s], as unix times."""
        out: list[float] = []
        at = self.next_deadline(start_s, tz)
        while at <= end_s:
            out.append(at)
            at = self.next_deadline(at, tz)
        return out


@dataclass(frozen=True)
class Target:
    """The deadline the controller works to now."""

    by_s: float  # on the controller's clock
    energy_wh: float | None
    soc_pct: float | None
    battery_wh: float | None
    wall_offset_s: float = 0.0  # wall-clock time − controller time
    tz: tzinfo | None = None

    def clock(self, t_s: float) -> str:
        """Controller time `t_s` as a local time of day, HH:MM."""
        return datetime.fromtimestamp(t_s + self.wall_offset_s, self.tz).strftime("%H:%M")


def target_now(specs: Iterable[PlanSpec], wall_s: float, control_s: float,
               tz: tzinfo) -> Target | None:
    """The plan whose deadline comes next, within 24 h (None if none does)."""
    best: tuple[float, PlanSpec] | None = None
    for spec in specs:
        at = spec.next_deadline(wall_s, tz)
        if at - wall_s <= WINDOW_S and (best is None or at < best[0]):
            best = (at, spec)
    if best is None:
        return None
    at, spec = best
    offset = wall_s - control_s
    return Target(at - offset, spec.energy_wh, spec.soc_pct, spec.battery_wh, offset, tz)


@dataclass(frozen=True)
class Need:
    """What the plan asks of the controller this step."""

    force: bool  # charge now, at full power
    hold: bool  # do not stop: a restart would come too late
    keep_starts: int  # starts of the day's budget the policy must leave for the plan
    note: str  # for the reason: progress and the grid phase


class PlanProgress:
    """The energy delivered towards the current target, and what the target needs now."""

    def __init__(self) -> None:
        self.target: Target | None = None
        self.counting_by_s: float | None = None  # the deadline delivered_wh counts towards
        self.delivered_wh = 0.0
        self.soc_pct: float | None = None  # the car's last reported state of charge
        self._soc_delivered_wh = 0.0  # delivered since that report
        self._opened = False
        self._forcing = False  # the last step charged at full power for the plan

    def set(self, target: Target | None) -> None:
        """Work to `target` from now; a new deadline starts a new count."""
        if target is not None and (self.counting_by_s is None
                                   or abs(target.by_s - self.counting_by_s) > 1):
            self.counting_by_s = target.by_s
            self.delivered_wh = 0.0
            self._opened = True  # the step that opens the window may still be the last one's
        self.target = target

    def account(self, energy_wh: float, soc_pct: float | None) -> None:
        """Energy delivered since the last step; the car's state of charge if reported."""
        if not self._opened:
            self.delivered_wh += energy_wh
        self._opened = False
        if soc_pct is not None and math.isfinite(soc_pct):
            self.soc_pct = soc_pct
            self._soc_delivered_wh = 0.0
        else:
            self._soc_delivered_wh += energy_wh

    def remaining_wh(self) -> float | None:
        """Energy still to deliver (negative: delivered beyond the target); None when a
        state-of-charge target has no reading."""
        t = self.target
        if t is None:
            return 0.0
        if t.energy_wh is not None:
            return t.energy_wh - self.delivered_wh
        if self.soc_pct is None or t.soc_pct is None or t.battery_wh is None:
            return None
        return (t.soc_pct - self.soc_pct) / 100.0 * t.battery_wh - self._soc_delivered_wh

    def pending(self, t_s: float) -> bool:
        """A target is set, its deadline ahead and (as far as known) not met."""
        remaining = self.remaining_wh()
        return self.target is not None and t_s < self.target.by_s and (
            remaining is None or remaining > 0)

    def need(self, t_s: float, full_power_w: float, full_current_a: float, charging: bool,
             earliest_start_s: float, step_s: float, power_w: float = 0.0) -> Need | None:
        """What the plan needs now; None when there is no target or it is met.

        `earliest_start_s`: when the guard would allow a start (off: from now on; charging:
        after a stop now), given the starts made so far. `power_w`: the power charging now.
        """
        t = self.target
        if t is None or t_s >= t.by_s:
            return None
        remaining = self.remaining_wh()
        by = t.clock(t.by_s)
        if remaining is None:
            return Need(False, False, 1, f"plan: no state of charge from the car yet "
                        f"(target {t.soc_pct:g} % by {by})")
        if t.energy_wh is not None:
            done = f"{self.delivered_wh / 1000:.1f} of {t.energy_wh / 1000:.1f} kWh"
        else:
            done = f"{self.soc_pct:.0f} of {t.soc_pct:g} %"
        if remaining <= 0:
            # Met by the count; charging goes on for one more step, as a meter (or a
            # plant) may count the last step late.
            if not charging or remaining <= -power_w * step_s / 3600.0:
                self._forcing = False
                return None
            if self._forcing:
                return Need(True, False, 0, f"plan: {done} by {by}, the last step")
            return Need(False, True, 0, f"plan: {done} by {by}, the last step")
        need_s = max(0.0, remaining) * 3600.0 / full_power_w
        latest_s = t.by_s - need_s - max(step_s, MARGIN_S)  # the grid phase's last moment
        too_late = earliest_start_s > latest_s  # a (re)start would come after it
        self._forcing = t_s >= latest_s or (too_late and not charging)
        if self._forcing:
            short = "" if t_s <= t.by_s - need_s else ", short of time"
            return Need(True, False, 0, f"plan: {done} by {by}, grid since "
                        f"{t.clock(min(t_s, latest_s))} at {full_current_a:g} A{short}")
        hold = charging and too_late
        return Need(False, hold, 1, f"plan: {done} by {by}, grid from {t.clock(latest_s)} at "
                    f"{full_current_a:g} A" + ("; holding on, a restart would come too late"
                                               if hold else ""))

    def to_state(self) -> dict[str, Any]:
        return {"by_s": self.counting_by_s, "delivered_wh": self.delivered_wh}

    def restore(self, state: dict[str, Any]) -> None:
        """The count towards a deadline survives a restart: the shell sets the target again,
        and `set` keeps the count when the deadline is the same."""
        by_s, delivered = state.get("by_s"), state.get("delivered_wh", 0.0)
        if isinstance(by_s, int | float) and isinstance(delivered, int | float) \
                and math.isfinite(delivered) and delivered >= 0:
            self.counting_by_s = float(by_s)
            self.delivered_wh = float(delivered)
