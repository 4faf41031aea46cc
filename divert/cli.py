"""The `divert` command: one subcommand per job. Errors are one clear line, not a traceback."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from divert import __version__

# Modules that add subcommands of their own, each through `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = ("divert.daemon.run", "divert.daemon.status",
                                    "chargers.goe_ocpp.cli",
                                    "chargers.openevse.cli", "chargers.evsemaster.cli",
                                    "divert.sim.bench")


def cmd_check_config(args: argparse.Namespace) -> int:
    from divert.config import load_or_exit
    from divert.policies.presets import PresetError, load_preset

    settings = load_or_exit(args.config)
    try:
        load_preset(settings.policy.preset)
    except PresetError as exc:
        print(f"{args.config}: policy.preset: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(f"{c.name} ({c.type})" for c in settings.chargers) or "none"
    print(f"{args.config}: valid; preset {settings.policy.preset}, mode {settings.policy.mode},"
          f" chargers: {names}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from divert.config import load_or_exit
    from divert.core.modes import Mode
    from divert.policies.presets import PresetError, load_preset
    from divert.sim import plot, simulate, trace

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
    caps = simulate.BENCH_CAPS
    mode = Mode.SOLAR
    plans = simulate.NO_PLANS
    location = None
    if settings is not None:
        mode = settings.policy.mode
        location = settings.policy.location()
        if settings.chargers:
            caps = settings.chargers[0].capabilities()
        charger = settings.chargers[0].name if settings.chargers else ""
        plans = simulate.Plans(settings.plans_for(charger), ZoneInfo(settings.timezone))
    relay = settings.relay.model_dump() if settings else None
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
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    simulate.write_steps(steps, out / "steps.csv")
    simulate.write_summary(data, out / "summary.json")
    if plot.available():
        plot.plot_day(steps, f"{tr.name}: {preset.name}, {args.plant} plant", out / "plot.png",
                      caps.power_w(1.0))
    elif not args.json:
        print("plot skipped: install the plot extra (pip install 'divert[plot]')")
    if args.json:
        print(json.dumps(data, indent=2))
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
    p.add_argument("--config", type=Path, help="take policy, relay limits and charger from it")
    p.add_argument("--plant", choices=("ideal", "realistic"), default="ideal")
    p.add_argument("--out", type=Path, default=Path("out/simulate"), help="output directory")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    p.set_defaults(func=cmd_simulate)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # httpx logs every request at INFO: every charger poll, every loop
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
