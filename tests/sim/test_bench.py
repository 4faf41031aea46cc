"""`divert bench`: the command runs end to end on one day and its totals add up."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from divert.cli import main
from divert.policies.presets import load_preset
from divert.sim import bench, perturb, trace
from divert.sim.score import combine


@pytest.fixture
def one_day(openevse_data: Path, tmp_path: Path) -> Path:
    """A folder holding one reference day (a link: the data stays where it is)."""
    folder = tmp_path / "days"
    folder.mkdir()
    (folder / "day2.csv").symlink_to(openevse_data / "day2.csv")
    return folder


def test_bench_prints_and_writes_every_table(one_day: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["bench", "--data", str(one_day), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in (*bench.OWN_PRESETS, *bench.BASELINES, "balanced, restart-only"):
        assert f"\n{name} (ideal plant): " in text or text.startswith(f"{name} (ideal plant)")
    assert "Totals (ideal plant)" in text
    assert "1/3-phase switching (ideal plant; the days × 3 in power" in text
    assert "total (1 day)" in text
    site = text.split("Site: two cars (ideal plant", 1)[1]
    for row in ("each alone (before)", "priority", "fair", "Site: home battery", "no battery",
                "ev-first", "battery-first below 50 %", "buffer above 40 %"):
        assert f"\n{row} " in site
    md = (out / "ideal.md").read_text()
    assert "## The site: two cars" in md and "## The site: home battery" in md
    assert md.startswith("# Benchmark, ideal plant")
    assert "| balanced |" in md and "| openevse-default |" in md
    assert "![capture against grid share](ideal.png)" in md
    assert (out / "ideal.png").stat().st_size > 10_000


def test_a_missing_folder_is_one_clear_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err == f"divert bench: no trace folder at {tmp_path / 'nowhere'} (give one with " \
                  "--data DIR)\n"


def test_the_default_folder_is_the_reference_days(openevse_data: Path) -> None:
    assert bench.default_data_dir().resolve() == openevse_data.resolve()


def test_totals_are_the_sum_of_the_days(openevse_data: Path) -> None:
    days = [trace.load(openevse_data / f) for f in ("day1.csv", "day2_grid_ie.csv")]
    r = bench.run_preset(load_preset("balanced"), days, "ideal")
    assert r.total == combine([d.score for d in r.days])
    assert r.n_days == 2
    assert r.starts_per_day == sum(d.score.starts for d in r.days) / 2
    assert r.worst_day == max(d.score.starts for d in r.days)
    assert r.total_bound_capture_pct is not None and r.of_bound is not None
    assert 0.5 < r.of_bound <= 1.0 + 1e-9
    for d in r.days:
        assert d.of_bound is not None and d.bound_capture_pct is not None
        assert d.bound_capture_pct >= d.score.capture_pct - 1e-9  # the same share or better


def test_realistic_plant_and_phase_switching_on_one_day(openevse_data: Path) -> None:
    day = [trace.load(openevse_data / "day2.csv")]
    r = bench.run_preset(load_preset("balanced"), day, "realistic", with_bound=False)
    assert r.days[0].score.capture_pct > 70
    big = perturb.scaled(day, 3.0)
    assert big[0].surplus_w.max() == pytest.approx(3 * day[0].surplus_w.max())
    switching = replace(bench.THREE_PHASE_CAPS, phase_switching=True)
    fixed = bench.run_preset(load_preset("solar-only"), big, "ideal", bench.THREE_PHASE_CAPS,
                             with_bound=False)
    flex = bench.run_preset(load_preset("solar-only"), big, "ideal", switching,
                            with_bound=False)
    assert fixed.days[0].switches == 0
    assert flex.total.capture_pct > fixed.total.capture_pct  # the morning on one phase
