"""Run the control core against a trace and a plant; score the result.

Two plants:

* `ideal` — the benchmark plant of the reference (§3): one decision per trace row, the EV
  draws the commanded current the moment it is commanded.
* `realistic` — the trace interpolated to 1 s; the controller runs every `tick_s` on meter
  values that arrive `meter_delay_s` late; the EV follows a new current after `ev_delay_s`
  at `ev_ramp_a_per_s`, and draws nothing for `ev_start_delay_s` after a start.

Both call `Controller.step` exactly as the daemon does.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller, Decision, Inputs
from divert.core.plan import WINDOW_S, PlanSpec, target_now
from divert.core.reasons import Reason
from divert.sim.oracle import OraclePlant, bound_at_share, plan_bound
from divert.sim.score import Score, score
from divert.sim.trace import FloatArray, Trace, TraceError

PlantName = Literal["ideal", "realistic"]
# The realistic plant keeps every second in memory (about 300 bytes each): a week is ~200 MB.
MAX_REALISTIC_SPAN_S = 7 * 86400.0

# The reference's ideal plant: 240 V single phase, 6–32 A in whole amps.
BENCH_CAPS = Capabilities(control=ControlKind.CURRENT, min_current_a=6, max_current_a=32,
                          step_a=1.0, phases=1, voltage_v=240.0)


@dataclass(frozen=True)
class RealisticParams:
    """The realistic plant's parameters (times in s, ramp in A/s)."""

    tick_s: float = 5.0  # the daemon's control interval
    meter_delay_s: float = 2.0  # a meter reading reaches the controller this late
    ev_delay_s: float = 2.0  # the EV reacts to a new current after this long
    ev_ramp_a_per_s: float = 3.0  # and then ramps at this rate
    ev_start_delay_s: float = 8.0  # after a start the EV draws nothing this long


@dataclass(frozen=True)
class Steps:
    """One row per simulated step; `dt_s` is how long the row's powers hold."""

    time_s: FloatArray
    dt_s: FloatArray
    solar_w: FloatArray
    load_w: FloatArray
    surplus_w: FloatArray
    ev_w: FloatArray
    setpoint_a: FloatArray
    charging: np.ndarray[Any, np.dtype[np.bool_]]
    reasons: list[str]
    phases: npt.NDArray[np.int_]  # phases in use (the decision's, also while off)

    def score(self) -> Score:
        return score(self.surplus_w, self.ev_w, self.dt_s, self.charging, self.setpoint_a)


def _inputs(t_s: float, solar_w: float, load_w: float, ev_w: float, metered: bool) -> Inputs:
    """What the daemon would read: a grid meter that sees the EV, or solar and load feeds."""
    if metered:
        return Inputs(time_s=t_s, grid_w=load_w + ev_w - solar_w, ev_w=ev_w)
    return Inputs(time_s=t_s, solar_w=solar_w, load_w=load_w)


@dataclass(frozen=True)
class Plans:
    """Departure plans for a simulation: the specs and the time zone of their clock."""

    specs: Sequence[PlanSpec]
    tz: tzinfo = UTC

    def apply(self, controller: Controller, t_s: float) -> None:
        """Give the controller its target now (the trace's time is the wall clock)."""
        if self.specs:
            controller.set_target(target_now(self.specs, t_s, t_s, self.tz))


NO_PLANS = Plans(())
PLAN_IMPORT_WEIGHT = 3.0  # the perfect-foresight plan's import weight for presets without one


def run_ideal(trace: Trace, controller: Controller, plans: Plans = NO_PLANS,
              step_times_s: list[float] | None = None) -> Steps:
    """One decision per row; EV power = setpoint × voltage (the row's measured voltage if any).
    `step_times_s`, if given, receives how long each `Controller.step` took."""
    n = len(trace)
    ev_w = np.zeros(n)
    setpoint_a = np.zeros(n)
    charging = np.zeros(n, dtype=bool)
    phases = np.zeros(n, dtype=np.int_)
    reasons: list[str] = []
    metered = trace.grid_w is not None
    phases_v = controller.caps.voltage_v
    prev_ev_w = 0.0
    for i in range(n):
        t_s = float(trace.time_s[i])
        plans.apply(controller, t_s)
        inputs = _inputs(t_s, float(trace.solar_w[i]), float(trace.load_w[i]), prev_ev_w,
                         metered)
        if step_times_s is None:
            d = controller.step(inputs)
        else:
            began_s = time.perf_counter()
            d = controller.step(inputs)
            step_times_s.append(time.perf_counter() - began_s)
        volts = trace.voltage_v[i] if math.isfinite(trace.voltage_v[i]) else phases_v
        prev_ev_w = ev_w[i] = d.current_a * volts * d.phases
        setpoint_a[i], charging[i], phases[i] = d.current_a, d.charging, d.phases
        reasons.append(d.reason)
    return Steps(trace.time_s, trace.dt_s, trace.solar_w, trace.load_w, trace.surplus_w, ev_w,
                 setpoint_a, charging, reasons, phases)


