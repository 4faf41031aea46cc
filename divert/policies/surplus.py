"""divert's own surplus policy: when to start, how long to bridge a dip, what current to set.

Three decisions, each a pure function of past observations:

* **Current.** The surplus in whole steps; the step above is taken when the surplus fills
  more than `round_up_above` of it, so that on average the car's draw follows the surplus
  rather than its floor. The import this costs is the preset's choice. A restart-only
  charger keeps its current for a whole session, so it is offered what the slow average
  also carries.
* **Start.** The smoothed surplus, looking ahead along its trend (a morning ramp), must reach
  the charger's minimum power plus a margin, and the raw surplus must have carried at least
  `start_frac` of the minimum without a break for `start_hold_s` × (1 − the recent sunny
  fraction): after a short dip in sunshine the car restarts at once, in broken cloud a spike
  has to prove it lasts.
* **Stop.** A dip is bridged at minimum current as long as it is worth it. While charging,
  each step's *advantage* (surplus captured minus `import_weight` × grid import, W, for what
  the car draws: a restart-only charger's held current, else the current set now) feeds a
  one-sided cumulative sum of the shortfall below `stop_drift_w`; the car stops when that
  deficit (Wh) exceeds a budget fixed when the dip began: the sun the recent past promises
  (slow average above `sun_floor_frac` of the minimum) times `bridge_s`, plus `bridge_wh`.
  Each start already used in the last 24 h adds `bridge_per_start_s` to the budget, and
  `margin_per_start_w` to the start margin, so that a spent start budget makes the policy
  hold on rather than stop for good. In the evening the slow average sinks below the minimum,
  the budget shrinks to `bridge_wh` and the car stops soon after the surplus stops paying.

Powers in W, currents in A per phase, times in s, energies in Wh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from divert.core.capabilities import ControlKind
from divert.core.policy import Desire, Observation, finite
from divert.core.reasons import Reason


@dataclass(frozen=True)
class SurplusParams:
    """The knobs of `SurplusPolicy`; the presets in policies/ document each one."""

    import_weight: float = 3.0  # Wh of captured sun that one Wh of import is worth giving up
    round_up_above: float = 1.0  # take the next current step above this fill (1 = floor)
    level_tau_s: float = 60.0  # smoothing of the surplus for starting
    slow_tau_s: float = 900.0  # slow average: the trend, and the sun a dip interrupts
    trend_gain: float = 0.0  # look-ahead along the trend when starting (× level − slow)
    start_margin_w: float = 0.0  # start at minimum power plus this
    margin_per_start_w: float = 0.0  # plus this for every start in the last 24 h
    start_frac: float = 1.0  # the surplus must hold at least this fraction of the minimum …
    start_hold_s: float = 180.0  # … this long without a break, less when it was sunny
    sunny_tau_s: float = 600.0  # window of the sunny fraction (surplus carried the minimum)
    stop_drift_w: float = 0.0  # advantage below this counts against a dip's budget
    bridge_s: float = 600.0  # budget: this many seconds of the interrupted sun …
    bridge_per_start_s: float = 0.0  # … plus this per start in the last 24 h …
    bridge_wh: float = 0.0  # … plus this
    sun_floor_frac: float = 1.0  # the sun counted for the budget: slow average above this × min
    reserve_w: float = 0.0  # export held back from the car

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value}")
        if not 0 < self.round_up_above <= 1:
            raise ValueError(f"round_up_above must be in (0, 1], got {self.round_up_above}")
        for name in ("import_weight", "level_tau_s", "slow_tau_s", "trend_gain", "start_frac",
                     "start_hold_s", "sunny_tau_s", "bridge_s", "bridge_per_start_s",
                     "bridge_wh", "sun_floor_frac", "margin_per_start_w"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.slow_tau_s < self.level_tau_s:
            raise ValueError("slow_tau_s must be >= level_tau_s")


def _ema(prev: float, x: float, dt_s: float, tau_s: float) -> float:
    """Exponential moving average over time (tau 0: no smoothing)."""
    if tau_s <= 0:
        return x
    return prev + (1.0 - math.exp(-dt_s / tau_s)) * (x - prev)


class SurplusPolicy:
    """Stateful but causal: every decision depends only on the observations so far."""

    def __init__(self, params: SurplusParams) -> None:
        self.params = params
        self._level_w: float | None = None  # smoothed surplus, W
        self._slow_w = 0.0  # slowly smoothed surplus, W
        self._sunny = 0.0  # recent fraction of time the surplus carried the minimum
        self._held_s = 0.0  # how long the surplus has held start_frac of the minimum
        self._deficit_wh = 0.0  # the current dip's cost so far
        self._budget_wh = 0.0  # what the current dip may cost
        self._was_charging = False

    def to_state(self) -> dict[str, Any]:
        return {"level_w": self._level_w, "slow_w": self._slow_w, "sunny": self._sunny,
                "held_s": self._held_s, "deficit_wh": self._deficit_wh,
                "budget_wh": self._budget_wh, "was_charging": self._was_charging}

    def restore(self, state: dict[str, Any]) -> None:
        level = state["level_w"]
        was_charging = state["was_charging"]
        if not isinstance(was_charging, bool):
            raise TypeError(f"was_charging: expected true or false, got {was_charging!r}")
        self._level_w = None if level is None else finite(level)
        self._slow_w = finite(state["slow_w"])
        self._sunny = min(1.0, max(0.0, finite(state["sunny"])))
        self._held_s = max(0.0, finite(state["held_s"]))
        self._deficit_wh = max(0.0, finite(state["deficit_wh"]))
        self._budget_wh = finite(state["budget_wh"])
        self._was_charging = was_charging

    def _advantage_w(self, surplus_w: float, draw_w: float) -> float:
        """Charging minus not charging, per step: captured surplus − weight × import, for
        the car drawing `draw_w`."""
        available_w = max(0.0, surplus_w)
        return (min(draw_w, available_w)
                - self.params.import_weight * max(0.0, draw_w - available_w))

    def _current_a(self, surplus_w: float, obs: Observation) -> float:
        """The current for `surplus_w`, in whole steps, rounded up above `round_up_above`.

        A restart-only charger keeps its current for the whole session: it gets the current
        that the slow average also carries."""
        caps = obs.caps
        if caps.control is ControlKind.RESTART:
            surplus_w = min(surplus_w, self._slow_w)
        steps = max(0.0, surplus_w) / (obs.voltage_v * obs.phases * caps.step_a)
        whole = math.floor(steps)
        if steps - whole > self.params.round_up_above:
            whole += 1
        return caps.clamp(round(whole * caps.step_a, 6))

    def _observe(self, obs: Observation, surplus_w: float, min_w: float) -> None:
        """Update the averages, the sunny fraction and the hold time; a start opens a new
        account of dips."""
        p, dt_s = self.params, obs.dt_s
        positive_w = max(0.0, surplus_w)
        if self._level_w is None:
            self._level_w = self._slow_w = positive_w
        else:
            self._level_w = _ema(self._level_w, positive_w, dt_s, p.level_tau_s)
            self._slow_w = _ema(self._slow_w, positive_w, dt_s, p.slow_tau_s)
        self._sunny = _ema(self._sunny, float(surplus_w >= min_w), dt_s, p.sunny_tau_s)
        self._held_s = self._held_s + dt_s if surplus_w >= p.start_frac * min_w else 0.0
        if obs.charging and not self._was_charging:
            self._deficit_wh = 0.0
        self._was_charging = obs.charging

    def _account(self, obs: Observation, surplus_w: float, min_w: float,
                 draw_w: float) -> None:
        """The dip's cost so far, against the budget fixed when it began."""
        p = self.params
        if self._deficit_wh <= 0.0:  # not in a dip: set the budget for the next one
            sun_w = max(0.0, self._slow_w - p.sun_floor_frac * min_w)
            bridge_s = p.bridge_s + p.bridge_per_start_s * obs.sessions_24h
            self._budget_wh = p.bridge_wh + sun_w * bridge_s / 3600
        shortfall_w = p.stop_drift_w - self._advantage_w(surplus_w, draw_w)
        self._deficit_wh = max(0.0, self._deficit_wh + shortfall_w * obs.dt_s / 3600)

    def decide(self, obs: Observation) -> Desire:
        p = self.params
        min_w = obs.caps.min_power_at(obs.phases)
        surplus_w = obs.surplus_w - p.reserve_w
        self._observe(obs, surplus_w, min_w)
        current_a = self._current_a(surplus_w, obs)
        # What the car will draw this step: a restart-only charger keeps its current.
        keeps = obs.charging and obs.caps.control is ControlKind.RESTART
        draw_w = (obs.setpoint_a if keeps else current_a) * obs.voltage_v * obs.phases
        self._account(obs, surplus_w, min_w, draw_w)
        level_w = self._level_w if self._level_w is not None else 0.0
        min_a = f"{obs.caps.min_current_a:g} A"
        if not obs.charging:
            need_w = min_w + p.start_margin_w + p.margin_per_start_w * obs.sessions_24h
            ahead_w = level_w + p.trend_gain * max(0.0, level_w - self._slow_w)
            hold_s = p.start_hold_s * (1.0 - self._sunny)
            if ahead_w < need_w:
                return Desire(False, current_a, f"waiting: surplus {ahead_w:.0f} W < "
                              f"{need_w:.0f} W needed for {min_a}", Reason.WAITING)
            if self._held_s < hold_s:
                return Desire(False, current_a, f"waiting: surplus {ahead_w:.0f} W has held "
                              f"{self._held_s:.0f} of {hold_s:.0f} s", Reason.WAITING)
            return Desire(True, current_a, f"starting: surplus {ahead_w:.0f} W", Reason.STARTING)
        if self._deficit_wh > self._budget_wh:
            return Desire(False, current_a, f"stopping: dip cost {self._deficit_wh:.0f} Wh > "
                          f"{self._budget_wh:.0f} Wh the sun promised", Reason.STOPPING)
        if self._deficit_wh > 0:
            return Desire(True, current_a, f"bridging: dip cost {self._deficit_wh:.0f} of "
                          f"{self._budget_wh:.0f} Wh, {current_a:g} A from "
                          f"{obs.surplus_w:.0f} W", Reason.BRIDGING)
        return Desire(True, current_a, f"charging: {current_a:g} A from {obs.surplus_w:.0f} W "
                      "surplus", Reason.CHARGING)
