"""`divert status -c CONFIG [--json]`: the running daemon's state, one block per charger.

Read from the daemon's `/api/state` on its `[metrics] listen` address. Exit 0 with the state,
3 when no daemon answers (as `systemctl status` does for a stopped unit), 1 for an unusable
config or an answer that is not divert's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from divert.config import load_or_exit
from divert.netconf import listen_address

NOT_RUNNING = 3
TIMEOUT_S = 5.0


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="show the running daemon's state (mode, setpoint, "
                                      "reason, starts left, energy today)")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.add_argument("--json", action="store_true", help="print /api/state's JSON as it is")
    p.set_defaults(func=cmd_status)


def state_url(listen: str) -> str:
    """Where a client on this machine reaches `/api/state` of a daemon listening on
    `listen` (an any-address listener is reached on loopback)."""
    host, port = listen_address(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/api/state"


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.config)
    if not settings.metrics.listen:
        print(f"{args.config}: metrics.listen is off (\"\"); divert status reads the running "
              "daemon's state from that listener", file=sys.stderr)
        return 1
    url = state_url(settings.metrics.listen)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            print(f"divert is starting: no control cycle yet ({url})", file=sys.stderr)
            return NOT_RUNNING
        print(f"{url} answered HTTP {exc.code}: is that divert?", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"divert is not running: nothing answers on {url} ({reason}).\n"
              f"Start it with: systemctl start divert (or divert run -c {args.config})",
              file=sys.stderr)
        return NOT_RUNNING
    except ValueError:
        print(f"{url} did not answer with JSON: is that divert?", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    try:
        print(render(data))
    except (KeyError, TypeError, ValueError) as exc:
        print(f"{url} answered JSON divert does not know ({exc!r}): is that divert?",
              file=sys.stderr)
        return 1
    return 0


def _w(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} W"


def render(data: dict[str, Any], now_s: float | None = None) -> str:
    """The screen `divert status` prints for an `/api/state` answer."""
    now_s = time.time() if now_s is None else now_s
    at = datetime.fromtimestamp(data["time_s"]).strftime("%Y-%m-%d %H:%M:%S")
    site = data["site"]
    feeds = ", ".join(f"{name} {f['health']}" for name, f in site["feeds"].items()) or "none"
    lines = [f"divert {data['version']} · mode {data['mode']} · {at} "
             f"({max(0.0, now_s - data['time_s']):.0f} s ago)",
             f"site: surplus {_w(site['surplus_w'])} · grid {_w(site['grid_w'])} · "
             f"feeds: {feeds}"]
    if site.get("limited") is not None:
        lines.append(f"  site limit {_w(site['limit_w'])}: "
                     f"{'limiting' if site['limited'] else 'not reached'}")
    for c in data["chargers"]:
        state = f"charging {c['setpoint_a']:g} A" if c["charging"] else "paused"
        if not c["connected"]:
            state += ", not connected"
        boost = "" if c["boost_until_s"] is None else " · boost until " + \
            datetime.fromtimestamp(c["boost_until_s"]).strftime("%H:%M")
        lines += ["",
                  f"{c['name']}: mode {c['mode']}{boost} · {state} · power {_w(c['power_w'])}",
                  f"  reason:       {c['reason']} [{c['code']}]",
                  f"  starts:       {c['starts_today']} today · {c['starts_left_hour']} left "
                  f"this hour, {c['starts_left_day']} in 24 h",
                  f"  energy today: {c['energy_from_surplus_today_kwh']:.2f} kWh from surplus, "
                  f"{c['energy_from_grid_today_kwh']:.2f} kWh from grid",
                  f"  current:      {c['min_current_a']:g}–{c['max_current_a']:g} A"]
    return "\n".join(lines)
