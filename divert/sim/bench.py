"""`divert bench`: every preset against OpenEVSE's own divert on a folder of days.

Each trace is one day (the OpenEVSE test days are). Per preset: per file and in total,
capture, grid share, starts (mean and worst day), pilot changes and capture as a fraction of
the perfect-foresight bound at the same grid share, all scored as the reference's §3
(`divert.sim.score`). Extra tables: restart-only control (a charger that must stop and start
again to change current) under the balanced preset's relay guard, the gain of 1/3-phase
switching on the same days scaled ×3 in power (a larger array) against three-phase-only
control, and the site (`divert.sim.bench_site`): two cars sharing the surplus, and the home
battery's modes. On the ideal plant three more: a departure plan on every day against the
perfect-foresight plan with the same target, every preset on the days perturbed
(`divert.sim.perturb`), and what one control step costs. Markdown and a plot go to `--out`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path

import numpy as np

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller
from divert.core.plan import PlanSpec, parse_days, parse_time_of_day
from divert.policies.presets import Preset, PresetError, load_preset
from divert.sim import bench_site, simulate, trace
from divert.sim.oracle import OraclePlant, bound, bound_at_share
from divert.sim.perturb import load_redrawn, scaled, shifted
from divert.sim.score import Score, combine

OWN_PRESETS = ("solar-only", "balanced", "max-solar")
PREDICTIVE = "predictive"
BASELINES = ("openevse-noimport", "openevse-default", "openevse-nowaste")
PRESETS = (*OWN_PRESETS, PREDICTIVE, *BASELINES)
TWINS = {"solar-only": "openevse-noimport", "balanced": "openevse-default",
         "max-solar": "openevse-nowaste"}
RESTART_GAP_S = 60.0  # the EVSEMaster driver's default pause between stop and start
RESTART_CAPS = replace(simulate.BENCH_CAPS, control=ControlKind.RESTART,
                       restart_gap_s=RESTART_GAP_S)
# A three-phase installation for the phase-switching table: 3 × 230 V, 6–16 A.
THREE_PHASE_CAPS = Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 3, 230.0)
PHASE_SCALE = 3.0
START_COST_KWH = 0.2  # the oracle's price of a start, as in the reference's frontier
FRONTIER_WEIGHTS = (100.0, 10.0, 5.0, 3.0, 2.0, 1.0, 0.8, 0.5)
# The departure-plan scenario: this much by this time (the traces' clock, UTC) every day.
PLAN = PlanSpec(parse_time_of_day("17:00"), parse_days("*"), energy_wh=10_000.0)
PLAN_PRESETS = ("balanced", PREDICTIVE)
PERTURBATIONS: tuple[tuple[str, Callable[[Sequence[trace.Trace]], list[trace.Trace]]], ...] = (
    ("× 0.8", lambda ts: scaled(ts, 0.8)), ("× 1.25", lambda ts: scaled(ts, 1.25)),
    ("1 h earlier", lambda ts: shifted(ts, -1.0)), ("1 h later", lambda ts: shifted(ts, 1.0)),
    ("house load redrawn", load_redrawn))


class BenchError(Exception):
    """Bad benchmark input: one line for the user."""


def default_data_dir() -> Path:
    """The reference days beside the checkout (`../shared/data/openevse`), else relative to
    the working directory."""
    beside = Path(__file__).resolve().parents[3] / "shared" / "data" / "openevse"
    return beside if beside.is_dir() else Path.cwd().parent / "shared" / "data" / "openevse"


def load_traces(data_dir: Path) -> list[trace.Trace]:
    if not data_dir.is_dir():
        raise BenchError(f"no trace folder at {data_dir} (give one with --data DIR)")
    paths = sorted(data_dir.glob("*.csv"))
    if not paths:
        raise BenchError(f"no *.csv traces in {data_dir}")
    try:
        return [trace.load(p) for p in paths]
    except trace.TraceError as exc:
        raise BenchError(str(exc)) from None


@dataclass(frozen=True)
class DayResult:
    """One trace under one controller: its score, relay use and the oracle's capture."""

    name: str
    score: Score
    worst_day_starts: int  # most starts on one calendar day (UTC) of this trace
    days: int
    switches: int  # phase switches while charging
    bound_capture_pct: float | None  # perfect foresight at no more grid share

    @property
    def of_bound(self) -> float | None:
        if not self.bound_capture_pct:
            return None
        return self.score.capture_pct / self.bound_capture_pct