def check_realistic_span(trace: Trace) -> None:
    """TraceError if the realistic plant could not hold `trace` second by second."""
    span_s = float(trace.time_s[-1] - trace.time_s[0])
    if span_s > MAX_REALISTIC_SPAN_S:
        raise TraceError(f"{trace.name}: spans {span_s / 86400:.1f} days; the realistic plant "
                         f"simulates every second of at most {MAX_REALISTIC_SPAN_S / 86400:.0f}"
                         f" days (split the trace, or use the ideal plant)")


def run_realistic(trace: Trace, controller: Controller,
                  params: RealisticParams | None = None, plans: Plans = NO_PLANS) -> Steps:
    """The trace interpolated to 1 s; the controller every `tick_s` on delayed meter values.

    The per-second EV model runs on plain floats (a numpy scalar access costs more than the
    arithmetic); the controller is called exactly as the daemon calls it. TraceError for a
    trace longer than MAX_REALISTIC_SPAN_S."""
    check_realistic_span(trace)
    p = params or RealisticParams()
    t = np.arange(trace.time_s[0], trace.time_s[-1] + 1.0, 1.0)
    solar_w = np.interp(t, trace.time_s, trace.solar_w)
    load_w = np.interp(t, trace.time_s, trace.load_w)
    has_volts = np.isfinite(trace.voltage_v)
    volts_v = (np.interp(t, trace.time_s[has_volts], trace.voltage_v[has_volts])
               if has_volts.any() else np.full(len(t), controller.caps.voltage_v))
    n = len(t)
    times, solar, load, volts = t.tolist(), solar_w.tolist(), load_w.tolist(), volts_v.tolist()
    ev_w = [0.0] * n
    setpoint_a = [0.0] * n
    charging = [False] * n
    phases = [controller.phases] * n
    reasons = [""] * n
    metered = trace.grid_w is not None
    delay = round(p.meter_delay_s)
    tick = max(1, round(p.tick_s))
    car = Car(p, controller.phases)
    for i in range(n):
        now_s = times[i]
        if i % tick == 0:
            j = max(0, i - delay)
            plans.apply(controller, now_s)
            car.command(now_s, controller.step(_inputs(now_s, solar[j], load[j], ev_w[j],
                                                       metered)))
        decision = car.decision
        ev_w[i] = car.draw_a(now_s) * volts[i] * decision.phases
        setpoint_a[i], charging[i] = decision.current_a, decision.charging
        phases[i], reasons[i] = decision.phases, decision.reason
    dt_s = np.diff(t, prepend=t[:1])
    return Steps(t, dt_s, solar_w, load_w, np.maximum(0.0, solar_w - load_w), np.asarray(ev_w),
                 np.asarray(setpoint_a), np.asarray(charging, dtype=bool), reasons,
                 np.asarray(phases, dtype=np.int_))


class Car:
    """One car of the realistic plant: it follows a new current after `ev_delay_s` at
    `ev_ramp_a_per_s` and draws nothing for `ev_start_delay_s` after a start. Plain floats:
    it runs every simulated second."""

    def __init__(self, p: RealisticParams, phases: int) -> None:
        self.p = p
        self.decision = Decision(False, 0.0, 0.0, phases, "", Reason.NO_DATA)
        self.target_a = self.target_from_s = self.drawing_a = 0.0
        self.started_s = -math.inf

    def command(self, now_s: float, new: Decision) -> None:
        if new.charging and not self.decision.charging:
            self.started_s = now_s
        if new.current_a != self.decision.current_a:
            self.target_a, self.target_from_s = new.current_a, now_s + self.p.ev_delay_s
        self.decision = new

    def draw_a(self, now_s: float) -> float:
        if not self.decision.charging:
            self.drawing_a = 0.0
        elif now_s >= self.started_s + self.p.ev_start_delay_s and now_s >= self.target_from_s:
            ramp_a = self.p.ev_ramp_a_per_s
            self.drawing_a = (min(self.target_a, self.drawing_a + ramp_a)
                              if self.drawing_a < self.target_a
                              else max(self.target_a, self.drawing_a - ramp_a))
        return self.drawing_a


