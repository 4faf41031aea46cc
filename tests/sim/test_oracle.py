"""The perfect-foresight bound agrees with the reference's §5 frontier within 0.5 points."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from divert.sim import oracle, score, trace

CONTINUOUS = [  # λ, μ → capture %, grid share %
    (100, 0.2, 79.9, 0.0), (10, 0.2, 82.0, 0.2), (5, 0.2, 83.6, 0.5), (3, 0.2, 86.2, 1.3),
    (2, 0.2, 89.0, 2.5), (1, 0.2, 93.3, 5.6)]
WHOLE_AMP = [  # λ, μ → capture %, grid share %, starts/day, worst day
    (10, 0.2, 79.2, 0.23, 2.42, 5), (5, 0.2, 81.1, 0.67, 1.75, 4), (4, 0.3, 82.0, 0.92, 1.67, 4),
    (3, 0.2, 84.0, 1.52, 1.83, 4), (2, 0.2, 87.4, 3.01, 1.75, 4), (1, 0.2, 92.5, 6.57, 1.58, 4),
    (0.8, 0.3, 93.7, 8.47, 1.08, 2)]


@pytest.fixture(scope="module")
def traces(openevse_data: Path) -> list[trace.Trace]:
    return [trace.load(p) for p in sorted(openevse_data.glob("*.csv"))]


def _frontier(traces: list[trace.Trace], plant: oracle.OraclePlant, lam: float,
              mu: float) -> tuple[score.Score, int]:
    scores = [oracle.bound(t.surplus_w, t.dt_s, plant, lam, mu) for t in traces]
    return score.combine(scores), max(s.starts for s in scores)


@pytest.mark.parametrize(("lam", "mu", "capture", "share"), CONTINUOUS)
def test_continuous_frontier(traces: list[trace.Trace], lam: float, mu: float, capture: float,
                             share: float) -> None:
    total, _ = _frontier(traces, oracle.OraclePlant(step_a=0.0), lam, mu)
    assert total.capture_pct == pytest.approx(capture, abs=0.5)
    assert total.grid_share_pct == pytest.approx(share, abs=0.5)


@pytest.mark.parametrize(("lam", "mu", "capture", "share", "per_day", "worst"), WHOLE_AMP)
def test_whole_amp_frontier(traces: list[trace.Trace], lam: float, mu: float, capture: float,
                            share: float, per_day: float, worst: int) -> None:
    total, worst_day = _frontier(traces, oracle.OraclePlant(), lam, mu)
    assert total.capture_pct == pytest.approx(capture, abs=0.5)
    assert total.grid_share_pct == pytest.approx(share, abs=0.5)
    assert total.starts / len(traces) == pytest.approx(per_day, abs=0.1)
    assert worst_day == worst


def test_plan_never_charges_below_minimum_and_respects_import_weight() -> None:
    surplus_w = np.array([0, 500, 2000, 3000, 2500, 800, 0], dtype=float)
    dt_s = np.full(7, 600.0)
    ev_w = oracle.plan(surplus_w, dt_s, oracle.OraclePlant(), 1e6, 0.0)
    assert set(np.flatnonzero(ev_w)) == {2, 3, 4}
    assert np.all(ev_w[ev_w > 0] <= surplus_w[ev_w > 0])


def test_bound_at_share_does_not_exceed_the_share(traces: list[trace.Trace]) -> None:
    t = traces[0]
    got = oracle.bound_at_share(t.surplus_w, t.dt_s, oracle.OraclePlant(), 1.0)
    assert got.grid_share_pct <= 1.0


def test_plan_bound_meets_the_target_at_the_least_import() -> None:
    """Four rows of 15 min; 4 kWh by the end of the third, import weighted heavily. A brute
    force over every plan of the oracle's choices (off, the surplus in whole amps rounded
    down or up, full power) finds no plan that meets it with less import."""
    surplus_w = np.array([2000.0, 500.0, 3000.0, 4000.0])
    dt_s = np.full(4, 900.0)
    best = oracle.plan_bound(surplus_w, dt_s, oracle.OraclePlant(), 100.0, 0.0, 3, 4.0)
    assert best.met and best.delivered_kwh >= 4.0 - 1e-9
    h = 0.25
    options = [[0.0, 1920.0, 2160.0, 7680.0], [0.0, 1440.0, 7680.0],
               [0.0, 2880.0, 3120.0, 7680.0]]
    least = min(sum(max(0.0, e - s) * h / 1000 for e, s in zip(p, surplus_w, strict=False))
                for p in itertools.product(*options) if sum(p) * h / 1000 >= 4.0 - 1e-9)
    imported_before = float(np.sum(np.maximum(0.0, best.ev_w - surplus_w)[:3]) * h / 1000)
    assert imported_before == pytest.approx(least, abs=1e-9)


def test_plan_bound_without_a_target_is_the_plain_bound(traces: list[trace.Trace]) -> None:
    t = traces[0]
    plain = oracle.bound(t.surplus_w, t.dt_s, oracle.OraclePlant(), 3.0, 0.2)
    with_none = oracle.plan_bound(t.surplus_w, t.dt_s, oracle.OraclePlant(), 3.0, 0.2,
                                  len(t), 0.0)
    assert with_none.score == plain


def test_an_impossible_target_is_said_so() -> None:
    best = oracle.plan_bound(np.zeros(4), np.full(4, 60.0), oracle.OraclePlant(), 3.0, 0.2,
                             4, 50.0)
    assert not best.met and best.delivered_kwh == pytest.approx(7.68 * 4 / 60)


def test_plan_bound_on_a_public_day(traces: list[trace.Trace]) -> None:
    """day2 (clear): 10 kWh by 9 h after the first row takes the sun and 1.7 kWh of grid
    at λ = 4 (pinned)."""
    day2 = next(t for t in traces if t.name == "day2")
    by = int(np.searchsorted(day2.time_s, day2.time_s[0] + 9 * 3600))
    best = oracle.plan_bound(day2.surplus_w, day2.dt_s, oracle.OraclePlant(), 4.0, 0.2, by,
                             15.0)
    assert best.met and best.delivered_kwh == pytest.approx(15.0, abs=0.01)
    assert best.score.ev_grid_import_kwh == pytest.approx(3.12, abs=0.01)
