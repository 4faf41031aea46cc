"""`divert evsemaster discover`: list the EVSEMaster chargers broadcasting on the LAN."""

from __future__ import annotations

import argparse
import sys

from chargers.evsemaster.protocol import APP_PORT


def cmd_discover(args: argparse.Namespace) -> int:
    from chargers.evsemaster.session import discover

    try:
        seen = discover(args.timeout, port=args.port, bind_host=args.bind)
    except OSError as exc:
        print(f"divert evsemaster discover: cannot listen on UDP port {args.port}: "
              f"{exc.strerror} (stop divert or the other EVSEMaster app first)", file=sys.stderr)
        return 1
    if not seen:
        print(f"no EVSEMaster charger heard in {args.timeout:g} s. A charger broadcasts only "
              f"while no app is logged in (close the phone app), and broadcasts do not cross "
              f"VLANs or Docker bridge networks.", file=sys.stderr)
        return 1
    rows = [("SERIAL", "BRAND", "MODEL", "IP", "PHASES", "MAX A")]
    rows += [(s.serial, s.info.brand, s.info.model, s.address[0], str(s.info.phases),
              str(s.info.max_current_a)) for s in seen]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `evsemaster discover` to the `divert` command."""
    parser = subparsers.add_parser("evsemaster", help="EVSEMaster chargers (Besen, Telestar, …)")
    sub = parser.add_subparsers(dest="evsemaster_command", required=True)
    p = sub.add_parser("discover", help="list the chargers broadcasting on the LAN")
    p.add_argument("--timeout", type=float, default=12.0,
                   help="seconds to listen (chargers broadcast about every 5 s; default 12)")
    p.add_argument("--port", type=int, default=APP_PORT, help=f"UDP port (default {APP_PORT})")
    p.add_argument("--bind", default="", help="local address to listen on (default: all)")
    p.set_defaults(func=cmd_discover)
