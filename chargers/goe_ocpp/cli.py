"""`divert goe-setup`: point a go-eCharger at divert's OCPP server (see `setup`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("goe-setup", help="point a go-eCharger at divert's OCPP server",
                       description="Write ocppe/ocppu (and the certificate to trust) through "
                                   "the go-e's local HTTP API v2, then read back whether it "
                                   "is connected (ocppc) and accepted (ocppa).")
    p.add_argument("--host", required=True, help="the go-e's address (host or host:port)")
    p.add_argument("--url", help="OCPP server URL to write, ending in the charge box id, e.g. "
                                 "ws://goe-1:PASSWORD@divert-host:8887/goe-1 (omit to only "
                                 "read the status)")
    p.add_argument("--server-cert", type=Path,
                   help="PEM certificate the go-e should trust for a wss:// URL (divert's "
                        "ocpp.tls_cert when it is self-signed)")
    p.add_argument("--wait", type=float, default=None,
                   help="seconds to wait for the go-e to connect (default: 30 after "
                        "writing, 0 when only reading)")
    p.set_defaults(func=cmd_goe_setup)


def _yes(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else repr(value)


def describe(status: dict[str, Any]) -> str:
    from chargers.goe_ocpp.setup import redact

    url = status.get("ocppu")
    shown = redact(url) if isinstance(url, str) else repr(url)
    lines = [f"OCPP enabled (ocppe): {_yes(status.get('ocppe'))}",
             f"server URL (ocppu): {shown}",
             f"connected (ocppc): {_yes(status.get('ocppc'))}",
             f"accepted (ocppa): {_yes(status.get('ocppa'))}"]
    if status.get("ocpple"):
        lines.append(f"last error (ocpple): {status['ocpple']}")
    return "\n".join(lines)


def cmd_goe_setup(args: argparse.Namespace) -> int:
    from chargers.goe_ocpp.setup import GoEApi, SetupError, setup

    writing = args.url is not None or args.server_cert is not None
    wait_s = args.wait if args.wait is not None else (30.0 if writing else 0.0)
    api = GoEApi(args.host)
    try:
        status = setup(api, args.url, args.server_cert, wait_s)
    except SetupError as exc:
        print(f"divert goe-setup: {exc}", file=sys.stderr)
        return 1
    finally:
        api.close()
    if writing:
        print(f"written to the go-e at {api.base}")
    print(describe(status))
    if status.get("ocppa") is not True:
        print("divert goe-setup: the go-e is not connected to an OCPP server that accepted it"
              + ("" if writing else " (give --url to point it at divert)"), file=sys.stderr)
        return 1
    return 0
