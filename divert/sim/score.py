"""Benchmark metrics, exactly as defined in the project's reference (§3). Pure numpy.

Inputs are per-step arrays: surplus S and EV power E in W, step length dt in s (each step's
powers hold over its dt), and the commanded state (charging flag, setpoint in A).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

WS_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Score:
    surplus_kwh: float
    ev_kwh: float
    ev_from_surplus_kwh: float
    ev_grid_import_kwh: float
    capture_pct: float  # EV energy from surplus / surplus energy
    grid_share_pct: float  # EV-caused grid import / EV energy
    starts: int  # not charging → charging transitions
    pilot_changes: int  # setpoint changes between two charging steps

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den > 0 else 0.0


def starts(charging: npt.ArrayLike) -> int:
    """Transitions from not charging to charging (the first step counts if it charges)."""
    on = np.asarray(charging, dtype=bool)
    prev = np.concatenate(([False], on[:-1]))
    return int(np.count_nonzero(on & ~prev))


def pilot_changes(charging: npt.ArrayLike, setpoint_a: npt.ArrayLike) -> int:
    """Times the commanded current changes from one charging step to the next."""
    on = np.asarray(charging, dtype=bool)
    sp = np.asarray(setpoint_a, dtype=np.float64)
    both = on[1:] & on[:-1]
    return int(np.count_nonzero(both & (np.abs(np.diff(sp)) > 1e-9)))


def score(surplus_w: npt.ArrayLike, ev_w: npt.ArrayLike, dt_s: npt.ArrayLike,
          charging: npt.ArrayLike, setpoint_a: npt.ArrayLike) -> Score:
    s = np.asarray(surplus_w, dtype=np.float64)
    e = np.asarray(ev_w, dtype=np.float64)
    h = np.asarray(dt_s, dtype=np.float64) / WS_PER_KWH
    surplus = float(np.sum(s * h))
    ev = float(np.sum(e * h))
    from_surplus = float(np.sum(np.minimum(e, s) * h))
    imported = float(np.sum(np.maximum(0.0, e - s) * h))
    return Score(surplus, ev, from_surplus, imported, _pct(from_surplus, surplus),
                 _pct(imported, ev), starts(charging), pilot_changes(charging, setpoint_a))


def combine(scores: list[Score]) -> Score:
    """Totals over several traces (percentages recomputed from the energy sums)."""
    surplus = sum(x.surplus_kwh for x in scores)
    ev = sum(x.ev_kwh for x in scores)
    from_surplus = sum(x.ev_from_surplus_kwh for x in scores)
    imported = sum(x.ev_grid_import_kwh for x in scores)
    return Score(surplus, ev, from_surplus, imported, _pct(from_surplus, surplus),
                 _pct(imported, ev), sum(x.starts for x in scores),
                 sum(x.pilot_changes for x in scores))