@dataclass(frozen=True)
class Result:
    """One controller over all traces."""

    label: str
    description: str
    days: list[DayResult]
    total_bound_capture_pct: float | None

    @property
    def total(self) -> Score:
        return combine([d.score for d in self.days])

    @property
    def n_days(self) -> int:
        return sum(d.days for d in self.days)

    @property
    def starts_per_day(self) -> float:
        return self.total.starts / self.n_days

    @property
    def worst_day(self) -> int:
        return max(d.worst_day_starts for d in self.days)

    @property
    def switches_per_day(self) -> float:
        return sum(d.switches for d in self.days) / self.n_days

    @property
    def pilot_changes_per_day(self) -> float:
        return self.total.pilot_changes / self.n_days

    @property
    def of_bound(self) -> float | None:
        if not self.total_bound_capture_pct:
            return None
        return self.total.capture_pct / self.total_bound_capture_pct


def _calendar(steps: simulate.Steps) -> tuple[int, int]:
    """(days covered, most starts on one UTC day)."""
    on = steps.charging
    starts = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
    day = np.floor(steps.time_s / 86400.0).astype(np.int64)
    days = int(day[-1] - day[0]) + 1 if len(day) else 1
    per_day = np.unique(day[starts], return_counts=True)[1]
    return days, int(per_day.max()) if len(per_day) else 0


def _switches(steps: simulate.Steps) -> int:
    """Changes of the phase count between two charging steps (each a relay cycle)."""
    both = steps.charging[1:] & steps.charging[:-1]
    return int(np.count_nonzero(both & (np.diff(steps.phases) != 0)))


def _combined_bound(traces: Sequence[trace.Trace], plant: OraclePlant, weight: float) -> Score:
    return combine([bound(t.surplus_w, t.dt_s, plant, weight, START_COST_KWH) for t in traces])


def total_bound_at_share(traces: Sequence[trace.Trace], plant: OraclePlant,
                         grid_share_pct: float) -> Score:
    """The oracle's best total capture over `traces` at no more total grid share: one import
    weight λ for all days, bisected on a log scale (as `divert.sim.oracle.bound_at_share`)."""
    lo, hi = math.log(0.5), math.log(1000.0)
    best = _combined_bound(traces, plant, 1000.0)
    if best.grid_share_pct > grid_share_pct:
        return best
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        trial = _combined_bound(traces, plant, math.exp(mid))
        if trial.grid_share_pct <= grid_share_pct:
            best, hi = trial, mid
        else:
            lo = mid
    return best


def run_controller(label: str, description: str, traces: Sequence[trace.Trace],
                   make: Callable[[], Controller], plant: simulate.PlantName,
                   with_bound: bool = True) -> Result:
    """Simulate every trace with a fresh controller; score and bound each."""
    days: list[DayResult] = []
    caps: Capabilities | None = None
    for tr in traces:
        controller = make()
        caps = controller.caps
        steps = (simulate.run_ideal(tr, controller) if plant == "ideal"
                 else simulate.run_realistic(tr, controller))
        s = steps.score()
        n_days, worst = _calendar(steps)
        limit = None
        if with_bound:
            limit = bound_at_share(tr.surplus_w, tr.dt_s, simulate.oracle_plant(caps),
                                   s.grid_share_pct, START_COST_KWH).capture_pct
        days.append(DayResult(tr.name, s, worst, n_days, _switches(steps), limit))
    total_limit = None
    if with_bound and caps is not None:
        share = combine([d.score for d in days]).grid_share_pct
        total_limit = total_bound_at_share(traces, simulate.oracle_plant(caps),
                                          share).capture_pct
    return Result(label, description, days, total_limit)


def run_preset(preset: Preset, traces: Sequence[trace.Trace], plant: simulate.PlantName,
               caps: Capabilities = simulate.BENCH_CAPS, label: str | None = None,
               description: str | None = None, with_bound: bool = True) -> Result:
    def make() -> Controller:
        return preset.controller(caps)

    what = "OpenEVSE's algorithm" if preset.kind == "openevse" else "divert's policy"
    return run_controller(label or preset.name, description or f"{what}, "
                          f"policies/{preset.name}.toml", traces, make, plant, with_bound)


