"""The `divert` command: one subcommand per job. Errors are one clear line, not a traceback."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from divert import __version__

if TYPE_CHECKING:
    from divert.config import Settings
    from divert.policies.presets import Preset
    from divert.sim.simulate import Plans
    from divert.sim.trace import Trace

# Modules that add subcommands of their own, each through `register(subparsers)`. None of
# them may import numpy or the simulator at module level: `divert run` must not pay for them
# (memory, and a thread that would not block the daemon's signals).
COMMAND_MODULES: tuple[str, ...] = ("divert.daemon.run", "divert.daemon.status",
                                    "chargers.goe_ocpp.cli", "chargers.openevse.cli",
                                    "chargers.evsemaster.cli")


def cmd_check_config(args: argparse.Namespace) -> int:
    from divert.config import ConfigError, load_or_exit, require_charger
    from divert.policies.presets import PresetError, load_preset

    settings = load_or_exit(args.config)
    try:
        load_preset(settings.policy.preset)
    except PresetError as exc:
        print(f"{args.config}: policy.preset: {exc}", file=sys.stderr)
        return 1
    try:
        require_charger(settings, args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in settings.warnings():
        print(f"{args.config}: warning: {warning}", file=sys.stderr)
    names = ", ".join(f"{c.name} ({c.type})" for c in settings.chargers) or "none"
    print(f"{args.config}: valid; preset {settings.policy.preset}, mode {settings.policy.mode},"
          f" chargers: {names}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from divert.config import load_or_exit
    from divert.policies.presets import PresetError, load_preset
    from divert.sim import trace

    settings = load_or_exit(args.config) if args.config else None
    preset_name = args.policy or (settings.policy.preset if settings else "balanced")
    try:
        preset = load_preset(preset_name)
        if args.trace:
            tr = trace.chain([trace.load(path, args.format) for path in args.trace])
        else:
            sample = resources.files("divert.sim").joinpath("data/sample-day.csv")
            tr = trace.parse(sample.read_text(encoding="utf-8"), "sample-day", "native")
    except (PresetError, trace.TraceError) as exc:
        print(f"divert simulate: {exc}", file=sys.stderr)
        return 1
    out: Path = args.out
    battery = tr.battery_w is not None or args.battery_kwh is not None \
        or args.battery_w is not None or (settings is not None and settings.feeds.battery)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if (settings is not None and settings.chargers) or battery:
            return _simulate_site(args, settings, preset, tr, out, bool(battery))
        return _simulate_charger(args, settings, preset, tr, out)
    except trace.TraceError as exc:  # a span the realistic plant cannot hold
        print(f"divert simulate: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise
    except OSError as exc:
        print(f"divert simulate: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _summary_and_plot(data: dict[str, Any], out: Path, as_json: bool,
                      draw: Callable[[], None]) -> bool:
    """Write summary.json and, with the plot extra, the plot (`draw`); print the summary as
    JSON if asked. True when it was printed (nothing more to say)."""
    from divert.sim import plot, simulate

    simulate.write_summary(data, out / "summary.json")
    if plot.available():
        draw()
    elif not as_json:
        print("plot skipped: install the plot extra (pip install 'divert[plot]')")
    if as_json:
        print(json.dumps(data, indent=2))
    return as_json


def _plans(settings: Settings | None, charger: str) -> Plans:
    """The config's departure plans for `charger`, on the trace's clock in its time zone."""
    from zoneinfo import ZoneInfo

    from divert.sim import simulate

    if settings is None:
        return simulate.NO_PLANS
    return simulate.Plans(settings.plans_for(charger), ZoneInfo(settings.timezone))


def _simulate_charger(args: argparse.Namespace, settings: Settings | None, preset: Preset,
                      tr: Trace, out: Path) -> int:
    """The benchmark's charger on its own (with the config's mode, relay limits and plans)."""
    from divert.core.modes import Mode
    from divert.sim import plot, simulate

    caps = simulate.BENCH_CAPS
    mode = settings.policy.mode if settings else Mode.SOLAR
    relay = settings.relay.model_dump() if settings else None
    location = settings.policy.location() if settings else None
    plans = _plans(settings, "")
    steps = simulate.run(tr, lambda: preset.controller(caps, mode, relay, location=location),
                         args.plant, plans)
    data = simulate.summary(tr, steps, caps)
    data.update(policy=preset.name, plant=args.plant, control=str(caps.control))
    days = simulate.daily(steps)
    if len(days) > 1:
        data["days"] = days
    weight = float(preset.params.get("import_weight", simulate.PLAN_IMPORT_WEIGHT))
    outcomes = simulate.plan_outcomes(tr, steps, plans, caps, weight)
    if outcomes:
        data["plans"] = [o.as_dict() for o in outcomes]
    simulate.write_steps(steps, out / "steps.csv")
    title = f"{tr.name}: {preset.name}, {args.plant} plant"
    if _summary_and_plot(data, out, args.json,
                         lambda: plot.plot_day(steps, title, out / "plot.png",
                                               caps.power_w(1.0))):
        return 0
    print(f"{tr.name} with {preset.name} ({args.plant} plant):\n"
          f"  surplus {data['surplus_kwh']:.2f} kWh, EV {data['ev_kwh']:.2f} kWh "
          f"({data['ev_from_surplus_kwh']:.2f} from surplus, "
          f"{data['ev_grid_import_kwh']:.2f} from grid)\n"
          f"  capture {data['capture_pct']:.1f} % (perfect foresight: "
          f"{data['bound_capture_pct']:.1f} %), grid share {data['grid_share_pct']:.1f} %,"
          f" starts {data['starts']}, pilot changes {data['pilot_changes']}")
    if len(days) > 1:
        print(f"  {len(days)} days, state carried from one to the next: starts per day "
              + " ".join(str(d["starts"]) for d in days))
    for o in outcomes:
        print(f"  plan {o.target_kwh:g} kWh by {o.as_dict()['by']}: {o.delivered_kwh:.2f} "
              f"kWh delivered ({'met' if o.met else 'MISSED'}), {o.grid_kwh:.2f} kWh from "
              f"the grid; perfect foresight {o.bound_grid_kwh:.2f} kWh")
    print(f"  written to {out}/")
    return 0


def _simulate_site(args: argparse.Namespace, settings: Settings | None, preset: Preset,
                   tr: Trace, out: Path, with_battery: bool) -> int:
    """The config's whole site (else the benchmark's charger alone), with a home battery:
    the trace's, else the model (for `with_battery`)."""
    from dataclasses import replace

    from divert.core.controller import SiteParams
    from divert.core.modes import Mode
    from divert.core.site import Member
    from divert.sim import plot, simulate
    from divert.sim import site as sim_site

    if settings is not None and settings.chargers:
        members = settings.members()
        caps = {c.name: c.capabilities() for c in settings.chargers}
    else:
        members, caps = [Member("ev")], {"ev": simulate.BENCH_CAPS}
    # The simulated grid meter sees the chargers, whatever the config's meter does.
    params = replace(settings.site_params() if settings else SiteParams(),
                     grid_includes_ev=True)
    site = preset.site(members, caps, settings.policy.mode if settings else Mode.SOLAR,
                       settings.relay.model_dump() if settings else None,
                       settings.site_rules() if settings else None, params,
                       settings.policy.location() if settings else None)
    battery = None
    if with_battery and tr.battery_w is None:
        model = sim_site.BatteryModel()
        kwh = model.capacity_kwh if args.battery_kwh is None else args.battery_kwh
        power_w = model.max_charge_w if args.battery_w is None else args.battery_w
        try:
            battery = sim_site.BatteryModel(kwh, power_w, power_w)
        except ValueError as exc:
            print(f"divert simulate: {exc}", file=sys.stderr)
            return 1
    plans = {m.name: _plans(settings, m.name) for m in members}
    steps = sim_site.run_site(tr, site, args.plant, battery, plans)
    data = sim_site.summary(tr, steps, site)
    data.update(policy=preset.name, plant=args.plant)
    sim_site.write_steps(steps, out)
    title = f"{tr.name}: {preset.name}, {args.plant} plant"
    if _summary_and_plot(data, out, args.json,
                         lambda: plot.plot_site(steps, title, out / "plot.png")):
        return 0
    print(f"{tr.name}, {len(members)} charger(s) with {preset.name} ({args.plant} plant):\n"
          f"  surplus {data['surplus_kwh']:.2f} kWh, EV {data['ev_kwh']:.2f} kWh "
          f"({data['ev_from_sun_kwh']:.2f} from the sun, {data['ev_from_battery_kwh']:.2f} "
          f"from the battery, {data['ev_from_grid_kwh']:.2f} from the grid)\n"
          f"  capture {data['capture_pct']:.1f} %, grid share {data['grid_share_pct']:.1f} %, "
          f"starts {data['starts']}, import {data['import_kwh']:.2f} kWh, "
          f"export {data['export_kwh']:.2f} kWh")
    for name, c in data["chargers"].items():
        print(f"  {name} ({c['control']}, priority {c['priority']}): {c['ev_kwh']:.2f} kWh, "
              f"starts {c['starts']}, pilot changes {c['pilot_changes']}")
    print(f"  written to {out}/")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from divert.sim.bench import cmd_bench

    return cmd_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="divert", description=__doc__)
    parser.add_argument("--version", action="version", version=f"divert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("simulate", help="run the controller over a solar/load trace")
    p.add_argument("--trace", type=Path, action="append",
                   help="CSV trace (default: the bundled sample day); give several to run "
                   "them as consecutive days with the controller's state carried across")
    p.add_argument("--format", choices=("auto", "native", "openevse"), default="auto")
    p.add_argument("--policy", help="preset name in policies/ or a TOML path")
    p.add_argument("--config", type=Path, help="simulate its whole site: chargers, policy, "
                   "relay limits, [site] and battery")
    p.add_argument("--battery-kwh", type=float, help="a home battery of this capacity for a "
                   "trace without one (default with [feeds.battery]: 10)")
    p.add_argument("--battery-w", type=float, help="its charge and discharge power, W "
                   "(default 5000)")
    p.add_argument("--plant", choices=("ideal", "realistic"), default="ideal")
    p.add_argument("--out", type=Path, default=Path("out/simulate"), help="output directory")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("bench", help="score every preset and OpenEVSE's divert on a folder of "
                       "days")
    p.add_argument("--data", type=Path, help="folder of traces (default: the OpenEVSE test "
                   "days in ../shared/data/openevse)")
    p.add_argument("--plant", choices=("ideal", "realistic"), default="ideal")
    p.add_argument("--out", type=Path, help="write <plant>.md and <plant>.png here")
    p.set_defaults(func=cmd_bench)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():  # `divert run -c x -v` as well as `divert -v run …`
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The exit status: 0, or 1 with one line per problem on stderr (no traceback), also
    when interrupted (Ctrl-C) or when the reader of the output goes away (`| head`)."""
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if not args.verbose:  # httpx logs every request at INFO: every charger poll, every loop
            logging.getLogger("httpx").setLevel(logging.WARNING)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("divert: interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Nothing more can be written to stdout; point it at /dev/null so that the flush at
        # exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("divert: output closed early (broken pipe)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
