"""The perfect-foresight bound agrees with the reference's §5 frontier within 0.5 points."""

from __future__ import annotations

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
