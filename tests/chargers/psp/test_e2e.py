"""The daemon throttles the PSP EVSE emulator from MQTT grid values through a real mosquitto.

Three-phase charger at 230 V: 6 A is 4140 W, 16 A (its ChargeCurrent) 11040 W. The grid feed
does not see the EV, so a grid value of −X W is X W of surplus whatever the car draws.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from daemon_support import Publisher, settings, wait_for

from chargers.psp.driver import PSPCharger
from chargers.psp.emulator import PSPEmulator
from chargers.psp.webapi import EVSE_CTRL
from divert.daemon.service import Daemon

ALLOWED = {"EVSEPowerAvailable", "ChargeStartToggle"}


def _psp_charger(emulator: PSPEmulator) -> dict[str, Any]:
    return {"name": "garage", "type": "psp", "url": emulator.url, "phases": 3,
            "min_current_a": 6, "max_current_a": 16, "timeout_s": 1, "retry_backoff_s": 0.05}


def _ctrl_writes(emulator: PSPEmulator) -> list[tuple[str, Any]]:
    """The EvseCtrl writes in order, one (key, value) per key."""
    return [(key, value) for r in list(emulator.requests) if r.method == "POST"
            for key, value in r.body.items()]


def _cycles(daemon: Daemon) -> float:
    """Control cycles run so far."""
    family = daemon.metrics.loop_s.collect()[0]
    return float(next(s.value for s in family.samples if s.name.endswith("_count")))


def test_daemon_throttles_the_psp_emulator(tmp_path: Path, mosquitto: Any,
                                           publisher: Publisher) -> None:
    with PSPEmulator() as emu:
        emu.plug_in()
        daemon = Daemon(settings(tmp_path, mosquitto, chargers=[_psp_charger(emu)]))
        assert isinstance(daemon.chargers["garage"], PSPCharger)
        daemon.start()
        try:
            # 6000 W of surplus: start at the largest power within it.
            publisher.until("home/grid", "-6000", lambda: emu.started and emu.power_w > 0,
                            what="a start")
            writes = _ctrl_writes(emu)
            assert [k for k, _ in writes] == ["EVSEPowerAvailable", "ChargeStartToggle"]
            assert 6000 - 70 <= writes[0][1] <= 6000  # 0.1 A steps on 3 × 230 V
            assert 6000 - 70 <= emu.power_w <= 6000
            # 4500 W: throttled down while charging, no second toggle.
            publisher.until("home/grid", "-4500",
                            lambda: (emu.power_available_w or 0) <= 4500, what="4500 W")
            assert 4500 - 70 <= emu.power_w <= 4500 and emu.started
            assert emu.writes("ChargeStartToggle") == [True]
            wait_for(lambda: (r := daemon.readings["garage"]) is not None
                     and r.power_w == emu.power_w, what="the daemon reading the new power")
            # 2000 W is below 6 A on three phases: pause, by one toggle.
            publisher.until("home/grid", "-2000", lambda: not emu.started, what="a pause")
            assert emu.writes("ChargeStartToggle") == [True, True]
            wait_for(lambda: not daemon.last_decisions["garage"].charging, what="the decision")
        finally:
            daemon.stop()
        reading = daemon.readings["garage"]
        assert reading is not None and reading.phases == 3
        assert not emu.started  # shutdown state "pause"
        assert emu.energy_ws > 0
        assert all(r.path == EVSE_CTRL and set(r.body) <= ALLOWED
                   for r in emu.requests if r.method == "POST")
        assert emu.service_requests == []


def test_daemon_refuses_a_misconfigured_psp_with_one_line(
        tmp_path: Path, mosquitto: Any, publisher: Publisher,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with PSPEmulator({"ControlStrategy": 0}) as emu:
        emu.plug_in()
        daemon = Daemon(settings(tmp_path, mosquitto, chargers=[_psp_charger(emu)]))
        daemon.start()
        try:
            publisher.until("home/grid", "-6000",
                            lambda: "ControlStrategy = 1" in caplog.text, what="the message")
            cycles = _cycles(daemon)
            publisher.until("home/grid", "-6000", lambda: _cycles(daemon) >= cycles + 3,
                            what="three more cycles")
        finally:
            daemon.stop()
        lines = [r.getMessage() for r in caplog.records if "ControlStrategy" in r.getMessage()]
        assert len(lines) == 1  # connect is retried every 30 s, so once in this test
        assert lines[0].startswith(f"charger garage: cannot connect: the PSP EVSE at {emu.url} "
                                   "ignores EVSEPowerAvailable as configured; in its system "
                                   "settings set ControlStrategy = 1 (power limiting; now 0 = "
                                   "no optimisation)")
        assert [r for r in emu.requests if r.method == "POST"] == []
        assert not emu.started
