"""`divert rapi -c CONFIG [--charger NAME] '$GS'`: send one RAPI command, print the reply.

The debugging tool OpenEVSE users reach for, over whichever transport the config names.
Quote the command: `$` is special to the shell. `$SC n` without `V` writes EEPROM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chargers.base import ChargerError
from chargers.openevse import rapi
from chargers.openevse.config import OpenEVSEConfig


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rapi", help="send one RAPI command to an OpenEVSE and print the reply",
        description="Send one RAPI command to an OpenEVSE charger from the config and print "
                    "its reply. Exit 0 on $OK, 1 on $NK or when the charger does not answer.")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.add_argument("--charger", help="the [[chargers]] name (default: the only OpenEVSE)")
    p.add_argument("command", help="e.g. '$GS', '$GG', '$SC 16 V' (the $ may be left out)")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"divert rapi: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from chargers.openevse.driver import OpenEVSECharger
    from chargers.openevse.transports import make_transport
    from divert.config import ConfigError, load

    try:
        settings = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    chargers = [c for c in settings.chargers if isinstance(c, OpenEVSEConfig)]
    if args.charger is not None:
        chargers = [c for c in chargers if c.name == args.charger]
        if not chargers:
            return _fail(f"{args.config}: no OpenEVSE charger named {args.charger!r}")
    elif len(chargers) != 1:
        names = ", ".join(c.name for c in chargers)
        return _fail(f"{args.config}: {len(chargers)} OpenEVSE chargers"
                     + (f" ({names}): choose one with --charger" if chargers else ""))
    text = args.command.strip()
    try:
        frame = rapi.decode(text if text.startswith("$") else "$" + text)
    except rapi.RapiError as exc:
        return _fail(f"not a RAPI command: {exc}")
    if frame.is_reply or frame.is_async:
        return _fail(f"${frame.command} is a reply or notification, not a command")
    config = chargers[0]
    charger = OpenEVSECharger(config, make_transport(config, settings.mqtt))
    try:
        charger.open()
        reply = charger.request(frame.command, *frame.params)
    except ChargerError as exc:
        return _fail(str(exc))
    finally:
        charger.close()
    print(reply.text())
    return 0 if reply.ok else 1
