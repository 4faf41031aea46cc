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

from divert.config import ConfigError, Settings, load, require_charger
from divert.daemon.sdnotify import Notifier
from divert.daemon.service import Daemon
from divert.netconf import MqttError
from divert.policies.presets import PresetError

log = logging.getLogger(__name__)

SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the daemon (foreground; systemd: Type=notify)")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.set_defaults(func=cmd_run)


def _build(path: Path, settings: Settings | None = None,
           notifier: Notifier | None = None) -> Daemon:
    """A Daemon from the config file (or given settings); ConfigError if unusable."""
    settings = settings or load(path)
    require_charger(settings, path)
    try:
        return Daemon(settings, notifier)
    except PresetError as exc:
        raise ConfigError(path, (f"policy.preset: {exc}",)) from None


def _start(daemon: Daemon, path: Path) -> None:
    try:
        daemon.start()
    except MqttError as exc:
        raise ConfigError(path, (str(exc),)) from None
    except OSError as exc:
        raise ConfigError(path, (f"metrics.listen: cannot listen on "
                                 f"{daemon.settings.metrics.listen}: {exc}",)) from None


def _reload(daemon: Daemon, path: Path, notifier: Notifier) -> Daemon:
    """The daemon for the new config, or the running one if the new config is unusable."""
    try:
        new = _build(path, notifier=notifier)
    except ConfigError as exc:
        log.error("reload refused, keeping the running configuration:\n%s", exc)
        return daemon
    notifier.reloading()
    daemon.stop(handover=True)
    try:
        _start(new, path)
    except ConfigError as exc:
        log.error("reload failed, restarting with the previous configuration:\n%s", exc)
        new = _build(path, daemon.settings, notifier)
        _start(new, path)
    log.info("configuration reloaded from %s", path)
    notifier.ready(new.status_line())
    return new


def cmd_run(args: argparse.Namespace) -> int:
    path: Path = args.config
    notifier = Notifier.from_env()
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        daemon = _build(path, notifier=notifier)
        _start(daemon, path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    notifier.ready(daemon.status_line())
    while True:
        signum = signal.sigwait(SIGNALS)
        if signum == signal.SIGHUP:
            log.info("SIGHUP: reloading %s", path)
            try:
                daemon = _reload(daemon, path, notifier)
            except ConfigError as exc:  # not even the previous configuration starts again
                print(exc, file=sys.stderr)
                return 1
            continue
        log.info("%s: stopping", signal.Signals(signum).name)
        notifier.stopping()
        daemon.stop()
        return 0
