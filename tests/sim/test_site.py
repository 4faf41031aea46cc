"""Simulating a whole site: two chargers on one day, a home battery, `divert simulate --config`."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from divert.core.controller import SiteParams
from divert.core.site import Member, Sharing, SiteRules
from divert.core.surplus import BatteryMode, BatteryRule
from divert.policies.presets import load_preset
from divert.sim import simulate, trace
from divert.sim.bench_site import TWO_CAR_CAPS
from divert.sim.site import BatteryModel, SiteSteps, run_site

BALANCED = load_preset("balanced")
TWO = [Member("a", priority=1), Member("b")]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "divert.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def _two_cars(tr: trace.Trace, sharing: Sharing, plant: simulate.PlantName) -> SiteSteps:
    site = BALANCED.site(TWO, {m.name: TWO_CAR_CAPS for m in TWO}, rules=SiteRules(sharing))
    return run_site(tr, site, plant)


@pytest.mark.parametrize("plant", ["ideal", "realistic"])
def test_a_site_of_one_charger_runs_as_the_charger_alone(openevse_data: Path,
                                                         plant: simulate.PlantName) -> None:
    for name in ("day2_grid_ie.csv", "CloudyMorning.csv"):  # metered, and solar only
        tr = trace.load(openevse_data / name)
        alone = simulate.run(tr, lambda: BALANCED.controller(simulate.BENCH_CAPS), plant)
        site = run_site(tr, BALANCED.site([Member("x")], {"x": simulate.BENCH_CAPS}), plant)
        car = site.chargers["x"]
        assert np.array_equal(car.ev_w, alone.ev_w)
        assert np.array_equal(car.setpoint_a, alone.setpoint_a)
        assert car.reasons == alone.reasons
        assert site.score().capture_pct == alone.score().capture_pct


@pytest.mark.parametrize("plant", ["ideal", "realistic"])
def test_two_chargers_on_a_day_share_instead_of_importing(openevse_data: Path,
                                                          plant: simulate.PlantName) -> None:
    """Before the site each charger saw the whole surplus: a third of the cars' energy came
    from the grid. Shared, the cars stay within the surplus as one car does."""
    day = trace.load(openevse_data / "almostperfect.csv").scaled(2.0)
    priority, fair = (_two_cars(day, s, plant) for s in Sharing)
    for steps in (priority, fair):
        score = steps.score()
        assert score.grid_share_pct < 3 and score.capture_pct > 80
        assert np.allclose(steps.grid_w, steps.load_w + steps.ev_w - steps.solar_w)
    h = priority.dt_s / 3.6e6
    kwh = {s: {n: float(np.sum(c.ev_w * h)) for n, c in steps.chargers.items()}
           for s, steps in (("priority", priority), ("fair", fair))}
    assert kwh["priority"]["a"] > 2 * kwh["priority"]["b"]  # a first
    assert abs(kwh["fair"]["a"] - kwh["fair"]["b"]) < 0.25 * sum(kwh["fair"].values())
    # While both charge in priority mode, b takes only what a leaves (a step of slack).
    both = priority.chargers["a"].charging & priority.chargers["b"].charging
    a_w, b_share = priority.chargers["a"].ev_w, priority.chargers["b"].share_w
    if plant == "ideal":
        assert both.any()
        assert np.all(b_share[both] <= priority.surplus_w[both] - a_w[both] + 1e-6)


def _cloudy_day() -> trace.Trace:
    """A clear day, 09:00–17:00 at 4 kW of surplus, with a 20 min cloud at noon; house 300 W."""
    t = np.arange(0.0, 86400.0, 60.0)
    hours = t / 3600
    solar = np.where((hours >= 9) & (hours < 17), 4300.0, 0.0)
    solar[(hours >= 12) & (hours < 12 + 1 / 3)] = 500.0
    return trace.Trace("cloud", t, solar, np.full(len(t), 300.0), np.full(len(t), math.nan))


def _battery_day(rule: BatteryRule, model: BatteryModel | None = None) -> SiteSteps:
    site = BALANCED.site([Member("car")], {"car": TWO_CAR_CAPS},
                         params=SiteParams(battery=rule))
    return run_site(_cloudy_day(), site, "ideal", model or BatteryModel())


def test_the_battery_model_keeps_its_energy_and_its_limits() -> None:
    model = BatteryModel(capacity_kwh=5, max_charge_w=2000, max_discharge_w=3000)
    steps = _battery_day(BatteryRule(BatteryMode.EV_FIRST), model)
    h = steps.dt_s / 3600
    stored_wh = 5000 * 0.5 + np.cumsum(np.where(steps.battery_w > 0, 0.9, 1.0)
                                       * steps.battery_w * h)
    assert np.allclose(steps.battery_soc_pct, stored_wh / 50)
    assert steps.battery_soc_pct.min() >= 5 - 1e-9 and steps.battery_soc_pct.max() <= 100
    assert steps.battery_w.max() <= 2000 and steps.battery_w.min() >= -3000
    assert np.allclose(steps.grid_w, steps.load_w + steps.ev_w + steps.battery_w
                       - steps.solar_w)
    night = steps.solar_w == 0
    assert np.all(steps.battery_w[night & (steps.battery_soc_pct > 5.1)] < 0)  # house covered


def test_battery_modes_on_a_day_with_a_cloud() -> None:
    ev_first = _battery_day(BatteryRule(BatteryMode.EV_FIRST))
    first = _battery_day(BatteryRule(BatteryMode.BATTERY_FIRST))
    buffer = _battery_day(BatteryRule(BatteryMode.BUFFER, buffer_soc_pct=40))
    s_ev, s_first, s_buffer = ev_first.score(), first.score(), buffer.score()
    # battery-first: the battery fills before the car gets its charging power.
    assert s_first.ev_kwh < s_ev.ev_kwh
    noon = 12 * 60 - 1  # the last minute before the cloud
    assert first.battery_soc_pct[noon] > ev_first.battery_soc_pct[noon]
    # buffer: the car rides through the cloud at its minimum from the battery: one start.
    assert s_ev.starts == 2 and s_buffer.starts == 1
    cloud = slice(12 * 60 + 1, 12 * 60 + 20)
    assert np.all(buffer.chargers["car"].setpoint_a[cloud] == 6)
    assert s_buffer.ev_from_battery_kwh > s_ev.ev_from_battery_kwh
    # In the evening it carries the car down to its 40 %, not below: then the policy's own
    # bridging has the last word, as without a buffer.
    car = buffer.chargers["car"]
    evening = np.flatnonzero(car.charging & (buffer.solar_w == 0))
    carried = buffer.battery_soc_pct[evening - 1] > 40
    assert carried.sum() > 60
    assert all(car.reasons[i].startswith("charging: 6 A") for i in evening[carried])
    assert all(car.reasons[i].startswith("bridging") for i in evening[~carried])


def test_a_recorded_battery_is_replayed_and_read(tmp_path: Path) -> None:
    rows = ["time,solar_w,load_w,battery_w,battery_soc_pct"]
    for i in range(120):  # 2 h: 3 kW of sun, the battery takes 1 kW at 30 % (inside load)
        rows.append(f"{1_700_000_000 + 60 * i},3300,1300,1000,{30 + i / 60:.2f}")
    tr = trace.parse("\n".join(rows) + "\n", "recorded")
    assert tr.battery_w is not None and tr.battery_soc_pct is not None
    rule = BatteryRule(BatteryMode.BATTERY_FIRST, first_below_soc_pct=31)
    site = BALANCED.site([Member("car")], {"car": TWO_CAR_CAPS},
                         params=SiteParams(battery=rule))
    steps = run_site(tr, site, "ideal")
    assert np.array_equal(steps.battery_w, tr.battery_w)
    assert np.array_equal(steps.load_w, np.full(120, 300.0))  # the house alone
    shares = steps.chargers["car"].share_w
    assert shares[10] == pytest.approx(2000)  # below 31 %: the battery's 1 kW is its own
    assert shares[100] == pytest.approx(3000)  # above: the car may take it


def test_simulate_config_runs_the_whole_site(openevse_data: Path, tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text("[feeds.grid]\ntopic='g'\n[feeds.battery]\ntopic='b'\nsoc_topic='s'\n"
                      "[site]\nsharing='fair'\nbattery='buffer'\nbuffer_soc_pct=40\n"
                      "[[chargers]]\nname='a'\ntype='simulated'\npriority=1\n"
                      "[[chargers]]\nname='b'\ntype='simulated'\ncontrol='power'\n"
                      "step_a=0.1\n")
    out = tmp_path / "out"
    proc = _run("simulate", "--config", str(config), "--trace",
                str(openevse_data / "almostperfect.csv"), "--battery-kwh", "5", "--json",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert {n: c["control"] for n, c in summary["chargers"].items()} == {"a": "current",
                                                                         "b": "power"}
    assert summary["ev_kwh"] == pytest.approx(sum(c["ev_kwh"]
                                                  for c in summary["chargers"].values()))
    with (out / "steps.csv").open() as f:
        site_rows = list(csv.DictReader(f))
    per_car = {}
    for name in ("a", "b"):
        with (out / f"steps-{name}.csv").open() as f:
            per_car[name] = list(csv.DictReader(f))
    assert len(site_rows) == len(per_car["a"]) == len(per_car["b"])
    for i in range(0, len(site_rows), 37):
        assert float(site_rows[i]["ev_w"]) == pytest.approx(
            float(per_car["a"][i]["ev_w"]) + float(per_car["b"][i]["ev_w"]))
    socs = [float(r["battery_soc_pct"]) for r in site_rows]
    assert min(socs) >= 5 and max(socs) <= 100 and len(set(socs)) > 10  # a 5 kWh battery
    assert (out / "plot.png").stat().st_size > 10_000
