"""python-openevse-http, the WiFi-module client the project did not write, against the
emulator's HTTP front end on loopback: `/status`, `/config` and RAPI as a `POST /r` form.

The library picks the `$SC` flag by the WiFi module's firmware (N before 2.9.1, V from it)
and uses the override API of WiFi firmware v4 for some commands, which the emulator does not
serve; the tests use module versions for which it speaks RAPI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from chargers.openevse.emulator import EmulatedEvse, HttpEmulator
from chargers.openevse.rapi import EvseState

openevsehttp = pytest.importorskip("openevsehttp.__main__",
                                   reason="python-openevse-http is not installed "
                                          "(pip install -e '.[dev]')")
AuthenticationError = pytest.importorskip("openevsehttp.exceptions").AuthenticationError
T = TypeVar("T")
# aiohttp deprecates how the library passes Basic auth: its business, not this test's.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:openevsehttp")


def run(job: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(job)


@pytest.fixture
def controller() -> EmulatedEvse:
    c = EmulatedEvse()
    c.plug_in()
    return c


def _module(controller: EmulatedEvse, wifi_version: str) -> Iterator[HttpEmulator]:
    emulator = HttpEmulator(controller, "admin", "secret", wifi_version=wifi_version)
    try:
        yield emulator
    finally:
        emulator.stop()


async def _updated(emulator: HttpEmulator, password: str = "secret") -> Any:
    """A client that has read /status and /config once."""
    evse = openevsehttp.OpenEVSE(emulator.url.removeprefix("http://"), user="admin",
                                 pwd=password)
    await evse.update()
    if evse.websocket is not None:  # made by update(), never started here
        await evse.websocket.close()
    return evse


def test_status_and_config_read_as_the_library_expects(controller: EmulatedEvse) -> None:
    for emulator in _module(controller, "2.9.1"):
        evse = run(_updated(emulator))
        assert (evse.state, evse.status, evse.vehicle) == ("charging", "charging", 1)
        assert (evse.current_capacity, evse.charging_current) == (16, controller.draw_ma)
        assert (evse.openevse_firmware, evse.protocol_version, evse.wifi_firmware) == (
            "8.2.1", "5.1.3", "2.9.1")
        assert (evse.min_amps, evse.max_amps, evse.max_current_soft) == (6, 32, 16)
        assert (evse.charging_voltage, evse.ambient_temperature) == (230.0, 23.5)
        assert run(evse.test_and_get()) == {"serial": "EMULATED01", "model": "emulator"}
        with pytest.raises(AuthenticationError):
            run(_updated(emulator, password="wrong"))


@pytest.mark.parametrize(("wifi", "firmware", "protocol", "flag"), [
    ("2.9.1", "8.2.1", "5.1.3", "V"),
    # An older module sends N, which this controller documents: volatile as well.
    ("2.8.0", "D4.10.1", "4.0.1", "N"),
])
def test_set_current_and_pause_through_rapi(wifi: str, firmware: str, protocol: str,
                                             flag: str) -> None:
    c = EmulatedEvse(firmware=firmware, protocol=protocol)
    c.plug_in()
    for emulator in _module(c, wifi):
        evse = run(_updated(emulator))
        run(evse.set_current(10))
        assert c.set_current_commands() == [("10", flag)]
        assert (c.current_a, c.eeprom_writes) == (10, 0)
        assert run(evse.send_command("$GE"))[1].startswith("$OK 10 ")
        run(evse.toggle_override())  # below WiFi 4.0.1: `$FS` while not sleeping
        assert c.state == EvseState.SLEEPING
        run(evse.update())
        assert evse.state == "sleeping"
        run(evse.toggle_override())
        assert c.state == EvseState.CHARGING
