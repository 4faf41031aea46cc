"""Checking a charger's relay history against its guard's limits (core and site tests)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from divert.core.guard import DAY_S, HOUR_S, RelayLimits


def check_relay_history(events: Sequence[tuple[float, bool, int, bool]], limits: RelayLimits,
                        phases: int = 3) -> None:
    """events: (time, charging, phases, a stop the site limit forced) per step, after a first
    state off on `phases` phases. No limit of the guard is exceeded; only the site limit
    stops a charger inside its minimum on-time."""
    history = [(-1.0, False, phases, False), *events]
    phase_changes = [t for (_, _, p0, _), (t, _, p1, _) in itertools.pairwise(history)
                     if p0 != p1]
    for t0, t1 in itertools.pairwise(phase_changes):
        assert t1 - t0 >= limits.min_phase_switch_s - 1e-6
    cycles: list[float] = []  # starts and switches under load: relay cycles
    closed_s = None  # when the relay last closed (a start or a switch)
    opened_s = None
    for (_, on0, p0, _), (t, on1, p1, forced) in itertools.pairwise(history):
        if on1 and not on0:
            assert opened_s is None or t - opened_s >= limits.min_off_s - 1e-6
            cycles.append(t)
            closed_s = t
        elif on0 and not on1:
            assert closed_s is not None
            assert t - closed_s >= limits.min_on_s - 1e-6 or forced
            opened_s = t
        elif on0 and on1 and p0 != p1:
            assert closed_s is not None and t - closed_s >= limits.min_on_s - 1e-6
            cycles.append(t)
            closed_s = t
        else:
            continue
        assert sum(1 for u in cycles if u > t - HOUR_S) <= limits.max_starts_per_hour
        assert sum(1 for u in cycles if u > t - DAY_S) <= limits.max_starts_per_day
