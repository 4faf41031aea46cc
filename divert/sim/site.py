"""Simulate a whole site on a trace: several chargers, the site limit, a home battery.

`run_site` drives `Site.step` (divert.core.site) exactly as the daemon does, on either
plant of `divert.sim.simulate`. The site reads a grid meter that sees the chargers when the
trace was recorded at one or a battery is in play (a recorded one, or `BatteryModel`), else
solar and house load, as the single-charger simulation does; so a site of one charger
without a battery decides exactly as `simulate.run` does.

A home battery either comes with the trace (`battery_w`, `battery_soc_pct`: replayed as
recorded, blind to the cars) or from `BatteryModel`: self-consumption, charging from
export and discharging to cover import, within its power and its charge.

Powers in W, energies in kWh, times in s.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from divert.core.controller import Decision
from divert.core.site import ChargerInputs, Site, SiteInputs, SiteStatus
from divert.sim.score import WS_PER_KWH, pilot_changes, starts
from divert.sim.simulate import Car, Plans, PlantName, RealisticParams, check_realistic_span
from divert.sim.trace import FloatArray, Trace


@dataclass(frozen=True)
class BatteryModel:
    """A home battery for traces recorded without one. The defaults are a common home size."""

    capacity_kwh: float = 10.0
    max_charge_w: float = 5000.0
    max_discharge_w: float = 5000.0
    efficiency: float = 0.9  # round trip: energy out / energy in (lost while charging)
    start_soc_pct: float = 50.0  # at the trace's first row
    min_soc_pct: float = 5.0  # its own reserve: never discharged below

    def __post_init__(self) -> None:
        sizes = (self.capacity_kwh, self.max_charge_w, self.max_discharge_w)
        if not all(math.isfinite(v) for v in sizes) \
                or self.capacity_kwh <= 0 or self.max_charge_w < 0 or self.max_discharge_w < 0 \
                or not 0 < self.efficiency <= 1 \
                or not 0 <= self.min_soc_pct <= self.start_soc_pct <= 100:
            raise ValueError("battery: need a finite capacity > 0, finite powers >= 0, "
                             "0 < efficiency <= 1 and 0 <= min SoC <= start SoC <= 100")


class _Battery:
    """A `BatteryModel`'s charge as the trace runs."""

    def __init__(self, model: BatteryModel) -> None:
        self.model = model
        self.stored_wh = model.capacity_kwh * 10 * model.start_soc_pct

    @property
    def soc_pct(self) -> float:
        return self.stored_wh / (self.model.capacity_kwh * 10)

    def power_w(self, export_w: float, dt_s: float) -> float:
        """What it takes (+) from `export_w` W of export, or gives (−) to cover import, for
        `dt_s` s, within its power and charge."""
        m = self.model
        if export_w >= 0:
            room_wh = m.capacity_kwh * 1000 - self.stored_wh
            limit_w = m.max_charge_w if dt_s <= 0 else min(
                m.max_charge_w, room_wh * 3600 / (dt_s * m.efficiency))
            return min(export_w, max(0.0, limit_w))
        left_wh = self.stored_wh - m.capacity_kwh * 10 * m.min_soc_pct
        limit_w = m.max_discharge_w if dt_s <= 0 else min(m.max_discharge_w,
                                                          left_wh * 3600 / dt_s)
        return -min(-export_w, max(0.0, limit_w))

    def run(self, export_w: float, dt_s: float) -> float:
        """`power_w`, and its energy taken in or out."""
        power_w = self.power_w(export_w, dt_s)
        gain = self.model.efficiency if power_w > 0 else 1.0
        self.stored_wh += power_w * gain * dt_s / 3600
        return power_w


@dataclass(frozen=True)
class ChargerSteps:
    """One charger's rows."""

    share_w: FloatArray  # the surplus the site offered it (NaN: unknown)
    ev_w: FloatArray
    setpoint_a: FloatArray
    charging: np.ndarray[Any, np.dtype[np.bool_]]
    phases: np.ndarray[Any, np.dtype[np.int_]]
    reasons: list[str]


