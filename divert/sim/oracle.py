"""The perfect-foresight bound: what a controller that knew the whole trace could capture.

Per step the oracle chooses off, or on at the surplus clamped to the charger's range (for
whole-amp chargers: the floor or ceiling of the surplus in steps, whichever pays more). A
two-state dynamic program maximises captured − λ·imported − μ·starts (energies in kWh).

With a departure plan (`plan_bound`) it must also deliver an energy before a deadline: the
program then also tracks the energy delivered so far and may charge at full power from the
grid (as the controller's plan does); plans short of the target at the deadline are ruled
out, so the best plan may overshoot it by up to one row at full power. The energy is counted in
whole quanta (one current step for the shortest row), exact for whole-amp chargers on
rows of whole seconds; otherwise in 1/`MAX_PLAN_UNITS` of the target, rounded.
"""

from __future__ import annotations

import math
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



MAX_PLAN_UNITS = 20_000  # the energy towards a target is tracked in at most this many units


@dataclass(frozen=True)
class PlanBound:
    """The best plan that delivers `need_kwh` before the deadline step."""

    score: Score
    delivered_kwh: float  # before the deadline
    met: bool  # False: full power from the start cannot deliver the target in time
    ev_w: FloatArray  # the plan: EV power per step, W


def _energy_quantum_kwh(dt_s: FloatArray, plant: OraclePlant) -> float:
    """The energy of one current step over the greatest common divisor of the row lengths
    (whole seconds), kWh; 0 when there is none (continuous current, fractional rows)."""
    rows = dt_s[dt_s > 0]
    if plant.step_a <= 0 or not len(rows) or not np.allclose(rows, np.rint(rows)):
        return 0.0
    common_s = int(np.gcd.reduce(np.rint(rows).astype(np.int64)))
    return plant.step_a * plant.voltage_v * common_s / WS_PER_KWH


def plan_bound(surplus_w: npt.ArrayLike, dt_s: npt.ArrayLike, plant: OraclePlant,
               import_weight: float, start_cost_kwh: float, deadline: int,
               need_kwh: float) -> PlanBound:
    """The oracle with a departure plan: at least `need_kwh` delivered in the steps before
    `deadline` (an index into the trace), the objective as `plan`'s over the whole trace."""
    s = np.asarray(surplus_w, dtype=np.float64)
    h = np.asarray(dt_s, dtype=np.float64) / WS_PER_KWH
    n, deadline = len(s), max(0, min(deadline, len(s)))
    options = [*_on_options(s, plant), np.full(n, plant.max_current_a * plant.voltage_v)]
    values = np.stack([(np.minimum(e, s) - import_weight * np.maximum(0.0, e - s)) * h
                       for e in options])
    unit_kwh = _energy_quantum_kwh(np.asarray(dt_s, dtype=np.float64), plant)
    if unit_kwh <= 0 or unit_kwh * MAX_PLAN_UNITS < need_kwh:
        unit_kwh = max(need_kwh, 1e-6) / MAX_PLAN_UNITS
    units_needed = max(0, math.ceil(need_kwh / unit_kwh - 1e-6))
    gains = np.stack([np.rint(e * h / unit_kwh).astype(np.int64) for e in options])
    # After the deadline: the plain program (full power never pays there).
    tail_best = np.argmax(values[:2], axis=0)
    tail_value = np.max(values[:2], axis=0)
    tail_on, tail_off = np.zeros(n + 1), np.zeros(n + 1)  # value from step i, previous on/off
    for i in range(n - 1, deadline - 1, -1):
        run = tail_value[i] + tail_on[i + 1]
        tail_on[i] = max(run, tail_off[i + 1])
        tail_off[i] = max(run - start_cost_kwh, tail_off[i + 1])
    # Before it: the energy so far e (units, saturating at the target) is part of the state.
    units = np.arange(units_needed + 1)
    done = units >= units_needed
    w_on = np.where(done, tail_on[deadline], -np.inf)
    w_off = np.where(done, tail_off[deadline], -np.inf)
    pick = np.zeros((deadline, units_needed + 1), dtype=np.int8)  # option when on
    go_on = np.zeros((deadline, 2, units_needed + 1), dtype=bool)  # on at i, by previous state
    for i in range(deadline - 1, -1, -1):
        reach = [w_on[np.minimum(units + g, units_needed)] for g in gains[:, i]]
        on_values = np.stack([values[k, i] + reach[k] for k in range(len(options))])
        pick[i] = np.argmax(on_values, axis=0)
        on_value = np.max(on_values, axis=0)
        go_on[i, 1] = on_value >= w_off
        go_on[i, 0] = on_value - start_cost_kwh > w_off
        w_on, w_off = np.maximum(on_value, w_off), np.maximum(on_value - start_cost_kwh, w_off)
    met = bool(np.isfinite(w_off[0])) or deadline == 0
    ev_w = np.zeros(n)
    e, prev = 0, False
    for i in range(deadline if met else 0):
        on = bool(go_on[i, int(prev)][e])
        if on:
            k = int(pick[i, e])
            ev_w[i] = options[k][i]
            e = min(units_needed, e + int(gains[k, i]))
        prev = on
    if not met:  # full power all the way: as close as the charger gets
        ev_w[:deadline] = options[-1][:deadline]
        prev = deadline > 0
    for i in range(deadline, n):
        run = tail_value[i] + tail_on[i + 1]
        on = run >= tail_off[i + 1] if prev else run - start_cost_kwh > tail_off[i + 1]
        ev_w[i] = options[int(tail_best[i])][i] if on else 0.0
        prev = on
    delivered = float(np.sum((ev_w * h)[:deadline]))
    return PlanBound(score(s, ev_w, dt_s, ev_w > 0, ev_w / plant.voltage_v), delivered,
                     met, ev_w)
