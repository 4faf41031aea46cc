"""The perfect-foresight bound: what a controller that knew the whole trace could capture.

Per step the oracle chooses off, or on at the surplus clamped to the charger's range (for
whole-amp chargers: the floor or ceiling of the surplus in steps, whichever pays more). A
two-state dynamic program maximises captured − λ·imported − μ·starts (energies in kWh).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from divert.sim.score import WS_PER_KWH, Score, score

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OraclePlant:
    """Charger envelope for the oracle: currents in A, voltage in V; step_a 0 = continuous."""

    min_current_a: float = 6.0
    max_current_a: float = 32.0
    voltage_v: float = 240.0
    step_a: float = 1.0


def _on_options(surplus_w: FloatArray, plant: OraclePlant) -> list[FloatArray]:
    lo_w = plant.min_current_a * plant.voltage_v
    hi_w = plant.max_current_a * plant.voltage_v
    if plant.step_a <= 0:
        return [np.clip(surplus_w, lo_w, hi_w)]
    step_w = plant.step_a * plant.voltage_v
    amps = surplus_w / step_w
    return [np.clip(np.floor(amps) * step_w, lo_w, hi_w),
            np.clip(np.ceil(amps) * step_w, lo_w, hi_w)]


def plan(surplus_w: npt.ArrayLike, dt_s: npt.ArrayLike, plant: OraclePlant,
         import_weight: float, start_cost_kwh: float) -> FloatArray:
    """EV power per step (W) of the best plan; 0 where the plan is off."""
    s = np.asarray(surplus_w, dtype=np.float64)
    h = np.asarray(dt_s, dtype=np.float64) / WS_PER_KWH
    options = _on_options(s, plant)
    values = [(np.minimum(e, s) - import_weight * np.maximum(0.0, e - s)) * h for e in options]
    best = np.argmax(np.stack(values), axis=0)
    on_power = np.choose(best, options)
    on_value = np.choose(best, values)
    n = len(s)
    # came_on[i]: best 'on' at i entered from 'off' at i-1; went_off[i]: 'off' at i from 'on'.
    came_on = np.zeros(n, dtype=bool)
    went_off = np.zeros(n, dtype=bool)
    v_off, v_on = 0.0, -np.inf
    for i in range(n):
        from_off = v_off - start_cost_kwh
        came_on[i] = from_off > v_on
        new_on = max(v_on, from_off) + float(on_value[i])
        went_off[i] = v_on > v_off
        v_off, v_on = max(v_off, v_on), new_on
    on = np.zeros(n, dtype=bool)
    state_on = v_on > v_off
    for i in range(n - 1, -1, -1):
        on[i] = state_on
        state_on = not came_on[i] if state_on else bool(went_off[i])
    return np.where(on, on_power, 0.0)


def bound(surplus_w: npt.ArrayLike, dt_s: npt.ArrayLike, plant: OraclePlant,
          import_weight: float, start_cost_kwh: float = 0.2) -> Score:
    """The oracle's score for one trace at the given weights."""
    ev_w = plan(surplus_w, dt_s, plant, import_weight, start_cost_kwh)
    on = ev_w > 0
    return score(surplus_w, ev_w, dt_s, on, ev_w / plant.voltage_v)


def bound_at_share(surplus_w: npt.ArrayLike, dt_s: npt.ArrayLike, plant: OraclePlant,
                   grid_share_pct: float, start_cost_kwh: float = 0.2) -> Score:
    """The oracle's best capture with a grid share no higher than `grid_share_pct`.

    Bisects the import weight λ (log scale, 0.5 … 1000)."""
    lo, hi = np.log(0.5), np.log(1000.0)
    best = bound(surplus_w, dt_s, plant, 1000.0, start_cost_kwh)
    if best.grid_share_pct > grid_share_pct:
        return best
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        trial = bound(surplus_w, dt_s, plant, float(np.exp(mid)), start_cost_kwh)
        if trial.grid_share_pct <= grid_share_pct:
            best, hi = trial, mid
        else:
            lo = mid
    return best
