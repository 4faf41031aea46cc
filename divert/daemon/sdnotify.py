"""systemd's notify protocol, spoken directly: datagrams to $NOTIFY_SOCKET.

Without NOTIFY_SOCKET (not started by systemd) every call does nothing. The watchdog is fed
from the control loop itself, so a stuck loop gets the service restarted.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, socket_path: str | None = None, watchdog_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._address = socket_path
        if socket_path is not None and socket_path.startswith("@"):
            self._address = "\0" + socket_path[1:]  # Linux abstract namespace
        self.watchdog_s = watchdog_s
        self._clock = clock
        self._fed_s: float | None = None
        self._status = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd asked for; WATCHDOG_USEC/WATCHDOG_PID as sd_watchdog_enabled."""
        watchdog_s = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog_s = int(usec) / 1e6
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_s)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> None:
        """Send `KEY=value` fields in one datagram; a failure is logged, never raised."""
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self._address, exc)

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}")

    def status(self, text: str) -> None:
        """Update the status line (shown by systemctl status) when it changed."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        """Feed the watchdog, at most twice per WatchdogSec."""
        if self.watchdog_s is None:
            return
        now_s = self._clock()
        if self._fed_s is None or now_s - self._fed_s >= self.watchdog_s / 2:
            self._fed_s = now_s
            self.send("WATCHDOG=1")

    def reloading(self) -> None:
        self.send("RELOADING=1", "STATUS=reloading configuration")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")
