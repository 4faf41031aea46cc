"""The predictive policy: plan the next hour on a forecast, act on the first step.

Every minute the forecaster (`divert.policies.forecast`) says what the surplus will be in
sunny and in cloudy spells over the next `horizon_s`, and how likely the current spell is
to go on at its age. The planner solves that small Markov model by dynamic programming,
the perfect-foresight bound's objective (`divert.sim.oracle`) in expectation: charging
earns the surplus it captures less `import_weight` × the grid import it causes, and a start
costs `start_cost_wh`, more as the day's starts run out. The relay guard's minimum on- and
off-times are part of the model: a start commits to the minimum on-time, a stop to the
minimum off-time. The policy then does what the plan does now: start, wait, go on
(bridging a dip at minimum current when the sun is expected back soon enough) or stop.

The current follows the surplus now in whole steps, one step up when the surplus fills
more than import_weight / (1 + import_weight) of it: the same trade as the plan's.

Powers in W, currents in A per phase, times in s, energies in Wh.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from divert.core.capabilities import ControlKind
from divert.core.guard import RelayLimits
from divert.core.policy import Desire, Observation
from divert.core.reasons import Reason
from divert.policies.forecast import (
    BUCKETS,
    MINUTE_S,
    Forecaster,
    Outlook,
    bucket,
)

BLOCKS = 15  # the horizon is planned in this many blocks
DIM_FRACTION = 0.25  # below this fraction of the charger's minimum the weather is not counted
AGE_OF_BUCKET_MIN = (1, 2, 6, 15)  # a representative spell age per bucket
NO_LIMITS = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=60,
                        max_starts_per_day=1000)


@dataclass(frozen=True)
class PredictiveParams:
    """The knobs of `PredictivePolicy`; policies/predictive.toml documents each one."""

    import_weight: float = 3.0  # Wh of captured sun that one Wh of import is worth giving up
    start_cost_wh: float = 200.0  # what a start costs the plan (wear), with all starts left
    horizon_s: float = 2700.0  # how far ahead the plan looks
    memory_s: float = 5400.0  # how much of today the weather statistics are taken from

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, got {value}")
        if not BLOCKS * MINUTE_S <= self.horizon_s <= 4 * 3600:
            raise ValueError(f"horizon_s must be within {BLOCKS * MINUTE_S:g} … 14400 s, "
                             f"got {self.horizon_s:g}")
        if self.memory_s < 1200:
            raise ValueError(f"memory_s must be >= 1200 s, got {self.memory_s:g}")


@dataclass(frozen=True)
class PlanValues:
    """The plan's expected values (Wh over the horizon) of what can be done now."""

    start: float  # start now (committing to the minimum on-time)
    wait: float  # stay off now (free to start later)
    go_on: float  # keep charging now (free to stop later)
    stop: float  # stop now (committing to the minimum off-time)


