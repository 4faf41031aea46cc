"""`divert bench`, site section: two cars on one meter, and a home battery.

Two tables, on the same days and plant as the rest of the bench:

* **Two cars.** The days × `TWO_CAR_SCALE` in power (a larger array, room for two cars), two
  single-phase 6–16 A chargers running the balanced preset: each on its own seeing the whole
  surplus (what a meter that does not see the chargers gave before the site), against
  `priority` and `fair` sharing.
* **Home battery.** The days as they are, the benchmark's charger and the balanced preset,
  with `BatteryModel`'s defaults (10 kWh, 5 kW, 90 % round trip, from 50 % each day): no
  battery, then each battery mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import SiteParams
from divert.core.site import Member, Sharing, SiteRules
from divert.core.surplus import BatteryMode, BatteryRule
from divert.policies.presets import Preset
from divert.sim import simulate
from divert.sim.site import (
    BatteryModel,
    ChargerSteps,
    SiteScore,
    SiteSteps,
    combine,
    run_site,
)
from divert.sim.trace import Trace

TWO_CAR_SCALE = 2.0
TWO_CAR_CAPS = Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 1, 230.0)
TWO_CARS = (Member("a", priority=1), Member("b"))
BATTERY = BatteryModel()
BATTERY_RULES: tuple[tuple[str, BatteryRule | None], ...] = (
    ("no battery", None),
    ("ev-first", BatteryRule(BatteryMode.EV_FIRST)),
    ("battery-first", BatteryRule(BatteryMode.BATTERY_FIRST)),
    ("battery-first below 50 %", BatteryRule(BatteryMode.BATTERY_FIRST, 50.0)),
    ("buffer above 40 %", BatteryRule(BatteryMode.BUFFER, buffer_soc_pct=40.0)),
)


@dataclass(frozen=True)
class SiteResult:
    """One site set-up over all days: the site's totals and each car's energy (kWh)."""

    label: str
    score: SiteScore
    ev_kwh: dict[str, float]


@dataclass(frozen=True)
class SiteBench:
    two_cars: list[SiteResult]
    battery: list[SiteResult]


def _result(label: str, runs: Sequence[SiteSteps]) -> SiteResult:
    ev_kwh: dict[str, float] = {}
    for steps in runs:
        h = steps.dt_s / 3.6e6
        for name, c in steps.chargers.items():
            ev_kwh[name] = ev_kwh.get(name, 0.0) + float(np.sum(c.ev_w * h))
    return SiteResult(label, combine([s.score() for s in runs]), ev_kwh)


def _alone(tr: Trace, preset: Preset, plant: simulate.PlantName) -> SiteSteps:
    """Both cars on their own controller, each seeing the whole surplus: one car's run,
    twice."""
    one = simulate.run(tr, lambda: preset.controller(TWO_CAR_CAPS), plant)
    car = ChargerSteps(np.full(len(one.time_s), math.nan), one.ev_w, one.setpoint_a,
                       one.charging, one.phases, one.reasons)
    ev_w = 2 * one.ev_w
    return SiteSteps(one.time_s, one.dt_s, one.solar_w, one.load_w,
                     one.load_w + ev_w - one.solar_w, np.zeros(len(ev_w)),
                     np.full(len(ev_w), math.nan), np.zeros(len(ev_w), dtype=bool),
                     {m.name: car for m in TWO_CARS})


def run_site_bench(traces: Sequence[Trace], plant: simulate.PlantName,
                   preset: Preset) -> SiteBench:
    big = [t.scaled(TWO_CAR_SCALE) for t in traces]
    caps = {m.name: TWO_CAR_CAPS for m in TWO_CARS}
    two_cars = [_result("each alone (before)", [_alone(t, preset, plant) for t in big])]
    for sharing in Sharing:
        two_cars.append(_result(str(sharing), [
            run_site(t, preset.site(TWO_CARS, caps, rules=SiteRules(sharing)), plant)
            for t in big]))
    battery = []
    one = (Member("car"),)
    for label, rule in BATTERY_RULES:
        params = SiteParams(battery=rule or BatteryRule())
        battery.append(_result(label, [
            run_site(t, preset.site(one, {"car": simulate.BENCH_CAPS}, params=params), plant,
                     None if rule is None else BATTERY) for t in traces]))
    return SiteBench(two_cars, battery)


def two_car_rows(results: Sequence[SiteResult],
                 n_days: int) -> tuple[list[str], list[list[str]]]:
    head = ["sharing", "capture %", "grid share %", "starts/day", "car a kWh/day",
            "car b kWh/day"]
    rows = [[r.label, f"{r.score.capture_pct:.1f}", f"{r.score.grid_share_pct:.2f}",
             f"{r.score.starts / n_days:.2f}",
             *(f"{r.ev_kwh[m.name] / n_days:.2f}" for m in TWO_CARS)] for r in results]
    return head, rows


def battery_rows(results: Sequence[SiteResult],
                 n_days: int) -> tuple[list[str], list[list[str]]]:
    head = ["battery", "capture %", "EV from battery kWh/day", "grid share %", "starts/day",
            "import kWh/day", "export kWh/day"]
    rows = [[r.label, f"{r.score.capture_pct:.1f}",
             f"{r.score.ev_from_battery_kwh / n_days:.2f}", f"{r.score.grid_share_pct:.2f}",
             f"{r.score.starts / n_days:.2f}", f"{r.score.import_kwh / n_days:.2f}",
             f"{r.score.export_kwh / n_days:.2f}"] for r in results]
    return head, rows
