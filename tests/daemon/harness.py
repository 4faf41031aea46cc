"""A daemon on a hand-moved clock, driving emulated OpenEVSEs over HTTP on loopback, fed
through a real mosquitto: timing tests without sleeping.

The daemon runs no loop of its own: `tick` moves the clock and runs one cycle. Feed values
travel the real way (publish → broker → paho → feeds) and are stamped with the hand-moved
clock on arrival.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon_support import Publisher, config, wait_for

from chargers.openevse.emulator import EmulatedEvse, HttpEmulator
from divert.config import Settings, validate
from divert.daemon.clock import ManualClock
from divert.daemon.service import Daemon

# A feed value that stays fresh however far a test moves the clock (one value per phase of
# a test is enough); the first value is the feeds' "chance".
LONG_AGE_S = 10 * 365 * 86400.0


def controls(evse: EmulatedEvse) -> list[str]:
    """The control commands the controller received, e.g. ["FS", "SC 13 V", "FE"]."""
    return [" ".join((f.command, *f.params)) for f in evse.commands
            if f.command in ("SC", "FE", "FS", "FD")]


class Evse(EmulatedEvse):
    """The emulated controller, counting its relay closes (FE while sleeping or disabled:
    the pilot offers current again) and calling `on_close` at each, before it acts."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.closes = 0
        self.on_close: Callable[[], None] = lambda: None

    def _command(self, command: str, params: tuple[str, ...]) -> tuple[bool, list[str]]:
        if command == "FE" and not params and self.mode != "enabled":
            self.closes += 1
            self.on_close()
        return super()._command(command, params)


class Rig:
    """Emulated chargers, a config for them, and the daemons run on it (one at a time)."""

    def __init__(self, tmp_path: Path, broker: Any, publisher: Publisher,
                 evses: dict[str, Evse], **overrides: Any) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.publisher = publisher
        self.evses = evses
        self.fronts = {name: HttpEmulator(evse) for name, evse in evses.items()}
        self.clock = ManualClock()
        overrides.setdefault("feeds", {"grid": {"topic": "home/grid", "max_age_s": LONG_AGE_S,
                                                "includes_ev": False}})
        overrides.setdefault("reassert_s", 60.0)
        self.data = config(tmp_path, broker, chargers=[self.entry(n) for n in evses],
                           **overrides)
        self.daemon: Daemon | None = None

    def entry(self, name: str) -> dict[str, Any]:
        return {"name": name, "type": "openevse", "transport": "http",
                "url": self.fronts[name].url, "max_current_a": 32, "timeout_s": 1.0,
                "retries": 0}

    @property
    def settings(self) -> Settings:
        return validate(self.data, Path("test.toml"))

    def start(self, **changes: Any) -> Daemon:
        """A daemon for the config (with top-level `changes`), started without its loop."""
        self.data.update(changes)
        self.daemon = Daemon(self.settings, clock=self.clock)
        self.daemon.start(loop=False)
        return self.daemon

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def grid(self, grid_w: float) -> None:
        """Publish a grid value and wait until the daemon holds it."""
        daemon = self.daemon
        assert daemon is not None
        self.publisher.until("home/grid", f"{grid_w:g}", lambda: daemon.feeds.feeds[
            "grid"]._value == grid_w and daemon.feeds.ages_s()["grid"] == 0,
            what=f"grid {grid_w:g} W at the daemon")

    def tick(self, seconds: float = 1.0, times: int = 1) -> None:
        """Move the clock by `seconds` and run a cycle, `times` times."""
        assert self.daemon is not None
        for _ in range(times):
            self.clock.advance(seconds)
            self.daemon.run_cycle()

    def hold(self, grid_w: float, seconds: float, step_s: float = 30.0) -> None:
        """Keep the grid at `grid_w` for `seconds` (a fresh value every `step_s`)."""
        for _ in range(round(seconds / step_s)):
            self.grid(grid_w)
            self.tick(step_s)

    def until(self, condition: Any, seconds: float = 1.0, limit_s: float = 3600.0) -> float:
        """Tick until `condition()` holds; the clock time it took (AssertionError at
        `limit_s`)."""
        spent_s = 0.0
        while not condition():
            if spent_s >= limit_s:
                raise AssertionError(f"not within {limit_s:g} s of clock time")
            self.tick(seconds)
            spent_s += seconds
        return spent_s

    def close(self) -> None:
        self.stop()
        for front in self.fronts.values():
            front.stop()


@contextmanager
def rig(tmp_path: Path, broker: Any, publisher: Publisher, *names: str,
        charging: bool = False, **overrides: Any) -> Iterator[Rig]:
    """A rig with one emulated controller per name, a car plugged in and asking for charge;
    `charging`: the controller offers current already (else it sleeps)."""
    evses = {}
    for name in names or ("garage",):
        evse = Evse()
        evse.plug_in(requesting=True)
        if not charging:
            evse.mode = "sleeping"
        evses[name] = evse
    made = Rig(tmp_path, broker, publisher, evses, **overrides)
    try:
        yield made
    finally:
        made.close()


def wait_reading(daemon: Daemon, name: str) -> None:
    wait_for(lambda: daemon.readings.get(name), what=f"a reading of {name}")
