"""python-openevse, a RAPI client the project did not write, against the emulator's pty.

Only its serial client is usable on Python 3 (its WiFi client matches text against bytes).
It was written for RAPI 1.0.3, where `$GS` reports the state in decimal: it agrees with the
emulator on firmware before D5.2.0 and, on current firmware, reads every state but those
whose hex form is no decimal number, which is the firmware's documented change (CHANGELOG
D5.2.0: `$GS` returns the state in hex).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from chargers.openevse.emulator import EmulatedEvse, SerialEmulator
from chargers.openevse.rapi import EvseState


@pytest.fixture(scope="module")
def library() -> ModuleType:
    """The library's `openevse` module, loaded under another name: this test package is
    also called `openevse`."""
    try:
        path = importlib.metadata.distribution("python-openevse").locate_file("openevse.py")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("python-openevse is not installed (pip install -e '.[dev]')")
    spec = importlib.util.spec_from_file_location("python_openevse", str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client(library: ModuleType, controller: EmulatedEvse) -> Iterator[Any]:
    emulator = SerialEmulator(controller)
    evse = library.SerialOpenEVSE(emulator.path)  # turns echo off with `$FF E 0`
    try:
        yield evse
    finally:
        evse.s.close()
        emulator.stop()


@pytest.fixture
def current(library: ModuleType) -> Iterator[tuple[EmulatedEvse, Any]]:
    """The library on a controller with current firmware (8.2.1), a car plugged in."""
    controller = EmulatedEvse()
    controller.plug_in()
    for evse in _client(library, controller):
        yield controller, evse


def test_readings_and_settings_agree_with_the_emulator(
        current: tuple[EmulatedEvse, Any]) -> None:
    c, evse = current
    assert evse.version() == {"firmware": "8.2.1", "protocol": "5.1.3"}
    assert evse.current_capacity_range() == (6, 32)
    assert evse.current_capacity() == 16  # $GE, the current setting
    assert evse.service_level() == 0  # $GE flags (hex) 0001: automatic, now level 2
    assert evse.charging_current_and_voltage() == {"amps": 16.0, "volts": 230.0}
    assert evse.temperature()["ds3231temp"] == 23.5
    assert evse.fault_counters() == {"GFI self test": 0, "Ground": 0, "Stuck relay": 0}
    assert evse.time().year >= 2024  # $GT, the RTC
    assert (evse.time_limit(), evse.charge_limit()) == (0, 0)
    assert evse.ammeter_settings() == (220, 0)
    assert evse.lcd_backlight_color("green") and evse.display_text(0, 0, "solar")
    assert c.commands[0].params == ("E", "0")  # the echo it turned off first


def test_control_and_state_on_current_firmware(current: tuple[EmulatedEvse, Any]) -> None:
    c, evse = current
    assert evse.status() == "charging"  # 03 reads the same in decimal
    # Its `$SC amps` has no flag: the controller stores every such change in EEPROM, the
    # reason divert always sends the flag the firmware documents.
    assert evse.current_capacity(20) == 20
    assert (c.current_a, c.eeprom_current_a, c.eeprom_writes) == (20, 20, 1)
    assert evse.charging_current_and_voltage()["amps"] == 20.0
    # Sleeping is `fe` since D5.2.0, which the library reads as a decimal number.
    with pytest.raises(ValueError, match="'fe'"):
        evse.status("sleep")
    assert c.state == EvseState.SLEEPING
    assert evse.status("enable") == "charging"  # the `$AT` it skipped on the way: no harm


def test_state_changes_on_firmware_before_d5_2_0(library: ModuleType) -> None:
    """Decimal states in `$GS` and `$ST` notifications without a checksum (before D4.1.0),
    as the library expects."""
    c = EmulatedEvse(firmware="D4.0.2", protocol="2.0.0")
    c.plug_in()
    for evse in _client(library, c):
        assert evse.status() == "charging"
        assert evse.elapsed()["seconds"] >= 0  # only while charging: state 3
        assert evse.status("sleep") == "sleeping"
        assert evse.get_status_change() == "sleeping"  # from the `$ST fe` notification
        assert evse.status("enable") == "charging"
        c.unplug()
        assert evse.get_status_change() == "not connected"
        assert evse.status() == "not connected"
    assert c.received[-1].startswith("$GS")