@dataclass(frozen=True)
class PhaseGain:
    preset: str
    fixed: Result  # three phases only
    switching: Result  # 1/3-phase switching


@dataclass(frozen=True)
class PlanRun:
    """One preset with the departure plan on every day."""

    preset: str
    days: list[tuple[str, simulate.PlanOutcome]]

    @property
    def met(self) -> int:
        return sum(o.met for _, o in self.days)

    @property
    def possible(self) -> int:
        return sum(o.possible for _, o in self.days)

    @property
    def grid_kwh(self) -> float:
        return sum(o.grid_kwh for _, o in self.days)

    @property
    def bound_grid_kwh(self) -> float:
        return sum(o.bound_grid_kwh for _, o in self.days)


def run_plan(preset: Preset, traces: Sequence[trace.Trace]) -> PlanRun:
    """Every day with `PLAN`, a fresh controller each; against the perfect-foresight plan
    with the same target and the preset's import weight."""
    plans = simulate.Plans((PLAN,), UTC)
    weight = float(preset.params.get("import_weight", simulate.PLAN_IMPORT_WEIGHT))
    days = []
    for tr in traces:
        steps = simulate.run_ideal(tr, preset.controller(simulate.BENCH_CAPS), plans)
        for outcome in simulate.plan_outcomes(tr, steps, plans, simulate.BENCH_CAPS, weight,
                                              START_COST_KWH):
            days.append((tr.name, outcome))
    return PlanRun(preset.name, days)


@dataclass(frozen=True)
class Robustness:
    """One preset on the days as they are and on each perturbation of them."""

    preset: str
    base: Result
    perturbed: list[Result]  # in the order of PERTURBATIONS


def run_robustness(preset: Preset, traces: Sequence[trace.Trace], base: Result) -> Robustness:
    return Robustness(preset.name, base,
                      [run_preset(preset, perturb(traces), "ideal", with_bound=False)
                       for _, perturb in PERTURBATIONS])


@dataclass(frozen=True)
class Cost:
    """What one `Controller.step` costs, µs, over every row of the days."""

    preset: str
    mean_us: float
    p99_us: float
    max_us: float


def decision_cost(preset: Preset, traces: Sequence[trace.Trace]) -> Cost:
    times_s: list[float] = []
    for tr in traces:
        simulate.run_ideal(tr, preset.controller(simulate.BENCH_CAPS), step_times_s=times_s)
    us = np.asarray(times_s) * 1e6
    return Cost(preset.name, float(np.mean(us)), float(np.percentile(us, 99)), float(us.max()))


@dataclass(frozen=True)
class Bench:
    plant: simulate.PlantName
    data_dir: Path
    presets: list[Result]
    restart: Result
    phases: list[PhaseGain]
    frontier: list[tuple[float, Score]]  # (λ, oracle total) over the traces, whole amps
    site: bench_site.SiteBench
    plans: list[PlanRun]  # the ideal plant only, like the next two
    robustness: list[Robustness]
    costs: list[Cost]


def run_bench(traces: Sequence[trace.Trace], plant: simulate.PlantName, data_dir: Path,
              names: Sequence[str] = PRESETS) -> Bench:
    presets = [load_preset(n) for n in names]
    results = [run_preset(p, traces, plant) for p in presets]
    balanced = load_preset("balanced")
    restart = run_preset(balanced, traces, plant, RESTART_CAPS, "balanced, restart-only",
                         f"policies/balanced.toml on a restart-only charger (a new current is "
                         f"a stop and a start, {RESTART_GAP_S:g} s apart)")
    big = scaled(traces, PHASE_SCALE)
    switching_caps = replace(THREE_PHASE_CAPS, phase_switching=True)
    phases = [PhaseGain(p.name,
                        run_preset(p, big, plant, THREE_PHASE_CAPS, with_bound=False),
                        run_preset(p, big, plant, switching_caps, with_bound=False))
              for p in presets if p.name in OWN_PRESETS]
    plant_o = simulate.oracle_plant(simulate.BENCH_CAPS)
    frontier = [(w, _combined_bound(traces, plant_o, w)) for w in FRONTIER_WEIGHTS]
    site = bench_site.run_site_bench(traces, plant, balanced)
    plans, robustness, costs = [], [], []
    if plant == "ideal":
        plans = [run_plan(p, traces) for p in presets if p.name in PLAN_PRESETS]
        robustness = [run_robustness(p, traces, r) for p, r in zip(presets, results,
                                                                    strict=True)]
        costs = [decision_cost(p, traces) for p in presets]
    return Bench(plant, data_dir, results, restart, phases, frontier, site, plans,
                 robustness, costs)


