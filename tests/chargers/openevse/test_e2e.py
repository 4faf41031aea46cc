"""The daemon controls an emulated OpenEVSE end to end, over each transport.

Grid values go through a real mosquitto; the daemon builds the driver from `[[chargers]]`,
connects, and drives the emulator. After an emulated reboot (the volatile current is lost)
the charger gets its setpoint back at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker
from daemon_support import Publisher, settings, wait_for

from chargers.base import ChargerReading
from chargers.openevse.driver import OpenEVSECharger
from chargers.openevse.emulator import EmulatedEvse
from chargers.openevse.rapi import EvseState
from divert.daemon.service import Daemon

from .conftest import TRANSPORTS, RigFactory

_ids = itertools.count(1)


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    pub = Publisher(broker)
    yield pub
    pub.close()


def _daemon(charger: dict[str, Any], broker: Broker, tmp_path: Path) -> tuple[Daemon, str]:
    """A daemon (not started) for one charger, on a grid topic and client id of its own."""
    n = next(_ids)
    grid = f"home{n}/grid"
    daemon = Daemon(settings(
        tmp_path, broker, chargers=[charger], reassert_s=1.0,
        mqtt={"host": broker.host, "port": broker.port, "client_id": f"divert-e2e{n}"},
        feeds={"grid": {"topic": grid, "max_age_s": 60, "includes_ev": False}}))
    return daemon, grid


def _controls(c: EmulatedEvse) -> list[str]:
    """The control commands the controller received, e.g. ["FS", "SC 13 V", "FE"]."""
    return [" ".join((f.command, *f.params)) for f in c.commands
            if f.command in ("SC", "FE", "FS", "FD")]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_daemon_controls_the_emulator(transport: str, make_rig: RigFactory, broker: Broker,
                                      publisher: Publisher, tmp_path: Path) -> None:
    c = EmulatedEvse(eeprom_current_a=16)
    c.plug_in(requesting=True)
    rig = make_rig(transport, c, max_current_a=16)
    daemon, grid = _daemon(rig.config_entry, broker, tmp_path)
    name = rig.config.name
    daemon.start()
    try:
        assert isinstance(daemon.chargers[name], OpenEVSECharger)
        # Found charging at 16 A: adopted, not paused; no command before a first feed value.
        wait_for(lambda: daemon.readings.get(name), what="a first reading")
        assert _controls(c) == []
        # 3000 W export: 13 A at 230 V, the current before the enable.
        publisher.until(grid, "-3000", lambda: c.current_a == 13, what="13 A")
        sent = _controls(c)
        assert sent.index("SC 13 V") < sent.index("FE") and "FS" not in sent
        reading = wait_for(lambda: (r := daemon.readings.get(name)) and r.current_a == 13 and r,
                           what="a reading at 13 A (reads are paced: one a second)")
        assert reading.charging and reading.power_w == pytest.approx(13 * 230)
        # 1990 W: 8 A.
        publisher.until(grid, "-1990", lambda: c.current_a == 8, what="8 A")
        assert daemon.last_decisions[name].current_a == 8
        # A reboot forgets the volatile 8 A and comes back at the EEPROM's 16 A; 8 A is
        # set again without any new grid value.
        c.reboot()
        assert c.current_a == 16
        wait_for(lambda: c.current_a == 8, what="the setpoint re-asserted after the reboot")
        assert c.state == EvseState.CHARGING and c.eeprom_current_a == 16
        # Too little surplus for 6 A: pause.
        publisher.until(grid, "-500", lambda: c.state == EvseState.SLEEPING, what="a pause")
    finally:
        daemon.stop()
    assert c.state == EvseState.SLEEPING  # the shutdown state "pause"
    assert c.eeprom_writes == 0


def test_daemon_keeps_running_while_the_charger_is_silent(make_rig: RigFactory,
                                                          broker: Broker,
                                                          publisher: Publisher,
                                                          tmp_path: Path) -> None:
    c = EmulatedEvse()
    c.plug_in()
    rig = make_rig("serial", c, max_current_a=16, timeout_s=0.2, retries=1)
    daemon, grid = _daemon(rig.config_entry, broker, tmp_path)
    daemon.start()
    try:
        publisher.until(grid, "-3000", lambda: c.current_a == 13, what="13 A")
        c.drop_next(1000)  # the controller stops answering
        errors = daemon.metrics.command_errors
        wait_for(lambda: any(s.value >= 2 for s in errors.collect()[0].samples
                             if s.name.endswith("_total")), what="command errors counted")
        c.clear_faults()  # it answers again
        publisher.until(grid, "-1990", lambda: c.current_a == 8, what="8 A after the outage")
    finally:
        daemon.stop()


def test_an_implausible_reading_is_counted_logged_once_and_not_used(
        make_rig: RigFactory, broker: Broker, publisher: Publisher, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    c = EmulatedEvse()
    c.plug_in()
    rig = make_rig("serial", c, max_current_a=16)
    daemon, grid = _daemon(rig.config_entry, broker, tmp_path)
    name = rig.config.name

    def read_errors() -> float:
        return daemon.metrics.registry.get_sample_value(
            "divert_charger_command_errors_total", {"charger": name, "command": "read"}) or 0.0

    seen: list[ChargerReading | None] = []

    def watched(condition: Callable[[], bool]) -> Callable[[], bool]:
        """`condition`, noting every reading the daemon holds while it is polled."""
        return lambda: seen.append(daemon.readings.get(name)) or condition()

    daemon.start()
    try:
        publisher.until(grid, "-3000", lambda: c.state == EvseState.CHARGING, what="a start")
        caplog.clear()
        c.answer_next("GG", "$OK 1" + "0" * 92 + " 230000", count=4)  # 10^92 mA
        wait_for(watched(lambda: read_errors() >= 4), what="4 read errors")
        # The loop carries on: the next sane reading is used and control goes on.
        publisher.until(grid, "-1990", watched(lambda: c.current_a == 8), what="8 A")
        wait_for(watched(lambda: (r := daemon.readings.get(name)) is not None
                         and r.current_a == 8), what="a reading of 8 A")
    finally:
        daemon.stop()
    assert read_errors() == 4
    failures = [r.getMessage() for r in caplog.records if "read failed" in r.getMessage()]
    assert len(failures) == 1 and "implausible" in failures[0], failures
    assert None in seen  # the broken reading was dropped, not kept …
    assert all(r is None or r.current_a is None or r.current_a <= 16 for r in seen)  # … nor used
