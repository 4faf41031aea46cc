"""Building a daemon from a config file, and reloading it (SIGHUP).

A reload hands over from the running daemon to one built from the new file. An unusable new
config is logged and the running daemon kept. Otherwise the old daemon stops with a handover:
chargers still configured stay as they are, removed ones get their shutdown state. The state
file carries the relay histories, counters, mode and the policies' memory across; the new
daemon keeps a removed charger's history for 24 h (it may come back). If the new daemon cannot
start (its metrics address is taken), the previous configuration starts again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from divert.config import ConfigError, Settings, load
from divert.daemon.clock import Clock
from divert.daemon.sdnotify import Notifier
from divert.daemon.service import Daemon
from divert.netconf import MqttError
from divert.policies.presets import PresetError

log = logging.getLogger(__name__)


def build(path: Path, settings: Settings | None = None, notifier: Notifier | None = None,
          clock: Clock | None = None) -> Daemon:
    """A Daemon from the config file (or given settings); ConfigError if unusable."""
    settings = settings or load(path)
    try:
        return Daemon(settings, notifier, clock)
    except PresetError as exc:
        raise ConfigError(path, (f"policy.preset: {exc}",)) from None


def start(daemon: Daemon, path: Path, loop: bool = True) -> None:
    """`daemon.start()`, with its errors as ConfigError."""
    try:
        daemon.start(loop)
    except MqttError as exc:
        raise ConfigError(path, (str(exc),)) from None
    except OSError as exc:
        raise ConfigError(path, (f"metrics.listen: cannot listen on "
                                 f"{daemon.settings.metrics.listen}: {exc}",)) from None


def reload(daemon: Daemon, path: Path, notifier: Notifier, loop: bool = True) -> Daemon:
    """The daemon for the new config, or the running one if the new config is unusable.

    ConfigError only if not even the previous configuration starts again."""
    try:
        new = build(path, notifier=notifier, clock=daemon.clock)
    except ConfigError as exc:
        log.error("reload refused, keeping the running configuration:\n%s", exc)
        return daemon
    notifier.reloading()
    daemon.stop(handover=set(new.chargers))
    try:
        start(new, path, loop)
    except ConfigError as exc:
        log.error("reload failed, restarting with the previous configuration:\n%s", exc)
        new = build(path, daemon.settings, notifier, daemon.clock)
        start(new, path, loop)
    log.info("configuration reloaded from %s", path)
    notifier.ready(new.status_line())
    return new
