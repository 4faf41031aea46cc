"""The shipped presets against the bars of issue 8, on the 12 OpenEVSE test days.

Ideal plant (the reference's): every bar, and the comparison with each preset's OpenEVSE
twin. Realistic plant: capture within 5 points of the ideal plant's, starts within the bars.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from divert.policies.presets import load_preset
from divert.sim import bench, trace
from divert.sim.bench import Result

# preset: (capture % at least, grid share % at most); starts/day ≤ 2.0 mean, ≤ 4 worst day.
BARS = {"solar-only": (74.0, 0.6), "balanced": (81.0, 1.5), "max-solar": (93.0, 8.7)}


@pytest.fixture(scope="module")
def days(openevse_data: Path) -> list[trace.Trace]:
    return bench.load_traces(openevse_data)


@pytest.fixture(scope="module")
def ideal(days: list[trace.Trace]) -> dict[str, Result]:
    return {name: bench.run_preset(load_preset(name), days, "ideal", with_bound=False)
            for name in (*BARS, *bench.BASELINES)}


@pytest.mark.parametrize("name", list(BARS))
def test_preset_meets_its_bars(ideal: dict[str, Result], name: str) -> None:
    r = ideal[name]
    capture_pct, share_pct = BARS[name]
    assert r.n_days == 12
    assert r.total.capture_pct >= capture_pct
    assert r.total.grid_share_pct <= share_pct
    assert r.starts_per_day <= 2.0
    assert r.worst_day <= 4


@pytest.mark.parametrize("name", ["solar-only", "balanced"])
def test_preset_beats_its_twin_on_every_axis(ideal: dict[str, Result], name: str) -> None:
    own, twin = ideal[name], ideal[bench.TWINS[name]]
    assert own.total.capture_pct > twin.total.capture_pct
    assert own.total.grid_share_pct < twin.total.grid_share_pct
    assert own.starts_per_day < twin.starts_per_day
    assert own.worst_day < twin.worst_day


def test_max_solar_matches_nowaste_with_fewer_starts(ideal: dict[str, Result]) -> None:
    own, twin = ideal["max-solar"], ideal["openevse-nowaste"]
    assert own.total.capture_pct >= twin.total.capture_pct - 0.8
    assert own.total.grid_share_pct <= twin.total.grid_share_pct
    assert own.starts_per_day < twin.starts_per_day
    assert own.worst_day < twin.worst_day


def test_realistic_plant_stays_close(days: list[trace.Trace],
                                     ideal: dict[str, Result]) -> None:
    for name in BARS:
        r = bench.run_preset(load_preset(name), days, "realistic", with_bound=False)
        assert abs(r.total.capture_pct - ideal[name].total.capture_pct) <= 5.0, name
        assert r.starts_per_day <= 2.0, name
        assert r.worst_day <= 4, name
