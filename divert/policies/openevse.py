"""OpenEVSE's published solar-divert algorithm, as a baseline and for users who want it.

Follows the firmware's behaviour as described in the project's reference notes: available
current from the feed, an attack/decay smoothed copy for start and stop, the pilot following
the raw value, and a minimum charge time. Currents in A, powers in W, times in s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from divert.core.policy import Desire, Observation, finite
from divert.core.reasons import Reason

MIN_TAU_S = 10.0


@dataclass(frozen=True)
class OpenEVSEParams:
    """The firmware's `divert_*` settings; defaults are its `default` profile."""

    pv_ratio: float = 1.1  # divert_PV_ratio
    attack_s: float = 20.0  # divert_attack_smoothing_time
    decay_s: float = 600.0  # divert_decay_smoothing_time
    min_charge_s: float = 600.0  # divert_min_charge_time

    def __post_init__(self) -> None:
        if self.pv_ratio <= 0 or self.attack_s < 0 or self.decay_s < 0 or self.min_charge_s < 0:
            raise ValueError("pv_ratio must be > 0 and the times >= 0")


class OpenEVSEPolicy:
    def __init__(self, params: OpenEVSEParams) -> None:
        self.params = params
        self.smoothed_a = 0.0
        self.pilot_a: float | None = None

    def to_state(self) -> dict[str, Any]:
        return {"smoothed_a": self.smoothed_a, "pilot_a": self.pilot_a}

    def restore(self, state: dict[str, Any]) -> None:
        pilot = state["pilot_a"]
        self.smoothed_a = max(0.0, finite(state["smoothed_a"]))
        self.pilot_a = None if pilot is None else finite(pilot)

    def available_a(self, obs: Observation) -> float:
        """The firmware's `Iavailable`: grid mode keeps a reserve of 1000·(ratio − 1) W."""
        volts = obs.voltage_v * obs.phases
        if obs.from_grid_meter:
            reserve_a = 1000.0 * max(0.0, self.params.pv_ratio - 1.0) / volts
            avail = obs.surplus_w / volts - reserve_a if obs.surplus_w > 0 else 0.0
        else:
            avail = obs.surplus_w / volts
        return max(0.0, avail)

    def decide(self, obs: Observation) -> Desire:
        p = self.params
        avail = self.available_a(obs)
        if obs.dt_s > 0:
            tau_s = max(MIN_TAU_S, p.attack_s if avail > self.smoothed_a else p.decay_s)
            k = 1.0 - math.exp(-obs.dt_s / tau_s)
            self.smoothed_a = k * avail + (1.0 - k) * self.smoothed_a
        rate = math.floor(avail)
        if avail - rate > min(1.0, p.pv_ratio):
            rate += 1
        trigger_a = obs.caps.min_current_a * min(1.0, p.pv_ratio)
        smooth_txt = f"smoothed {self.smoothed_a:.1f} A"
        if self.smoothed_a >= trigger_a + 0.5:
            self.pilot_a = obs.caps.clamp(rate)
            return Desire(True, self.pilot_a, f"charging: {smooth_txt}, pilot {self.pilot_a:g} A",
                          Reason.CHARGING)
        pilot_a = self.pilot_a if self.pilot_a is not None else obs.caps.min_current_a
        since_s = obs.since_change_s if obs.since_change_s is not None else math.inf
        if self.smoothed_a <= trigger_a and obs.charging and since_s >= p.min_charge_s:
            return Desire(False, pilot_a, f"stopping: {smooth_txt} <= trigger {trigger_a:.1f} A",
                          Reason.STOPPING)
        if obs.charging:
            return Desire(True, pilot_a, f"charging: {smooth_txt}, pilot held at {pilot_a:g} A",
                          Reason.CHARGING)
        return Desire(False, pilot_a,
                      f"waiting: {smooth_txt} < {trigger_a + 0.5:.1f} A needed to start",
                      Reason.WAITING)