# --- formatting ------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}"


def _preset_rows(r: Result) -> tuple[list[str], list[list[str]]]:
    head = ["file", "surplus kWh", "capture %", "grid share %", "starts", "pilot changes",
            "% of bound"]
    rows = [[d.name, f"{d.score.surplus_kwh:.2f}", f"{d.score.capture_pct:.1f}",
             f"{d.score.grid_share_pct:.1f}", str(d.score.starts), str(d.score.pilot_changes),
             _pct(d.of_bound)] for d in r.days]
    t = r.total
    days = f"{r.n_days} day" + ("s" if r.n_days != 1 else "")
    rows.append([f"total ({days})", f"{t.surplus_kwh:.2f}", f"{t.capture_pct:.1f}",
                 f"{t.grid_share_pct:.2f}", f"{r.starts_per_day:.2f}/day, worst {r.worst_day}",
                 f"{r.pilot_changes_per_day:.1f}/day", _pct(r.of_bound)])
    return head, rows


def _summary_rows(results: Sequence[Result]) -> tuple[list[str], list[list[str]]]:
    head = ["controller", "capture %", "grid share %", "starts/day", "worst day",
            "pilot changes/day", "% of bound"]
    rows = [[r.label, f"{r.total.capture_pct:.1f}", f"{r.total.grid_share_pct:.2f}",
             f"{r.starts_per_day:.2f}", str(r.worst_day), f"{r.pilot_changes_per_day:.1f}",
             _pct(r.of_bound)] for r in results]
    return head, rows


def _phase_rows(gains: Sequence[PhaseGain]) -> tuple[list[str], list[list[str]]]:
    head = ["preset", "3-phase only: capture % / grid share % / starts/day",
            "1/3-phase switching: capture % / grid share % / starts/day / switches/day",
            "capture gain, points"]
    rows = []
    for g in gains:
        f, s = g.fixed, g.switching
        rows.append([g.preset,
                     f"{f.total.capture_pct:.1f} / {f.total.grid_share_pct:.2f} / "
                     f"{f.starts_per_day:.2f}",
                     f"{s.total.capture_pct:.1f} / {s.total.grid_share_pct:.2f} / "
                     f"{s.starts_per_day:.2f} / {s.switches_per_day:.2f}",
                     f"{s.total.capture_pct - f.total.capture_pct:+.1f}"])
    return head, rows


def _plan_rows(runs: Sequence[PlanRun]) -> tuple[list[str], list[list[str]]]:
    head = ["file"] + [f"{r.preset}: delivered / grid / perfect-foresight grid, kWh"
                       for r in runs]
    rows = []
    for i, (name, _) in enumerate(runs[0].days):
        cells = [name]
        for r in runs:
            o = r.days[i][1]
            flag = "" if o.met else (" MISSED" if o.possible else " (impossible)")
            cells.append(f"{o.delivered_kwh:.2f}{flag} / {o.grid_kwh:.2f} / "
                         f"{o.bound_grid_kwh:.2f}")
        rows.append(cells)
    total = [f"total ({len(runs[0].days)} days)"]
    for r in runs:
        ratio = r.grid_kwh / r.bound_grid_kwh if r.bound_grid_kwh else math.inf
        total.append(f"met {r.met} of {r.possible} / {r.grid_kwh:.2f} / "
                     f"{r.bound_grid_kwh:.2f} (× {ratio:.2f})")
    rows.append(total)
    return head, rows


def _brief(r: Result) -> str:
    return (f"{r.total.capture_pct:.1f} / {r.total.grid_share_pct:.2f} / "
            f"{r.starts_per_day:.2f} ({r.worst_day})")


def _robustness_rows(runs: Sequence[Robustness]) -> tuple[list[str], list[list[str]]]:
    head = ["preset", "as recorded", *(name for name, _ in PERTURBATIONS), "all perturbed"]
    rows = [[r.preset, _brief(r.base), *(_brief(p) for p in r.perturbed),
             _brief(_pooled(r))] for r in runs]
    return head, rows