@dataclass(frozen=True)
class SiteScore:
    """A site's day. The surplus is the sun beyond the house's own use; the cars' energy
    comes from it directly, from the battery (what it gives beyond the house's shortfall),
    or from the grid."""

    surplus_kwh: float
    ev_kwh: float
    ev_from_sun_kwh: float
    ev_from_battery_kwh: float
    ev_from_grid_kwh: float
    capture_pct: float  # EV energy from the sun / surplus
    grid_share_pct: float  # EV energy from the grid / EV energy
    starts: int  # over all chargers
    pilot_changes: int
    import_kwh: float
    export_kwh: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class SiteSteps:
    """A simulated site, one row per step; `dt_s` is how long a row's powers hold. `load_w`
    is the house alone (a recorded battery taken out)."""

    time_s: FloatArray
    dt_s: FloatArray
    solar_w: FloatArray
    load_w: FloatArray
    grid_w: FloatArray  # + import, chargers and battery included
    battery_w: FloatArray  # + charging; 0 without a battery
    battery_soc_pct: FloatArray  # NaN without a battery
    limited: np.ndarray[Any, np.dtype[np.bool_]]  # the site limit held a charger back
    chargers: Mapping[str, ChargerSteps]

    @property
    def surplus_w(self) -> FloatArray:
        s: FloatArray = np.maximum(0.0, self.solar_w - self.load_w)
        return s

    @property
    def ev_w(self) -> FloatArray:
        total: FloatArray = np.sum([c.ev_w for c in self.chargers.values()], axis=0)
        return total

    def score(self) -> SiteScore:
        h = self.dt_s / WS_PER_KWH
        surplus_w, ev_w = self.surplus_w, self.ev_w
        sun_w = np.minimum(ev_w, surplus_w)
        given_w = np.maximum(0.0, -self.battery_w - np.maximum(0.0, self.load_w - self.solar_w))
        battery_w = np.minimum(ev_w - sun_w, given_w)
        grid_w = ev_w - sun_w - battery_w
        surplus, ev, sun, battery, grid = (float(np.sum(x * h)) for x in (
            surplus_w, ev_w, sun_w, battery_w, grid_w))
        return SiteScore(surplus, ev, sun, battery, grid, _pct(sun, surplus), _pct(grid, ev),
                         sum(starts(c.charging) for c in self.chargers.values()),
                         sum(pilot_changes(c.charging, c.setpoint_a)
                             for c in self.chargers.values()),
                         float(np.sum(np.maximum(0.0, self.grid_w) * h)),
                         float(np.sum(np.maximum(0.0, -self.grid_w) * h)))


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den if den > 0 else 0.0


class _Rows:
    """The per-row record of a run, filled as it goes."""

    def __init__(self, n: int, names: list[str]) -> None:
        self.grid_w, self.battery_w, self.soc_pct = np.zeros(n), np.zeros(n), np.full(n, math.nan)
        self.limited = np.zeros(n, dtype=bool)
        self.share_w = {c: np.full(n, math.nan) for c in names}
        self.ev_w = {c: np.zeros(n) for c in names}
        self.setpoint_a = {c: np.zeros(n) for c in names}
        self.charging = {c: np.zeros(n, dtype=bool) for c in names}
        self.phases = {c: np.zeros(n, dtype=np.int_) for c in names}
        self.reasons: dict[str, list[str]] = {c: [""] * n for c in names}

    def decided(self, i: int, status: SiteStatus, decisions: Mapping[str, Decision]) -> None:
        """The decisions in force at row `i`, and the site step they came from."""
        self.limited[i] = status.limited
        for name, d in decisions.items():
            share_w = status.shares_w.get(name)
            self.share_w[name][i] = math.nan if share_w is None else share_w
            self.setpoint_a[name][i], self.charging[name][i] = d.current_a, d.charging
            self.phases[name][i], self.reasons[name][i] = d.phases, d.reason

    def steps(self, time_s: FloatArray, dt_s: FloatArray, solar_w: FloatArray,
              house_w: FloatArray) -> SiteSteps:
        return SiteSteps(time_s, dt_s, solar_w, house_w, self.grid_w, self.battery_w,
                         self.soc_pct, self.limited,
                         {c: ChargerSteps(self.share_w[c], self.ev_w[c], self.setpoint_a[c],
                                          self.charging[c], self.phases[c], self.reasons[c])
                          for c in self.ev_w})


