"""The public days, perturbed: how a preset holds up on days nobody tuned it on.

* `scaled` — every power × a factor (a smaller or larger array and house);
* `shifted` — the sun an hour earlier or later on the same rows (another longitude, summer
  time): a measured house load stays where it was, so the two meet differently, and an hour
  of the day's edge falls outside the rows;
* `load_redrawn` — a new house load: a base load and appliance runs drawn at random (seeded
  by the day's name, so every run of the benchmark sees the same days). Days recorded at a
  grid meter get it instead of their measured load; solar-only days get one.

Powers in W, times in s.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

import numpy as np

from divert.sim import trace

BASE_LOAD_W = (120.0, 450.0)  # the house's base load is drawn from this range
RUNS_PER_HOUR = 1.2  # appliance runs start at this rate …
RUN_POWER_W = (400.0, 2500.0)  # … draw this much (log-uniform) …
RUN_MINUTES = (2.0, 60.0)  # … for this long (log-uniform)


def scaled(traces: Iterable[trace.Trace], factor: float) -> list[trace.Trace]:
    """The same days with every power × `factor` (a larger array and house), nominal voltage."""
    return [t.scaled(factor) for t in traces]


def shifted(traces: Iterable[trace.Trace], hours: float) -> list[trace.Trace]:
    """The sun `hours` later on the same rows (earlier if negative; none from before the
    first row or after the last), the house load where it was."""
    shift_s = hours * 3600.0
    return [_with_load(t, np.interp(t.time_s - shift_s, t.time_s, t.solar_w, left=0.0,
                                    right=0.0), t.load_w) for t in traces]


def load_redrawn(traces: Iterable[trace.Trace]) -> list[trace.Trace]:
    """Each day with a house load drawn anew (seeded by its name)."""
    out = []
    for t in traces:
        rng = np.random.default_rng(zlib.crc32(t.name.encode()))
        load_w = np.full(len(t), rng.uniform(*BASE_LOAD_W))
        span_h = (t.time_s[-1] - t.time_s[0]) / 3600.0
        for _ in range(rng.poisson(RUNS_PER_HOUR * span_h)):
            start_s = t.time_s[0] + rng.uniform(0.0, span_h * 3600.0)
            minutes = math.exp(rng.uniform(*np.log(RUN_MINUTES)))
            power_w = math.exp(rng.uniform(*np.log(RUN_POWER_W)))
            load_w[(t.time_s > start_s) & (t.time_s <= start_s + minutes * 60.0)] += power_w
        out.append(_with_load(t, t.solar_w, np.round(load_w)))
    return out


def _with_load(t: trace.Trace, solar_w: trace.FloatArray,
               load_w: trace.FloatArray) -> trace.Trace:
    """`t` with new solar and load; a grid-metered day keeps its meter (grid = load − solar)."""
    grid_w = None if t.grid_w is None else load_w - solar_w
    return trace.Trace(t.name, t.time_s, solar_w, load_w, t.voltage_v, grid_w)