def _pooled(r: Robustness) -> Result:
    """Every perturbed day of one preset as one result."""
    return Result(r.preset, "", [d for p in r.perturbed for d in p.days], None)


def _cost_rows(costs: Sequence[Cost]) -> tuple[list[str], list[list[str]]]:
    head = ["preset", "mean µs", "p99 µs", "max µs"]
    return head, [[c.preset, f"{c.mean_us:.0f}", f"{c.p99_us:.0f}", f"{c.max_us:.0f}"]
                  for c in costs]


def _text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(head, widths, strict=True)))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_text(b: Bench) -> str:
    parts = []
    for r in [*b.presets, b.restart]:
        head, rows = _preset_rows(r)
        parts.append(f"{r.label} ({b.plant} plant): {r.description}\n"
                     + _text_table(head, rows))
    parts.append(f"Totals ({b.plant} plant)\n" + _text_table(*_summary_rows(
        [*b.presets, b.restart])))
    parts.append(f"1/3-phase switching ({b.plant} plant; the days × {PHASE_SCALE:g} in power, "
                 "3 × 230 V, 6–16 A)\n" + _text_table(*_phase_rows(b.phases)))
    n_days = b.presets[0].n_days
    parts.append(f"Site: two cars ({b.plant} plant; the days × "
                 f"{bench_site.TWO_CAR_SCALE:g} in power, two 6–16 A chargers at 230 V, "
                 "balanced; car a has the higher priority)\n"
                 + _text_table(*bench_site.two_car_rows(b.site.two_cars, n_days)))
    parts.append(f"Site: home battery ({b.plant} plant; 10 kWh, 5 kW, 90 % round trip, 50 % "
                 "at dawn; balanced)\n"
                 + _text_table(*bench_site.battery_rows(b.site.battery, n_days)))
    if b.plans:
        parts.append(f"Departure plan ({_plan_label()})\n" + _text_table(*_plan_rows(b.plans)))
    if b.robustness:
        parts.append("Perturbed days (capture % / grid share % / starts per day (worst day))\n"
                     + _text_table(*_robustness_rows(b.robustness)))
    if b.costs:
        parts.append("Decision cost per control step\n" + _text_table(*_cost_rows(b.costs)))
    return "\n\n".join(parts) + "\n"


def _plan_label() -> str:
    return f"{(PLAN.energy_wh or 0) / 1000:g} kWh by {PLAN.by:%H:%M} UTC every day"


def render_markdown(b: Bench, plot_name: str | None) -> str:
    out = [f"# Benchmark, {b.plant} plant",
           "",
           f"Generated by `divert bench --plant {b.plant}` on the {len(b.presets[0].days)} "
           f"days in `{b.data_dir.name}/`; scored as the reference's §3. "
           "`% of bound`: capture as a share of what a controller with perfect foresight "
           "captures at the same grid share (whole amps, 0.2 kWh per start).",
           "", "## Totals", "", _md_table(*_summary_rows([*b.presets, b.restart])), ""]
    if plot_name:
        out += [f"![capture against grid share]({plot_name})", ""]
    out += ["## 1/3-phase switching", "",
            f"The same days × {PHASE_SCALE:g} in power on a three-phase charger "
            "(3 × 230 V, 6–16 A): three phases only, against switching to one phase when the "
            "surplus cannot carry the three-phase minimum. A switch under load is a relay "
            "cycle and counts as a start in the guard's budget.", "",
            _md_table(*_phase_rows(b.phases)), ""]
    n_days = b.presets[0].n_days
    out += ["## The site: two cars", "",
            f"The same days × {bench_site.TWO_CAR_SCALE:g} in power, two single-phase 6–16 A "
            "chargers (230 V) running the balanced preset; car a has the higher priority. "
            "`each alone` is what two chargers did before the site step, each seeing the "
            "whole surplus (a meter that does not see them). Capture and grid share of the "
            "cars together; starts of both.", "",
            _md_table(*bench_site.two_car_rows(b.site.two_cars, n_days)), "",
            "## The site: home battery", "",
            "The same days, the benchmark's charger running the balanced preset, and a home "
            "battery (`divert.sim.site.BatteryModel`: 10 kWh, 5 kW both ways, 90 % round "
            "trip, 50 % at the start of each day, self-consumption) in each `[site] battery` "
            "mode. Capture counts the car's energy straight from the sun; the battery's part "
            "is what it gives beyond the house's shortfall.", "",
            _md_table(*bench_site.battery_rows(b.site.battery, n_days)), ""]
    for r in [*b.presets, b.restart]:
        out += [f"## {r.label}", "", r.description, "", _md_table(*_preset_rows(r)), ""]
    if b.plans:
        out += ["## Departure plan", "",
                f"Every day with the plan `{_plan_label()}`, a fresh controller each. "
                "Delivered: energy in the 24 h before the deadline (the day up to it); grid: "
                "the EV-caused import in that time; perfect-foresight grid: the same for the "
                "best plan that meets the same target, with the preset's import weight and "
                f"{START_COST_KWH:g} kWh per start (`divert.sim.oracle.plan_bound`).", "",
                _md_table(*_plan_rows(b.plans)), ""]
    if b.robustness:
        out += ["## Perturbed days", "",
                "Every preset on the days scaled in power, with the sun an hour earlier or "
                "later on the clock (a measured house load stays), and with the house load "
                "redrawn (`divert.sim.perturb`): capture % / grid share % / starts per day "
                "(worst day).", "", _md_table(*_robustness_rows(b.robustness)), ""]
    if b.costs:
        out += ["## Decision cost", "",
                "The time one `Controller.step` takes (policy, guard and all), over every "
                "row of the days, on the machine that ran the benchmark.", "",
                _md_table(*_cost_rows(b.costs)), ""]
    return "\n".join(out)