class _Plant:
    """The site's meters and battery for one run: what the site reads, and what flows."""

    def __init__(self, trace: Trace, battery: BatteryModel | None) -> None:
        recorded = trace.battery_w
        self.recorded = None if recorded is None else np.nan_to_num(recorded)
        self.recorded_soc = trace.battery_soc_pct
        self.model = None if battery is None or recorded is not None else _Battery(battery)
        self.metered = trace.grid_w is not None or self.recorded is not None \
            or self.model is not None
        # The house alone: a recorded battery is inside the trace's load.
        self.house_w = trace.load_w - (0.0 if self.recorded is None else self.recorded)

    def battery_at(self, i: int, export_w: float, dt_s: float, run: bool) -> float:
        """The battery's power at row `i` with `export_w` before it (run: and its energy)."""
        if self.recorded is not None:
            return float(self.recorded[i])
        if self.model is None:
            return 0.0
        return self.model.run(export_w, dt_s) if run else self.model.power_w(export_w, dt_s)

    def soc_at(self, i: int) -> float | None:
        if self.recorded_soc is not None:
            soc = float(self.recorded_soc[i])
            return soc if math.isfinite(soc) else None
        return None if self.model is None else self.model.soc_pct

    def inputs(self, t_s: float, solar_w: float, house_w: float, ev_w: Mapping[str, float],
               battery_w: float, soc_pct: float | None) -> SiteInputs:
        """What the daemon would read: a grid meter that sees the chargers, or solar and
        house load."""
        chargers = {name: ChargerInputs(ev_w=w) for name, w in ev_w.items()}
        if self.metered:
            grid_w = house_w + sum(ev_w.values()) + battery_w - solar_w
            has_battery = self.recorded is not None or self.model is not None
            return SiteInputs(t_s, grid_w=grid_w, battery_w=battery_w if has_battery else None,
                              battery_soc_pct=soc_pct, chargers=chargers)
        return SiteInputs(t_s, solar_w=solar_w, load_w=house_w, chargers=chargers)


def run_site(trace: Trace, site: Site, plant: PlantName = "ideal",
             battery: BatteryModel | None = None,
             plans: Mapping[str, Plans] | None = None,
             params: RealisticParams | None = None) -> SiteSteps:
    """Simulate `site` on `trace`. `battery`: a model for a trace without a recorded one;
    `plans`: each charger's departure plans."""
    return (_run_ideal(trace, site, battery, plans or {}) if plant == "ideal"
            else _run_realistic(trace, site, battery, params or RealisticParams(),
                                plans or {}))


def _apply(site: Site, plans: Mapping[str, Plans], t_s: float) -> None:
    for name, p in plans.items():
        p.apply(site.controllers[name], t_s)


def _run_ideal(trace: Trace, site: Site, battery: BatteryModel | None,
               plans: Mapping[str, Plans]) -> SiteSteps:
    """One site step per row; each car draws its setpoint at once (the row's voltage if
    measured), as `simulate.run_ideal`."""
    n, names = len(trace), [m.name for m in site.members]
    rows, plant = _Rows(n, names), _Plant(trace, battery)
    prev = {name: 0.0 for name in names}
    for i in range(n):
        t_s, dt_s = float(trace.time_s[i]), float(trace.dt_s[i])
        solar_w, house_w = float(trace.solar_w[i]), float(plant.house_w[i])
        export_w = solar_w - house_w - sum(prev.values())
        read_w = plant.battery_at(i, export_w, dt_s, run=False)
        _apply(site, plans, t_s)
        decisions = site.step(plant.inputs(t_s, solar_w, house_w, prev, read_w,
                                           plant.soc_at(i)))
        rows.decided(i, site.status, decisions)
        for name, d in decisions.items():
            caps = site.controllers[name].caps
            volts = trace.voltage_v[i] if math.isfinite(trace.voltage_v[i]) else caps.voltage_v
            prev[name] = rows.ev_w[name][i] = d.current_a * volts * d.phases
        ev_w = sum(prev.values())
        rows.battery_w[i] = plant.battery_at(i, solar_w - house_w - ev_w, dt_s, run=True)
        rows.soc_pct[i] = math.nan if (soc := plant.soc_at(i)) is None else soc
        rows.grid_w[i] = house_w + ev_w + rows.battery_w[i] - solar_w
    return rows.steps(trace.time_s, trace.dt_s, trace.solar_w, plant.house_w)


def _run_realistic(trace: Trace, site: Site, battery: BatteryModel | None,
                   p: RealisticParams, plans: Mapping[str, Plans]) -> SiteSteps:
    """The trace interpolated to 1 s; a site step every `tick_s` on meter values
    `meter_delay_s` late; each car a `simulate.Car`."""
    check_realistic_span(trace)
    t = np.arange(trace.time_s[0], trace.time_s[-1] + 1.0, 1.0)
    shifted = _interpolated(trace, t)
    plant = _Plant(shifted, battery)
    n, names = len(t), [m.name for m in site.members]
    rows = _Rows(n, names)
    cars = {name: Car(p, site.controllers[name].phases) for name in names}
    volts = {name: np.interp(t, trace.time_s[ok], trace.voltage_v[ok])
             if (ok := np.isfinite(trace.voltage_v)).any()
             else np.full(n, site.controllers[name].caps.voltage_v) for name in names}
    solar, house = shifted.solar_w.tolist(), plant.house_w.tolist()
    delay, tick = round(p.meter_delay_s), max(1, round(p.tick_s))
    status = site.status
    for i in range(n):
        now_s = float(t[i])
        if i % tick == 0:
            j = max(0, i - delay)
            soc = plant.soc_at(i) if j == i else float(rows.soc_pct[j])
            _apply(site, plans, now_s)
            decisions = site.step(plant.inputs(
                now_s, solar[j], house[j], {c: float(rows.ev_w[c][j]) for c in names},
                float(rows.battery_w[j]), None if soc is None or math.isnan(soc) else soc))
            status = site.status
            for name, d in decisions.items():
                cars[name].command(now_s, d)
        rows.decided(i, status, {name: car.decision for name, car in cars.items()})
        for name, car in cars.items():
            rows.ev_w[name][i] = car.draw_a(now_s) * volts[name][i] * car.decision.phases
        ev_w = sum(float(rows.ev_w[c][i]) for c in names)
        rows.battery_w[i] = plant.battery_at(i, solar[i] - house[i] - ev_w, 1.0, run=True)
        rows.soc_pct[i] = math.nan if (soc_i := plant.soc_at(i)) is None else soc_i
        rows.grid_w[i] = house[i] + ev_w + rows.battery_w[i] - solar[i]
    dt_s = np.diff(t, prepend=t[:1])
    return rows.steps(t, dt_s, shifted.solar_w, plant.house_w)


