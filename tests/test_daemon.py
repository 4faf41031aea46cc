"""The daemon end to end: real mosquitto, the simulated charger, real clocks (with deadlines)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_support import Publisher, settings, wait_for

from chargers.simulated import Command, SimulatedCharger
from divert.daemon import Daemon


@pytest.fixture
def publisher(mosquitto: Any) -> Iterator[Publisher]:
    pub = Publisher(mosquitto)
    yield pub
    pub.close()


def _sim(daemon: Daemon, name: str = "garage") -> SimulatedCharger:
    charger = daemon.chargers[name]
    assert isinstance(charger, SimulatedCharger)
    return charger


def _after(commands: list[Command], n: int) -> list[tuple[str, float]]:
    return [(c.kind, c.value) for c in commands[n:]]


def _count_of(family: Any) -> float:
    return float(next(s.value for s in family.samples if s.name.endswith("_count")))


def _count(daemon: Daemon) -> float:
    """Control cycles run so far."""
    return _count_of(daemon.metrics.loop_s.collect()[0])


def test_grid_values_become_setpoints(tmp_path: Path, mosquitto: Any,
                                      publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    try:
        sim = _sim(daemon)
        # The first cycle asserts a known state: paused (no surplus known yet).
        wait_for(lambda: sim.commands, what="the first command")
        assert _after(sim.commands, 0) == [("enable", 0.0)]
        # 3000 W export, nothing charging: 13 A at 230 V; the current goes before the enable.
        publisher.until("home/grid", "-3000", lambda: sim.enabled, what="a start")
        assert _after(sim.commands, 1) == [("current", 13.0), ("enable", 1.0)]
        assert daemon.last_decisions["garage"].current_a == 13.0
        # 1990 W: 8 A, and no second enable.
        n = len(sim.commands)
        publisher.until("home/grid", "-1990", lambda: sim.current_a == 8.0, what="8 A")
        assert _after(sim.commands, n) == [("current", 8.0)]
        # The same decision again sends nothing (re-assert is 60 s away).
        n = len(sim.commands)
        cycles = daemon.metrics.loop_s.collect()[0]
        for _ in range(3):
            publisher.publish("home/grid", "-1990")
        wait_for(lambda: _count(daemon) >= _count_of(cycles) + 3, what="three more cycles")
        assert _after(sim.commands, n) == []
        # Too little surplus for 6 A: pause.
        publisher.until("home/grid", "-500", lambda: not sim.enabled, what="a pause")
        assert _after(sim.commands, n) == [("enable", 0.0)]
    finally:
        daemon.stop()
    assert not sim.enabled  # shutdown state "pause"
