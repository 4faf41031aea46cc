"""divert's own surplus policy: smoothed start/stop with bridging, current that tracks surplus.

Powers in W, currents in A per phase, times in s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from divert.policy import Desire, Observation


@dataclass(frozen=True)
class SurplusParams:
    attack_s: float = 60.0  # smoothing time constant while surplus rises
    decay_s: float = 300.0  # smoothing time constant while surplus falls
    start_margin_w: float = 200.0  # smoothed surplus must exceed the minimum power by this
    max_import_w: float = 300.0  # bridge dips: stop only once the smoothed deficit exceeds this
    reserve_w: float = 0.0  # export held back while tracking
    rounding: Literal["floor", "nearest"] = "floor"  # how surplus maps to a settable current

    def __post_init__(self) -> None:
        if min(self.attack_s, self.decay_s, self.max_import_w) < 0:
            raise ValueError("attack_s, decay_s and max_import_w must be >= 0")
        if self.rounding not in ("floor", "nearest"):
            raise ValueError("rounding must be 'floor' or 'nearest'")


class SurplusPolicy:
    def __init__(self, params: SurplusParams) -> None:
        self.params = params
        self.smoothed_w: float | None = None

    def _smooth(self, surplus_w: float, dt_s: float) -> float:
        if self.smoothed_w is None:
            self.smoothed_w = surplus_w
        elif dt_s > 0:
            rising = surplus_w > self.smoothed_w
            tau_s = self.params.attack_s if rising else self.params.decay_s
            k = 1.0 - math.exp(-dt_s / tau_s) if tau_s > 0 else 1.0
            self.smoothed_w += k * (surplus_w - self.smoothed_w)
        return self.smoothed_w

    def decide(self, obs: Observation) -> Desire:
        p = self.params
        smoothed_w = self._smooth(obs.surplus_w, obs.dt_s)
        volts = obs.voltage_v * obs.phases
        raw_a = (obs.surplus_w - p.reserve_w) / volts
        steps = raw_a / obs.caps.step_a
        steps = math.floor(steps + 1e-9) if p.rounding == "floor" else math.floor(steps + 0.5)
        current_a = obs.caps.clamp(steps * obs.caps.step_a)
        min_w = obs.caps.min_power_at(obs.phases)
        if not obs.charging:
            need_w = min_w + p.start_margin_w
            if smoothed_w >= need_w:
                return Desire(True, current_a, f"starting: surplus {smoothed_w:.0f} W")
            return Desire(False, current_a, f"waiting: surplus {smoothed_w:.0f} W < "
                          f"{need_w:.0f} W needed for {obs.caps.min_current_a:g} A")
        if smoothed_w < min_w - p.max_import_w:
            return Desire(False, current_a, f"stopping: surplus {smoothed_w:.0f} W cannot "
                          f"carry {min_w:.0f} W")
        return Desire(True, current_a, f"charging: {current_a:g} A from {obs.surplus_w:.0f} W "
                      "surplus")
