"""`divert run -c CONFIG`: the daemon in the foreground, as systemd runs it.

Signals are taken synchronously: the main thread blocks SIGTERM, SIGINT and SIGHUP before any
other thread exists (threads inherit the mask) and waits for them with sigwait. SIGTERM and
SIGINT stop cleanly (exit 0); SIGHUP reloads the config, keeping the running one if the new
one is invalid.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from divert.config import ConfigError
from divert.daemon.reload import build, reload, start
from divert.daemon.sdnotify import Notifier

log = logging.getLogger(__name__)

SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the daemon (foreground; systemd: Type=notify)")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    path: Path = args.config
    notifier = Notifier.from_env()
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        daemon = build(path, notifier=notifier)
        start(daemon, path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    notifier.ready(daemon.status_line())
    while True:
        signum = signal.sigwait(SIGNALS)
        if signum == signal.SIGHUP:
            log.info("SIGHUP: reloading %s", path)
            try:
                daemon = reload(daemon, path, notifier)
            except ConfigError as exc:  # not even the previous configuration starts again
                print(exc, file=sys.stderr)
                return 1
            continue
        log.info("%s: stopping", signal.Signals(signum).name)
        notifier.stopping()
        daemon.stop()
        return 0