def plot(b: Bench, path: Path) -> None:
    """Capture against grid share for every controller, with the oracle's frontier; starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    xs = [s.grid_share_pct for _, s in b.frontier]
    ys = [s.capture_pct for _, s in b.frontier]
    ax.plot(xs, ys, "k--", lw=1, label="perfect foresight (whole amps)")
    colours = {"solar-only": "#2ca02c", "balanced": "#1f77b4", "max-solar": "#d62728",
               PREDICTIVE: "#9467bd"}
    for r in [*b.presets, b.restart]:
        own = r.label in colours
        twin = next((k for k, v in TWINS.items() if v == r.label), None)
        colour = colours.get(r.label) or colours.get(twin or "", "#7f7f7f")
        marker = "o" if own else ("s" if twin else "D")
        ax.plot(r.total.grid_share_pct, r.total.capture_pct, marker, ms=9,
                color=colour, mfc=colour if own else "none", label=r.label)
    ax.set_xlabel("grid share of the EV's energy, %")
    ax.set_ylabel("capture of the surplus, %")
    ax.set_title(f"Capture against import ({b.plant} plant)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    labels = [r.label for r in [*b.presets, b.restart]]
    means = [r.starts_per_day for r in [*b.presets, b.restart]]
    worst = [r.worst_day for r in [*b.presets, b.restart]]
    y = np.arange(len(labels))
    ax2.barh(y - 0.2, means, 0.4, color="#1f77b4", label="mean")
    ax2.barh(y + 0.2, worst, 0.4, color="#aec7e8", label="worst day")
    ax2.set_yticks(y, labels, fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("starts per day")
    ax2.set_title("Relay starts")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- command ---------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    from divert.sim import plot as plot_mod

    data_dir: Path = args.data or default_data_dir()
    try:
        traces = load_traces(data_dir)
        b = run_bench(traces, args.plant, data_dir)
    except (BenchError, PresetError) as exc:
        print(f"divert bench: {exc}", file=sys.stderr)
        return 1
    print(render_text(b), end="")
    if args.out is not None:
        out: Path = args.out
        try:
            out.mkdir(parents=True, exist_ok=True)
            plot_name = None
            if plot_mod.available():
                plot_name = f"{args.plant}.png"
                plot(b, out / plot_name)
            else:
                print("plot skipped: install the plot extra (pip install 'divert[plot]')")
            (out / f"{args.plant}.md").write_text(render_markdown(b, plot_name))
        except OSError as exc:
            print(f"divert bench: cannot write to {out}: {exc}", file=sys.stderr)
            return 1
        print(f"written to {out}/{args.plant}.md")
    return 0
