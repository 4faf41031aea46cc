"""The PSP EVSE emulator speaks the guide's WebAPI strictly, over raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chargers.psp.emulator import Fault as F
from chargers.psp.emulator import PSPEmulator
from chargers.psp.webapi import EVSE_CTRL, STATUS, SYSTEM_CONFIG, SYSTEM_INFO, EvseState
from psp.conftest import Clock
from psp.test_webapi import GUIDE_STATUS, GUIDE_SYSTEM_CONFIG, GUIDE_SYSTEM_INFO


@pytest.fixture
def emu(plugged_in: PSPEmulator) -> PSPEmulator:
    return plugged_in


@pytest.fixture
def http(emu: PSPEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=2, trust_env=False) as client:
        yield client


def _status(http: httpx.Client) -> dict[str, Any]:
    reply = http.get(STATUS)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    result: dict[str, Any] = reply.json()
    return result


def _ctrl(http: httpx.Client, body: Any) -> httpx.Response:
    return http.post(EVSE_CTRL, json=body)


def test_replies_have_the_guides_fields(http: httpx.Client) -> None:
    assert set(_status(http)) == set(GUIDE_STATUS) - {"PPCodedCurrent"}  # tethered: case C
    assert set(http.get(SYSTEM_CONFIG).json()) == set(GUIDE_SYSTEM_CONFIG)
    assert set(http.get(SYSTEM_INFO).json()) == set(GUIDE_SYSTEM_INFO)
    meter = http.get("/webapi/v1/Meter1").json()["Meter1"]
    register = meter["ModbusData"]["0x04_0x0034"]
    assert set(register) == {"Desc", "ErrCounter", "Value", "DataStatus"}
    assert register["Desc"] == "TotalSystemPower[W]"


def test_power_follows_the_setpoint_within_the_chargers_limits(
        emu: PSPEmulator, http: httpx.Client) -> None:
    assert _ctrl(http, {"ChargeStartToggle": True}).json() == {"ChargeStartToggle": "Performing"}
    status = _status(http)
    assert status["ChargerStarted"] and status["ActualPower"] == 0  # nothing available yet
    assert status["EvseState"] == EvseState.EV_CONNECTED_B1_B2
    for available_w, power_w in [(6900, 6900), (5000, 7.2 * 690), (4000, 0), (1e6, 16 * 690)]:
        assert _ctrl(http, {"EVSEPowerAvailable": available_w}).status_code == 200
        status = _status(http)
        assert status["ActualPower"] == pytest.approx(power_w)
        assert status["ActualPowerAvailable"] == min(available_w, 16 * 690)
        assert status["EvseState"] == (EvseState.EV_CHARGE_C1_C2 if power_w
                                       else EvseState.EV_CONNECTED_B1_B2)
    emu.config["ControlStrategy"] = 0  # no optimisation: the setpoint is not used
    _ctrl(http, {"EVSEPowerAvailable": 4500})
    status = _status(http)
    assert status["ActualPower"] == 16 * 690 and "ActualPowerAvailable" not in status


def test_start_stop_is_a_toggle_and_energy_counts_watt_seconds(
        emu: PSPEmulator, http: httpx.Client, clock: Clock) -> None:
    _ctrl(http, {"EVSEPowerAvailable": 4140})
    _ctrl(http, {"ChargeStartToggle": True})
    clock.now_s += 10
    status = _status(http)
    assert status["ChargerStarted"] and status["ActualEnergy"] == 41400
    assert status["ActualDuration"] == "00h:00m:10s"
    _ctrl(http, {"ChargeStartToggle": True})
    clock.now_s += 10
    status = _status(http)
    assert not status["ChargerStarted"] and status["ActualEnergy"] == 41400
    _ctrl(http, {"ChargeStartToggle": False})  # only true triggers
    assert not _status(http)["ChargerStarted"]


def test_toggle_does_nothing_without_a_vehicle(emu: PSPEmulator, http: httpx.Client) -> None:
    emu.unplug()
    assert not _status(http)["StartStopAllowed"]
    _ctrl(http, {"ChargeStartToggle": True})
    status = _status(http)
    assert not status["ChargerStarted"] and status["EvseState"] == EvseState.IDLE_A1_A2


@pytest.mark.parametrize(("body", "error"), [
    ({"EVSEPowerAvailable": "5000"}, "EVSEPowerAvailable should be a number"),
    ({"EVSEPowerAvailable": True}, "EVSEPowerAvailable should be a number"),
    ({"EVSEPowerAvailable": -1}, "EVSEPowerAvailable must be >= 0"),
    ({"ChargeStartToggle": 1}, "ChargeStartToggle should be a bool"),
    ({"EVSEPowerAvailable": 5000, "Reset": True}, "unknown object 'Reset'"),
    ({}, "expected a JSON object"),
    ([1], "expected a JSON object"),
])
def test_bad_writes_are_refused_and_not_applied(emu: PSPEmulator, http: httpx.Client,
                                                body: Any, error: str) -> None:
    reply = _ctrl(http, body)
    assert (reply.status_code, reply.json()) == (400, {"Error": error})
    assert emu.power_available_w is None


def test_methods_and_paths(http: httpx.Client) -> None:
    assert http.post(STATUS, json={"EvseState": 5}).status_code == 405
    assert http.get(EVSE_CTRL).status_code == 405
    assert http.get("/webapi/v1/Nope").status_code == 404
    reply = http.post(EVSE_CTRL, content=b"{not json", headers={"content-type": "text/plain"})
    assert reply.status_code == 400


def test_service_codes_restart_the_controller(emu: PSPEmulator, http: httpx.Client) -> None:
    _ctrl(http, {"EVSEPowerAvailable": 5000})
    _ctrl(http, {"ChargeStartToggle": True})
    reply = http.post(SYSTEM_INFO, json={"Scode": "Reset", "SCodeData": ""})  # the guide's case
    assert reply.json() == {"Reset": "Performing"}
    assert emu.power_available_w is None and not emu.started
    assert emu.service_requests == [{"Scode": "Reset", "SCodeData": ""}]


def test_an_ip_meter_needs_an_address(emu: PSPEmulator, http: httpx.Client) -> None:
    reply = http.post(SYSTEM_CONFIG, json={"Meter2Type": 4})
    assert reply.status_code == 400 and emu.config["Meter2Type"] == 7
    reply = http.post(SYSTEM_CONFIG, json={"Meter2Type": 4, "Meter2Ip": "192.168.0.30"})
    assert reply.status_code == 200 and emu.config["Meter2Type"] == 4


def test_a_lost_reply_is_still_applied(emu: PSPEmulator, http: httpx.Client) -> None:
    emu.inject(F.LOST, path=EVSE_CTRL)
    with pytest.raises(httpx.RemoteProtocolError):
        _ctrl(http, {"ChargeStartToggle": True})
    assert _status(http)["ChargerStarted"]


def test_a_truncated_reply_is_a_prefix_of_the_real_one(emu: PSPEmulator,
                                                       http: httpx.Client) -> None:
    emu.inject(F.TRUNCATED, path=STATUS)
    cut = http.get(STATUS).content
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)
    assert json.dumps(_status(http)).startswith(cut.decode()[:20])


def test_a_slow_reply_times_out_the_client(emu: PSPEmulator) -> None:
    emu.inject(F.SLOW, path=STATUS, delay_s=5)
    with httpx.Client(base_url=emu.url, timeout=0.2, trust_env=False) as client, \
            pytest.raises(httpx.ReadTimeout):
        client.get(STATUS)


def test_garbage_is_html(emu: PSPEmulator, http: httpx.Client) -> None:
    emu.inject(F.GARBAGE)
    reply = http.get(SYSTEM_INFO)
    assert reply.status_code == 200 and reply.text.startswith("<html>")