def run(trace: Trace, make_controller: Callable[[], Controller],
        plant: PlantName = "ideal", plans: Plans = NO_PLANS) -> Steps:
    controller = make_controller()
    return run_ideal(trace, controller, plans) if plant == "ideal" \
        else run_realistic(trace, controller, plans=plans)


def oracle_plant(caps: Capabilities) -> OraclePlant:
    return OraclePlant(caps.min_current_a * caps.phases, caps.max_current_a * caps.phases,
                       caps.voltage_v, caps.step_a * caps.phases)


def summary(trace: Trace, steps: Steps, caps: Capabilities) -> dict[str, Any]:
    """summary.json: the score, plus the perfect-foresight bound at the same grid share."""
    s = steps.score()
    limit = bound_at_share(trace.surplus_w, trace.dt_s, oracle_plant(caps), s.grid_share_pct)
    out: dict[str, Any] = {"trace": trace.name, **s.as_dict()}
    out["bound_capture_pct"] = limit.capture_pct
    out["capture_of_bound"] = s.capture_pct / limit.capture_pct if limit.capture_pct else 0.0
    return out


@dataclass(frozen=True)
class PlanOutcome:
    """One deadline of an energy plan: what the controller delivered in the 24 h before it,
    against the perfect-foresight plan with the same target (energies in kWh)."""

    by_s: float
    target_kwh: float
    delivered_kwh: float
    grid_kwh: float  # EV-caused import in the window
    possible: bool  # the charger's full power could deliver the target in the window
    bound_grid_kwh: float  # the perfect-foresight plan's import in the window

    @property
    def met(self) -> bool:
        return self.delivered_kwh >= self.target_kwh - 1e-6

    def as_dict(self) -> dict[str, Any]:
        return {"by": datetime.fromtimestamp(self.by_s, UTC).isoformat(),
                "target_kwh": self.target_kwh, "delivered_kwh": round(self.delivered_kwh, 3),
                "met": self.met, "possible": self.possible,
                "grid_kwh": round(self.grid_kwh, 3),
                "bound_grid_kwh": round(self.bound_grid_kwh, 3)}


def plan_outcomes(trace: Trace, steps: Steps, plans: Plans, caps: Capabilities,
                  import_weight: float, start_cost_kwh: float = 0.2) -> list[PlanOutcome]:
    """Every deadline of the energy plans within the trace (state-of-charge plans need a car
    model the simulator does not have)."""
    out = []
    first_s, last_s = float(trace.time_s[0]), float(trace.time_s[-1])
    step_h = steps.dt_s / 3600.0
    for spec in plans.specs:
        if spec.energy_wh is None:
            continue
        need_kwh = spec.energy_wh / 1000.0
        for by_s in spec.deadlines(first_s, last_s, plans.tz):
            mine = (steps.time_s > by_s - WINDOW_S) & (steps.time_s <= by_s)
            rows = (trace.time_s > by_s - WINDOW_S) & (trace.time_s <= by_s)
            delivered = float(np.sum(steps.ev_w[mine] * step_h[mine])) / 1000.0
            grid = float(np.sum(np.maximum(0.0, steps.ev_w - steps.surplus_w)[mine]
                                * step_h[mine])) / 1000.0
            best = plan_bound(trace.surplus_w[rows], trace.dt_s[rows], oracle_plant(caps),
                              import_weight, start_cost_kwh, int(np.sum(rows)), need_kwh)
            out.append(PlanOutcome(by_s, need_kwh, delivered, grid, best.met,
                                   best.score.ev_grid_import_kwh))
    return out


def daily(steps: Steps) -> list[dict[str, Any]]:
    """The score of each UTC day the steps cover."""
    day = np.floor(steps.time_s / 86400.0)
    out = []
    for d in np.unique(day):
        rows = day == d
        s = score(steps.surplus_w[rows], steps.ev_w[rows], steps.dt_s[rows],
                  steps.charging[rows], steps.setpoint_a[rows])
        date = datetime.fromtimestamp(float(d) * 86400.0, UTC).date().isoformat()
        out.append({"date": date, **s.as_dict()})
    return out


def write_steps(steps: Steps, path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "dt_s", "solar_w", "load_w", "surplus_w", "ev_w", "setpoint_a",
                    "charging", "reason"])
        for i in range(len(steps.time_s)):
            w.writerow([f"{steps.time_s[i]:.0f}", f"{steps.dt_s[i]:g}",
                        f"{steps.solar_w[i]:.10g}", f"{steps.load_w[i]:.10g}",
                        f"{steps.surplus_w[i]:.10g}", f"{steps.ev_w[i]:.10g}",
                        f"{steps.setpoint_a[i]:g}", int(steps.charging[i]), steps.reasons[i]])


def write_summary(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