def _interpolated(trace: Trace, t: FloatArray) -> Trace:
    """The trace at the times `t` (linear; a recorded battery too)."""
    def at(x: FloatArray | None) -> FloatArray | None:
        return None if x is None else np.interp(t, trace.time_s, x)

    return Trace(trace.name, t, np.interp(t, trace.time_s, trace.solar_w),
                 np.interp(t, trace.time_s, trace.load_w), np.full(len(t), math.nan),
                 at(trace.grid_w), at(trace.battery_w), at(trace.battery_soc_pct))


def summary(trace: Trace, steps: SiteSteps, site: Site) -> dict[str, Any]:
    """summary.json of a site: the site's score and each charger's energy and relay use."""
    h = steps.dt_s / WS_PER_KWH
    return {"trace": trace.name, **steps.score().as_dict(),
            "chargers": {name: {"control": str(site.controllers[name].caps.control),
                                "priority": next(m.priority for m in site.members
                                                 if m.name == name),
                                "ev_kwh": float(np.sum(c.ev_w * h)),
                                "starts": starts(c.charging),
                                "pilot_changes": pilot_changes(c.charging, c.setpoint_a)}
                         for name, c in steps.chargers.items()}}


def write_steps(steps: SiteSteps, out: Path) -> list[Path]:
    """`steps.csv` (the site's totals) and `steps-<charger>.csv` per charger in `out`."""
    paths = [out / "steps.csv"]
    with paths[0].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "dt_s", "solar_w", "load_w", "surplus_w", "ev_w", "grid_w",
                    "battery_w", "battery_soc_pct", "site_limited"])
        ev_w, surplus_w = steps.ev_w, steps.surplus_w
        for i in range(len(steps.time_s)):
            w.writerow([f"{steps.time_s[i]:.0f}", f"{steps.dt_s[i]:g}",
                        *(f"{x[i]:.10g}" for x in (steps.solar_w, steps.load_w, surplus_w,
                                                   ev_w, steps.grid_w, steps.battery_w)),
                        "" if math.isnan(steps.battery_soc_pct[i])
                        else f"{steps.battery_soc_pct[i]:.4g}", int(steps.limited[i])])
    for name, c in steps.chargers.items():
        paths.append(out / f"steps-{name}.csv")
        with paths[-1].open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["time", "dt_s", "share_w", "ev_w", "setpoint_a", "phases", "charging",
                        "reason"])
            for i in range(len(steps.time_s)):
                w.writerow([f"{steps.time_s[i]:.0f}", f"{steps.dt_s[i]:g}",
                            "" if math.isnan(c.share_w[i]) else f"{c.share_w[i]:.10g}",
                            f"{c.ev_w[i]:.10g}", f"{c.setpoint_a[i]:g}", int(c.phases[i]),
                            int(c.charging[i]), c.reasons[i]])
    return paths


def combine(scores: Sequence[SiteScore]) -> SiteScore:
    """Totals over several traces (percentages recomputed from the energy sums)."""
    def total(field: str) -> float:
        return float(sum(getattr(s, field) for s in scores))

    surplus, ev, sun = total("surplus_kwh"), total("ev_kwh"), total("ev_from_sun_kwh")
    grid = total("ev_from_grid_kwh")
    return SiteScore(surplus, ev, sun, total("ev_from_battery_kwh"), grid, _pct(sun, surplus),
                     _pct(grid, ev), sum(s.starts for s in scores),
                     sum(s.pilot_changes for s in scores), total("import_kwh"),
                     total("export_kwh"))
