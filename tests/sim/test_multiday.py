"""Multi-day simulation: days chained with the controller's state carried across, and
departure plans from the config, scored against the perfect-foresight plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from divert.cli import main
from divert.core.guard import DAY_S, RelayLimits
from divert.policies.predictive import PredictivePolicy
from divert.policies.presets import load_preset
from divert.sim import simulate, trace


def test_days_are_chained_on_consecutive_dates_with_empty_nights(openevse_data: Path) -> None:
    a, b = (trace.load(openevse_data / f"{n}.csv") for n in ("almostperfect", "day2"))
    both = trace.chain([a, b])
    assert np.all(np.diff(both.time_s) > 0)
    first, last = (datetime.fromtimestamp(float(t), UTC) for t in (both.time_s[0],
                                                                  both.time_s[-1]))
    assert (last.date() - first.date()).days == 1
    assert last.time() == datetime.fromtimestamp(float(b.time_s[-1]), UTC).time()
    night = (both.time_s > a.time_s[-1]) & (both.time_s < both.time_s[-len(b)])
    assert night.sum() > 100 and not np.any(both.solar_w[night])
    assert both.dt_s.max() <= 900  # no row holds over a whole night


def test_the_guard_and_the_forecaster_carry_across_midnight(openevse_data: Path) -> None:
    """Three days in a row under one controller: the 24 h start budget spans midnight (never
    more than the budget in any rolling 24 h) and the forecaster learns the envelope."""
    days = trace.chain([trace.load(openevse_data / f"{n}.csv")
                        for n in ("day3", "day1", "day2")])
    preset = load_preset("predictive")
    ctl = preset.controller(simulate.BENCH_CAPS)
    steps = simulate.run_ideal(days, ctl)
    on = steps.charging
    starts = steps.time_s[on & ~np.concatenate(([False], on[:-1]))]
    limit = preset.relay.max_starts_per_day
    assert all(np.sum((starts > t - DAY_S) & (starts <= t)) <= limit for t in starts)
    policy = ctl.policy
    assert isinstance(policy, PredictivePolicy)
    assert policy.forecaster.envelope.days == 2
    per_day = simulate.daily(steps)
    assert [d["date"] for d in per_day] == ["2020-03-15", "2020-03-16", "2020-03-17"]
    assert sum(d["starts"] for d in per_day) == steps.score().starts


def test_simulate_runs_several_days_and_plans_from_the_config(openevse_data: Path,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[
                                                                  str]) -> None:
    config = tmp_path / "divert.toml"
    config.write_text('timezone = "UTC"\n[policy]\npreset = "predictive"\n'
                      '[[plan]]\nenergy_kwh = 12\nby = "16:30"\ndays = "mon-fri"\n')
    out = tmp_path / "out"
    args = ["simulate", "--config", str(config), "--out", str(out)]
    for name in ("day3", "day1", "day2"):  # Sunday, Monday, Tuesday
        args += ["--trace", str(openevse_data / f"{name}.csv")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 days, state carried from one to the next" in text
    summary = json.loads((out / "summary.json").read_text())
    plans = summary["plans"]
    assert [p["by"] for p in plans] == ["2020-03-16T16:30:00+00:00",
                                        "2020-03-17T16:30:00+00:00"]  # no plan on Sunday
    for p in plans:
        assert p["met"] and p["possible"]
        assert p["delivered_kwh"] == pytest.approx(12.0, abs=0.5)
        assert p["grid_kwh"] >= p["bound_grid_kwh"] - 1e-6
    assert len(summary["days"]) == 3
    reasons = (out / "steps.csv").read_text()
    assert "plan: " in reasons and " by 16:30, grid since " in reasons


def test_a_soc_plan_without_a_car_reading_says_so(tmp_path: Path) -> None:
    """The simulator has no car: a state-of-charge plan keeps a start and says why it waits,
    and is not scored."""
    config = tmp_path / "divert.toml"
    config.write_text('[[plan]]\nsoc_pct = 80\nbattery_kwh = 60\nby = "18:00"\n')
    out = tmp_path / "out"
    assert main(["simulate", "--config", str(config), "--out", str(out), "--json"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "plans" not in summary
    assert "plan: no state of charge from the car yet (target 80 % by 18:00)" in \
        (out / "steps.csv").read_text()


@pytest.mark.parametrize(("plan", "problem"), [
    ('by = "7am"\nenergy_kwh = 5', "plan[0].by: by must be a time of day like 07:00"),
    ('by = "07:00"', "plan[0]: a plan needs exactly one of energy_kwh and soc_pct"),
    ('by = "07:00"\nsoc_pct = 80', "plan[0]: a plan with soc_pct needs battery_kwh"),
    ('by = "07:00"\nenergy_kwh = 5\ndays = "weekdays"', "plan[0].days: days must be weekday"),
    ('by = "07:00"\nenergy_kwh = 500', "plan[0].energy_kwh: input should be less than or "
                                       "equal to 200"),
    ('by = "07:00"\nenergy_kwh = 5\ncharger = "van"', "plan[0].charger: no charger named"),
])
def test_a_bad_plan_is_one_line_naming_the_key(tmp_path: Path, plan: str, problem: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "divert.toml"
    config.write_text(f"[[plan]]\n{plan}\n")
    with pytest.raises(SystemExit) as exc:
        main(["check-config", "-c", str(config)])
    assert exc.value.code == 1
    assert problem in capsys.readouterr().err


def test_the_bound_with_a_plan_never_beats_what_it_promises(openevse_data: Path) -> None:
    """The perfect-foresight plan meets the same target with no more import than the
    controller; the controller meets it."""
    day = trace.load(openevse_data / "day2_grid_ie.csv")
    plans = simulate.Plans((load_preset_plan(),), UTC)
    for name in ("balanced", "predictive"):
        preset = load_preset(name)
        steps = simulate.run_ideal(day, preset.controller(simulate.BENCH_CAPS), plans)
        (outcome,) = simulate.plan_outcomes(day, steps, plans, simulate.BENCH_CAPS,
                                            float(preset.params["import_weight"]))
        assert outcome.met and outcome.possible
        assert outcome.bound_grid_kwh <= outcome.grid_kwh + 1e-6


def load_preset_plan():  # type: ignore[no-untyped-def]
    from divert.sim.bench import PLAN

    return PLAN


def test_a_limited_guard_still_meets_the_plan(openevse_data: Path) -> None:
    """One start a day: the policy gets none (the plan keeps it), the plan uses it."""
    day = trace.load(openevse_data / "day1.csv")
    preset = load_preset("balanced")
    ctl = preset.controller(simulate.BENCH_CAPS, relay={"max_starts_per_day": 1})
    assert ctl.guard.limits == RelayLimits(**{**preset.relay.__dict__, "max_starts_per_day": 1})
    from divert.sim.bench import PLAN

    plans = simulate.Plans((PLAN,), UTC)
    steps = simulate.run_ideal(day, ctl, plans)
    (outcome,) = simulate.plan_outcomes(day, steps, plans, simulate.BENCH_CAPS, 5.0)
    assert outcome.met and steps.score().starts == 1
