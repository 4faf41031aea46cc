"""The relay-cycle guard: the one place that decides whether a start or a stop may happen.

Each start or stop wears the charger's relay and the car's contactors. The controller asks
the guard before every transition and records every transition it makes; no policy or mode
has a path around it; only the site limit may stop a charger inside its minimum on-time
(`trip`), and that stop is recorded too. Times are seconds on the controller's injected clock.

A 1/3-phase switch under load is a relay cycle too: the charger opens its contactor, changes
phases and closes it again. The guard treats it as a stop followed at once by a start: it
needs the minimum on-time, counts as a start in both budgets, and restarts the on-time; the
minimum off-time does not apply (the charger's own pause is not a break between sessions).
Every change of the phase count, under load or not, keeps `min_phase_switch_s` from the last.

Times are seconds on one monotonic clock (the daemon's control clock), so a step of the wall
clock cannot move them. The state file keeps them in wall-clock time; `rebase` moves a saved
state from one clock onto the other.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from divert.core.reasons import Reason

HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True)
class RelayLimits:
    """Minimum on/off durations in s, start budgets per rolling hour and 24 h, and the
    shortest interval in s between two changes of the phase count."""

    min_on_s: float = 300.0
    min_off_s: float = 300.0
    max_starts_per_hour: int = 2
    max_starts_per_day: int = 6
    min_phase_switch_s: float = 600.0


@dataclass(frozen=True)
class Hold:
    """Why the guard refuses a transition: a code and a short human text."""

    code: Reason
    text: str

    def __str__(self) -> str:
        return self.text


class RelayGuard:
    """Tracks relay transitions and answers whether the next one is allowed.

    `starts_s` holds the start times (phase switches under load included) of the last 24 h,
    `switch_starts_s` those of them that were phase switches; `changed_s` the time of the
    last transition (start, stop or switch), None before the first; `switched_s` the time of
    the last change of the phase count, None before the first.
    """

    def __init__(self, limits: RelayLimits, starts_s: tuple[float, ...] = (),
                 on: bool = False, changed_s: float | None = None,
                 switched_s: float | None = None,
                 switch_starts_s: tuple[float, ...] = ()) -> None:
        self.limits = limits
        self.on = on
        self.changed_s = changed_s
        self.switched_s = switched_s
        self._starts_s: deque[float] = deque(sorted(starts_s))
        self._switch_starts_s: deque[float] = deque(sorted(switch_starts_s))

    def _prune(self, now_s: float) -> None:
        for times in (self._starts_s, self._switch_starts_s):
            while times and times[0] <= now_s - DAY_S:
                times.popleft()

    def starts_within(self, now_s: float, window_s: float) -> int:
        """Relay closes in the last `window_s` (at most 24 h), phase switches included."""
        self._prune(now_s)
        return sum(1 for t in self._starts_s if t > now_s - window_s)

    def sessions_within(self, now_s: float, window_s: float) -> int:
        """Starts from off in the last `window_s` (at most 24 h): charging sessions begun."""
        self._prune(now_s)
        switches = sum(1 for t in self._switch_starts_s if t > now_s - window_s)
        return self.starts_within(now_s, window_s) - switches

    def why_no_start(self, now_s: float) -> Hold | None:
        """None if a start is allowed now, else why not."""
        lim = self.limits
        if self.changed_s is not None and not self.on:
            left_s = self.changed_s + lim.min_off_s - now_s
            if left_s > 0:
                return Hold(Reason.BLOCKED_MIN_OFF, f"minimum off-time, {_duration(left_s)} left")
        return self.why_no_budget(now_s)

    def why_no_budget(self, now_s: float, keep_today: int = 0) -> Hold | None:
        """None if both start budgets have room for one more start (and `keep_today` more
        in the 24 h budget), else why not."""
        lim = self.limits
        n_hour = self.starts_within(now_s, HOUR_S)
        if n_hour >= lim.max_starts_per_hour:
            return Hold(Reason.BLOCKED_HOUR,
                        f"{n_hour} starts in the last hour, limit {lim.max_starts_per_hour}")
        n_day = self.starts_within(now_s, DAY_S)
        if n_day + keep_today >= lim.max_starts_per_day:
            kept = f", {keep_today} kept for later" if keep_today else ""
            return Hold(Reason.BLOCKED_DAY,
                        f"{n_day} starts in the last 24 h, limit {lim.max_starts_per_day}{kept}")
        return None

    def wait_to_start_s(self, now_s: float, keep_today: int = 0) -> float:
        """How long from `now_s` until a start would be allowed, off or (if on) after a stop
        now, with `keep_today` starts of the 24 h budget left unused, if no other start is
        made meanwhile (inf: never)."""
        lim = self.limits
        self._prune(now_s)
        stopped_s = now_s if self.on else self.changed_s
        wait_s = 0.0 if stopped_s is None else max(0.0, stopped_s + lim.min_off_s - now_s)
        for window_s, limit in ((HOUR_S, lim.max_starts_per_hour),
                                (DAY_S, lim.max_starts_per_day - keep_today)):
            recent = [t for t in self._starts_s if t > now_s - window_s]
            over = len(recent) - limit  # this many must leave the window first
            if over >= 0:
                wait_s = max(wait_s, recent[over] + window_s - now_s) if over < len(recent) \
                    else math.inf
        return wait_s

    def why_no_stop(self, now_s: float) -> Hold | None:
        """None if a stop is allowed now, else why not."""
        if self.on and self.changed_s is not None:
            left_s = self.changed_s + self.limits.min_on_s - now_s
            if left_s > 0:
                return Hold(Reason.HOLDING, f"minimum on-time, {_duration(left_s)} left")
        return None

    def why_no_switch(self, now_s: float) -> Hold | None:
        """None if the phase count may change now, else why not.

        Off: only the switch interval applies. Charging: the switch is a relay cycle, so it
        also needs what a stop needs and room for a start in both budgets."""
        lim = self.limits
        if self.switched_s is not None:
            left_s = self.switched_s + lim.min_phase_switch_s - now_s
            if left_s > 0:
                return Hold(Reason.PHASE_SWITCH,
                            f"minimum phase-switch interval, {_duration(left_s)} left")
        if not self.on:
            return None
        return self.why_no_stop(now_s) or self.why_no_budget(now_s)

    def start(self, now_s: float) -> None:
        reason = self.why_no_start(now_s)
        if self.on or reason is not None:
            raise RuntimeError(f"relay guard: start refused ({reason or 'already on'})")
        self.on = True
        self.changed_s = now_s
        self._starts_s.append(now_s)

    def adopt(self, now_s: float) -> None:
        """The relay was found closed while the guard had it open (a charger found charging):
        a start now, for the budgets and the minimum on-time. A fact, so never refused."""
        if not self.on:
            self.on = True
            self.changed_s = now_s
            self._starts_s.append(now_s)

    def opened(self, now_s: float) -> None:
        """The relay opened outside a controller step (the shutdown pause, a charger found not
        charging): the minimum off-time runs from now. A fact, so never refused."""
        if self.on:
            self.on = False
            self.changed_s = now_s

    @property
    def last_start_s(self) -> float | None:
        """The latest start (phase switches under load included), None without one."""
        return self._starts_s[-1] if self._starts_s else None

    def stop(self, now_s: float) -> None:
        reason = self.why_no_stop(now_s)
        if not self.on or reason is not None:
            raise RuntimeError(f"relay guard: stop refused ({reason or 'already off'})")
        self.on = False
        self.changed_s = now_s

    def trip(self, now_s: float) -> None:
        """A stop the site limit forces (main fuse, import limit): allowed inside the minimum
        on-time, since the fuse outranks the relay's wear, and recorded like any stop, so
        the minimum off-time and the budgets run on from it."""
        if not self.on:
            raise RuntimeError("relay guard: trip refused (already off)")
        self.on = False
        self.changed_s = now_s

    def switch(self, now_s: float) -> None:
        """Record a change of the phase count; under load, a relay cycle counted as a start."""
        reason = self.why_no_switch(now_s)
        if reason is not None:
            raise RuntimeError(f"relay guard: phase switch refused ({reason})")
        self.switched_s = now_s
        if self.on:
            self.changed_s = now_s
            self._starts_s.append(now_s)
            self._switch_starts_s.append(now_s)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state, so that a restart does not reset the budget."""
        return {"on": self.on, "changed_s": self.changed_s, "starts_s": list(self._starts_s),
                "switched_s": self.switched_s, "switch_starts_s": list(self._switch_starts_s)}

    @classmethod
    def from_state(cls, limits: RelayLimits, state: dict[str, Any]) -> RelayGuard:
        return cls(limits, tuple(float(t) for t in state.get("starts_s", [])),
                   bool(state.get("on", False)),
                   None if state.get("changed_s") is None else float(state["changed_s"]),
                   None if state.get("switched_s") is None else float(state["switched_s"]),
                   tuple(float(t) for t in state.get("switch_starts_s", [])))


_TIME_KEYS = ("changed_s", "switched_s")
_TIMES_KEYS = ("starts_s", "switch_starts_s")


def rebase(state: dict[str, Any], shift_s: float,
           latest_s: float | None = None) -> tuple[dict[str, Any], int]:
    """A `to_state()` with every time moved by `shift_s` (from one clock onto another), and
    how many times were later than `latest_s` and so count as `latest_s`.

    Loading a state file: a time in the future of the clock (a Pi that booted without a
    real-time clock) is taken as now, so it holds for its window's full length and no longer.
    """
    moved = 0

    def one(t: Any) -> float:
        nonlocal moved
        out = float(t) + shift_s
        if latest_s is not None and out > latest_s:
            moved += 1
            return latest_s
        return out

    out = dict(state)
    for key in _TIME_KEYS:
        if state.get(key) is not None:
            out[key] = one(state[key])
    for key in _TIMES_KEYS:
        if key in state:
            out[key] = [one(t) for t in state[key]]
    return out, moved


def _duration(seconds: float) -> str:
    if seconds >= 90:
        return f"{round(seconds / 60)} min"
    return f"{max(1, round(seconds))} s"