class Weather:
    """The outlook as a Markov chain over (sunny or cloudy, spell age) per block."""

    def __init__(self, outlook: Outlook, block_min: int) -> None:
        self.outlook = outlook
        self.block_min = block_min
        self.turned = bucket(max(1, block_min // 2))  # a new spell's bucket after a block
        # state i = w * BUCKETS + b; per block a spell goes on (one bucket older) or turns
        self.same = [w * BUCKETS + bucket(AGE_OF_BUCKET_MIN[b] + block_min)
                     for w in (0, 1) for b in range(BUCKETS)]
        self.stay_p = [self.goes_on(w, AGE_OF_BUCKET_MIN[b]) for w in (0, 1)
                       for b in range(BUCKETS)]
        self.turn = [(1 - i // BUCKETS) * BUCKETS + self.turned for i in range(2 * BUCKETS)]

    def goes_on(self, w: int, age_min: int) -> float:
        """Chance that a spell of weather w, `age_min` minutes old, lasts one more block."""
        p = 1.0
        for k in range(self.block_min):
            p *= self.outlook.goes_on[w][bucket(age_min + k)]
        return p

    def expect(self, v: list[float]) -> list[float]:
        """E[v at the next block] from each state."""
        same, turn, stay = self.same, self.turn, self.stay_p
        return [stay[i] * v[same[i]] + (1.0 - stay[i]) * v[turn[i]] for i in range(len(v))]

    def expect_now(self, v: list[float]) -> float:
        """E[v at the next block] from the current spell (its exact age)."""
        o = self.outlook
        w = int(o.sunny)
        stay = self.goes_on(w, o.age_min)
        same = w * BUCKETS + bucket(o.age_min + self.block_min)
        turn = (1 - w) * BUCKETS + self.turned
        return stay * v[same] + (1.0 - stay) * v[turn]

    def spell_min(self) -> float:
        """The expected rest of the current spell within the horizon, minutes."""
        o = self.outlook
        w, age, alive, total = int(o.sunny), o.age_min, 1.0, 0.0
        for _ in o.sunny_w:
            alive *= self.goes_on(w, age)
            total += alive * self.block_min
            age += self.block_min
        return total

    def expected_w(self, turned: bool = False) -> list[float]:
        """The surplus expected in each block from the current spell (or, `turned`, if it
        ends right away)."""
        o = self.outlook
        w = int(o.sunny) ^ turned
        dist = [0.0] * (2 * BUCKETS)
        dist[w * BUCKETS + (0 if turned else bucket(o.age_min))] = 1.0
        out = []
        for sunny_w, cloudy_w in zip(o.sunny_w, o.cloudy_w, strict=True):
            nxt = [0.0] * len(dist)
            for i, p in enumerate(dist):
                if p:
                    nxt[self.same[i]] += p * self.stay_p[i]
                    nxt[self.turn[i]] += p * (1.0 - self.stay_p[i])
            dist = nxt
            sunny = sum(dist[BUCKETS:])
            out.append(sunny * sunny_w + (1.0 - sunny) * cloudy_w)
        return out


class Planner:
    """The dynamic program over (weather state, charger state): on, off, on for the
    minimum on-time after a start, off for the minimum off-time after a stop."""

    def __init__(self, weather: Weather, value_w: Any, start_cost_wh: float, lock_on: int,
                 lock_off: int) -> None:
        self.weather = weather
        self.lock_on = max(1, lock_on)
        self.lock_off = max(1, lock_off)
        h = weather.block_min / 60.0
        o = weather.outlook
        self.rewards = [[value_w(c) * h] * BUCKETS + [value_w(s) * h] * BUCKETS
                        for c, s in zip(o.cloudy_w, o.sunny_w, strict=True)]
        self.values = self._solve(start_cost_wh)

    def _solve(self, mu: float) -> tuple[list[float], ...]:
        """Values at the first block, per weather state: (on, off, on just started, off
        just stopped)."""
        n = 2 * BUCKETS
        zero = [0.0] * n
        on, off = zero, zero
        on_lock = [zero] * self.lock_on  # on_lock[j]: on, j more blocks locked on
        off_lock = [zero] * self.lock_off
        ex = self.weather.expect
        for r in reversed(self.rewards):
            e_on, e_off = ex(on), ex(off)
            e_onl = [e_on] + [ex(v) for v in on_lock[1:]]
            e_offl = [e_off] + [ex(v) for v in off_lock[1:]]
            stopped, started = e_offl[-1], e_onl[-1]
            new_on = [max(r[i] + e_on[i], stopped[i]) for i in range(n)]
            new_off = [max(e_off[i], r[i] + started[i] - mu) for i in range(n)]
            on_lock = [zero] + [[r[i] + e_onl[j - 1][i] for i in range(n)]
                                for j in range(1, self.lock_on)]
            off_lock = [zero, *e_offl[:-1]]
            on, off = new_on, new_off
        return on, off, on_lock[-1] if self.lock_on > 1 else on, \
            off_lock[-1] if self.lock_off > 1 else off

    def now(self, value_now_wh: float, start_cost_wh: float) -> PlanValues:
        """The values of the four choices now, from the current spell."""
        on, off, started, stopped = self.values
        ex = self.weather.expect_now
        return PlanValues(value_now_wh - start_cost_wh + ex(started), ex(off),
                          value_now_wh + ex(on), ex(stopped))


class PredictivePolicy:
    """Causal: every decision depends only on the observations so far (and a forecast feed
    when one is given). Its learning survives restarts through `to_state`/`restore`."""

    def __init__(self, params: PredictiveParams,
                 location: tuple[float, float] | None = None) -> None:
        self.params = params
        self.forecaster = Forecaster(round(params.memory_s / MINUTE_S), location)
        self._weather: Weather | None = None
        self._planner: Planner | None = None
        self._planned_for: tuple[Any, ...] | None = None

    def set_forecast(self, points: Iterable[tuple[float, float]], now_s: float) -> None:
        """A forecast feed's points: (unix time s, W of surplus expected)."""
        self.forecaster.set_feed(points, now_s)
        self._weather = None

    def to_state(self) -> dict[str, Any]:
        return {"forecast": self.forecaster.to_state()}

    def restore(self, state: dict[str, Any]) -> None:
        forecast = state.get("forecast")
        if isinstance(forecast, dict):
            self.forecaster.restore(forecast)

    @staticmethod
    def _value_w(obs: Observation, weight: float) -> Any:
        """value_w(surplus): what charging on that surplus is worth, W, at the import
        weight `weight`."""
        caps = obs.caps
        volts = obs.voltage_v * obs.phases
        step_w = caps.step_a * volts
        lo_w, hi_w = caps.min_current_a * volts, caps.max_current_a * volts

        def value_w(surplus_w: float) -> float:
            s = max(0.0, surplus_w)
            if s <= lo_w:
                return s - weight * (lo_w - s)
            if s >= hi_w:
                return hi_w
            floor_w = max(lo_w, math.floor(s / step_w) * step_w)
            return max(floor_w, s - weight * (floor_w + step_w - s))
        return value_w

    @staticmethod
    def _current_a(surplus_w: float, obs: Observation, weight: float) -> float:
        """The surplus in whole steps, the step above taken when the surplus fills more
        than weight / (1 + weight) of it."""
        caps = obs.caps
        steps = max(0.0, surplus_w) / (obs.voltage_v * obs.phases * caps.step_a)
        whole = math.floor(steps)
        if steps - whole > weight / (1.0 + weight):
            whole += 1
        return caps.clamp(round(whole * caps.step_a, 6))

    def _start_cost_wh(self, obs: Observation, limits: RelayLimits) -> float:
        """A start costs more as the day's starts run out: × (1 + used / left)."""
        left = limits.max_starts_per_day - obs.sessions_24h
        if left <= 0:
            return math.inf
        return self.params.start_cost_wh * (1.0 + obs.sessions_24h / left)

    def _weight(self, obs: Observation, weather: Weather) -> float:
        """The import weight now: 0 while a departure plan needs more than the sun is
        expected to give before its deadline (its grid energy is bought anyway, so every
        bit of sun charged now saves that much later), else the preset's. Without a shape
        of the day (envelope, location or feed) the sun beyond the horizon is not known:
        then only a deadline within the horizon counts."""
        if obs.plan_wh is None or obs.plan_by_s is None or obs.plan_wh <= 0:
            return self.params.import_weight
        left_h = max(0.0, obs.plan_by_s - obs.time_s) / 3600.0
        profile = weather.expected_w()
        block_h = weather.block_min / 60.0
        horizon_h = len(profile) * block_h
        if weather.outlook.source == "trend" and left_h > horizon_h:
            return self.params.import_weight
        sun_wh = sum(profile[:math.ceil(left_h / block_h)]) * block_h \
            + profile[-1] * max(0.0, left_h - horizon_h)
        return 0.0 if obs.plan_wh > sun_wh else self.params.import_weight

    def decide(self, obs: Observation) -> Desire:
        p = self.params
        limits = obs.limits or NO_LIMITS
        now_s = obs.time_s if obs.wall_s is None else obs.wall_s
        self.forecaster.floor_w = DIM_FRACTION * obs.caps.min_power_at(obs.phases)
        minute = self.forecaster.observe(now_s, obs.dt_s, obs.surplus_w)
        block_min = max(1, round(p.horizon_s / MINUTE_S / BLOCKS))
        if minute or self._weather is None:
            self._weather = Weather(self.forecaster.outlook(now_s, obs.surplus_w, BLOCKS,
                                                            block_min), block_min)
        weather = self._weather
        weight = self._weight(obs, weather)
        current_a = self._current_a(obs.surplus_w, obs, weight)
        # What charging is worth for the next minute: on the last minute's mean surplus (one
        # reading of a fast meter is not a minute), at what a restart-only charger holds.
        recent_w = self.forecaster.recent_w(obs.surplus_w)
        if obs.charging and obs.caps.control is ControlKind.RESTART:
            draw_w = obs.setpoint_a * obs.voltage_v * obs.phases
            now_w = min(draw_w, recent_w) - weight * max(0.0, draw_w - recent_w)
        else:
            draw_w = current_a * obs.voltage_v * obs.phases
            now_w = self._value_w(obs, weight)(recent_w)
        value_now_wh = now_w * MINUTE_S / 3600.0
        mu = self._start_cost_wh(obs, limits)
        key = (weather, weight, mu, obs.phases, obs.voltage_v, limits)
        if self._planner is None or key != self._planned_for:
            block_s = block_min * MINUTE_S
            self._planner = Planner(weather, self._value_w(obs, weight), mu,
                                    math.ceil(limits.min_on_s / block_s),
                                    math.ceil(limits.min_off_s / block_s))
            self._planned_for = key
        values = self._planner.now(value_now_wh, mu)
        return self._desire(obs, values, current_a, draw_w, weight)

    def _desire(self, obs: Observation, values: PlanValues, current_a: float,
                draw_w: float, weight: float) -> Desire:
        """What the plan's values say, with the numbers people want to see."""
        weather = self._weather
        assert weather is not None
        kw = obs.surplus_w / 1000
        plan = " for the departure plan" if weight < self.params.import_weight else ""
        if not obs.charging:
            if math.isinf(values.start):
                return Desire(False, current_a, f"waiting: {kw:.1f} kW now, no start left "
                              "today", Reason.WAITING)
            if values.start > values.wait:
                lock = self._planner.lock_on if self._planner else 1
                ahead_kw = sum(weather.expected_w()[:lock]) / lock / 1000
                low_kw = sum(weather.expected_w(turned=True)[:lock]) / lock / 1000
                return Desire(True, current_a, f"starting{plan}: {ahead_kw:.1f} kW expected "
                              f"for {weather.spell_min():.0f} min (low case {low_kw:.1f} kW)",
                              Reason.STARTING)
            return Desire(False, current_a, f"waiting: {kw:.1f} kW now, a start pays "
                          f"{values.start - values.wait:+.0f} Wh against waiting",
                          Reason.WAITING)
        if values.go_on < values.stop:
            return Desire(False, current_a, f"stopping: {kw:.1f} kW, "
                          f"{weather.outlook.source} says the sun will not pay back a dip "
                          f"({values.stop - values.go_on:.0f} Wh better off)", Reason.STOPPING)
        if draw_w > max(0.0, obs.surplus_w) + 1e-6 and current_a <= obs.caps.min_current_a:
            return Desire(True, current_a, f"bridging{plan}: {kw:.1f} kW now, sun expected "
                          f"back ({values.go_on - values.stop:.0f} Wh better than stopping)",
                          Reason.BRIDGING)
        return Desire(True, current_a, f"charging{plan}: {current_a:g} A from "
                      f"{obs.surplus_w:.0f} W, {weather.spell_min():.0f} min more expected",
                      Reason.CHARGING)
