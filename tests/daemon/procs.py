"""`divert run` as a subprocess, and what systemd would see of it (sd_notify)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path


class NotifyListener:
    """The systemd side of sd_notify: a unix datagram socket collecting messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def fields(self) -> list[str]:
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except TimeoutError:
            pass
        return [f for m in self.messages for f in m.split("\n")]

    def close(self) -> None:
        self.sock.close()


class Run:
    """`divert run` in a subprocess; its log lines are collected as they come."""

    def __init__(self, cfg: Path, notify: NotifyListener | None = None) -> None:
        env = dict(os.environ)
        if notify is not None:
            env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="1000000")
        self.proc = subprocess.Popen([sys.executable, "-m", "divert.cli", "run", "-c",
                                      str(cfg)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def finish(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self._reader.join(5)
