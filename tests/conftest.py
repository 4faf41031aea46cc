"""Shared fixtures: a private mosquitto broker on a free port, and the reference data."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_support import Publisher

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "openevse"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                          if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto); `make test` "
                    "installs it when run as root")
    return found


@dataclass
class Broker:
    """A running private mosquitto. `stop()` and `start()` simulate an outage."""

    host: str
    port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([_mosquitto_binary(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"mosquitto exited: {err}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A private broker on a free loopback port, anonymous access, no persistence."""
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = Broker("127.0.0.1", port, conf)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def openevse_data() -> Path:
    """The 12 public OpenEVSE days, read from ../shared (GPL-3.0 origin: never copied here).

    A user's clone has no ../shared: the tests that need the days skip, saying so. CI has it,
    so there a missing folder fails rather than skipping quietly."""
    if not DATA.is_dir():
        why = f"reference data not found at {DATA} (the shared/ folder beside the repo)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return DATA


@pytest.fixture
def publisher(mosquitto: Broker) -> Iterator[Publisher]:
    """An MQTT client on the private broker, for publishing feed values."""
    pub = Publisher(mosquitto)
    yield pub
    pub.close()
