"""The PSP EVSE driver against the emulator over real loopback HTTP.

Every test's emulator checks at teardown that the driver wrote nothing but the allow-listed
EvseCtrl keys: no service code, no firmware toggle, no SystemConfig write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from daemon_support import http_answering
from hypothesis import given, settings
from hypothesis import strategies as st

from chargers.base import ChargerError, PowerLimiter
from chargers.psp.client import ALLOWED_WRITES, WebAPIClient
from chargers.psp.config import PSPConfig
from chargers.psp.driver import TOGGLE_SETTLE_S, PSPCharger
from chargers.psp.emulator import Fault as F
from chargers.psp.emulator import PSPEmulator
from chargers.psp.webapi import EVSE_CTRL, STATUS, SYSTEM_CONFIG, SYSTEM_INFO, EvseState
from divert.core.capabilities import ControlKind
from psp.conftest import Clock

ALLOWED = {"EVSEPowerAvailable", "ChargeStartToggle"}


@pytest.fixture
def emu(plugged_in: PSPEmulator) -> Iterator[PSPEmulator]:
    """The emulator, checked at teardown: only allow-listed writes, no service requests."""
    emulator = plugged_in
    yield emulator
    posts = [r for r in emulator.requests if r.method == "POST"]
    assert all(r.path == EVSE_CTRL and set(r.body) <= ALLOWED for r in posts), posts
    assert emulator.service_requests == []


MakeDriver = Callable[..., PSPCharger]


@pytest.fixture
def make_driver(emu: PSPEmulator) -> Iterator[MakeDriver]:
    drivers: list[PSPCharger] = []

    def make(emulator: PSPEmulator = emu, clock: Callable[[], float] | None = None,
             **keys: Any) -> PSPCharger:
        config = PSPConfig(name="garage", url=emulator.url, phases=3, timeout_s=0.3,
                           retry_backoff_s=0.01, **keys)
        driver = PSPCharger(config, clock=clock) if clock else PSPCharger(config)
        drivers.append(driver)
        return driver

    yield make
    for d in drivers:
        d.close()


def test_connect_declares_a_power_setpoint_charger(make_driver: MakeDriver) -> None:
    driver = make_driver(max_current_a=32)
    assert isinstance(driver, PowerLimiter)
    caps = driver.connect()
    assert caps.control is ControlKind.POWER
    assert (caps.phases, caps.min_current_a, caps.max_current_a) == (3, 6, 16)  # ChargeCurrent
    assert caps.min_power_w == 6 * 230 * 3


def test_min_power_from_config_and_phases_from_the_charger(
        make_driver: MakeDriver, caplog: pytest.LogCaptureFixture) -> None:
    with PSPEmulator({"Charge3Phase": False, "ChargeCurrent": 32}) as single:
        caps = make_driver(single, min_power_w=1600, max_current_a=20).connect()
    assert (caps.phases, caps.max_current_a, caps.min_power_w) == (1, 20, 1600)
    assert "config says phases = 3 but the charger is set to 1-phase charging" in caplog.text


def test_power_follows_the_setpoint_and_energy_accumulates(
        emu: PSPEmulator, make_driver: MakeDriver, clock: Clock) -> None:
    driver = make_driver()
    driver.connect()
    driver.set_power(5000.9)
    assert emu.writes("EVSEPowerAvailable") == [5000]  # whole W, rounded down
    driver.enable(True)
    r = driver.read()
    # 5000 W over three phases at 230 V: 7.2 A per phase (0.1 A resolution)
    assert (r.charging, r.current_a, r.power_w, r.phases) == (True, 7.2, 7.2 * 230 * 3, 3)
    assert r.vehicle_connected and r.state == "charging"
    clock.now_s += 1800
    assert driver.read().energy_wh == pytest.approx(7.2 * 230 * 3 / 2)
    driver.set_power(20000)  # capped by ChargeCurrent, 16 A
    assert driver.read().power_w == 16 * 230 * 3
    driver.set_power(3000)  # below 6 A on three phases: the car pauses
    r = driver.read()
    assert (r.charging, r.power_w, r.state) == (False, 0, "vehicle connected")


def test_enable_toggles_only_when_the_state_differs(emu: PSPEmulator,
                                                     make_driver: MakeDriver) -> None:
    driver = make_driver()
    driver.connect()
    driver.enable(False)  # already stopped
    driver.enable(True)
    driver.enable(True)
    assert emu.writes("ChargeStartToggle") == [True]
    assert emu.started
    driver.enable(False)
    driver.enable(False)
    assert emu.writes("ChargeStartToggle") == [True, True]
    assert not emu.started


@pytest.mark.parametrize("fault", [F.LOST, F.SLOW])
@pytest.mark.parametrize("on", [True, False])
def test_a_lost_toggle_reply_never_flips_the_charger_back(
        emu: PSPEmulator, make_driver: MakeDriver, fault: F, on: bool) -> None:
    driver = make_driver()
    driver.connect()
    driver.enable(not on)
    toggles = len(emu.writes("ChargeStartToggle"))
    emu.inject(fault, path=EVSE_CTRL, method="POST")  # applied, but no reply in time
    driver.enable(on)
    assert emu.started is on
    assert len(emu.writes("ChargeStartToggle")) == toggles + 1
    driver.enable(on)  # the daemon re-asserting the same decision
    assert emu.started is on
    assert len(emu.writes("ChargeStartToggle")) == toggles + 1


def test_a_toggle_not_yet_seen_is_not_sent_again(emu: PSPEmulator, make_driver: MakeDriver,
                                                  clock: Clock) -> None:
    driver_clock = Clock()
    driver = make_driver(clock=driver_clock)
    driver.connect()
    emu.toggle_delay_s = 20  # the charger takes its time; its reply is lost too
    emu.inject(F.LOST, path=EVSE_CTRL)
    with pytest.raises(ChargerError, match="did not change after 3 reads; not toggling again"):
        driver.enable(True)
    with pytest.raises(ChargerError, match="a start was sent but ChargerStarted is still false"):
        driver.enable(True)
    assert emu.writes("ChargeStartToggle") == [True]
    clock.now_s += 20
    driver.enable(True)  # seen now: nothing to send
    assert emu.started and emu.writes("ChargeStartToggle") == [True]


def test_an_unconfirmed_toggle_may_be_retried_after_the_settle_time(
        emu: PSPEmulator, make_driver: MakeDriver) -> None:
    driver_clock = Clock()
    driver = make_driver(clock=driver_clock)
    driver.connect()
    emu.toggle_delay_s = 1e9  # this toggle never takes effect
    with pytest.raises(ChargerError):
        driver.enable(True)
    driver_clock.now_s += TOGGLE_SETTLE_S - 1
    with pytest.raises(ChargerError, match="not toggling again"):
        driver.enable(True)
    driver_clock.now_s += 1
    emu.toggle_delay_s = 0
    driver.enable(True)  # a new attempt, confirmed at once
    assert emu.started and emu.writes("ChargeStartToggle") == [True, True]


def test_start_refused_while_start_stop_is_not_allowed(emu: PSPEmulator,
                                                       make_driver: MakeDriver) -> None:
    driver = make_driver()
    driver.connect()
    emu.unplug()
    with pytest.raises(ChargerError, match="cannot start now: StartStopAllowed is false"):
        driver.enable(True)
    assert emu.writes("ChargeStartToggle") == []


@pytest.mark.parametrize(("config", "setting"), [
    ({"ControlStrategy": 0}, "set ControlStrategy = 1 (power limiting; now 0 = no optimisation)"),
    ({"Meter2Type": 2, "Meter2Ip": "192.168.0.30"},
     "set Meter2Type = 7 (remote control, with Meter2Ip = this host's address; now 2 = Modbus "
     "NMID30-2)"),
    ({"ControlStrategy": 0, "Meter2Type": 0},
     "set ControlStrategy = 1 (power limiting; now 0 = no optimisation) and Meter2Type = 7"),
])
def test_misconfigured_charger_is_refused_with_one_clear_line(
        make_driver: MakeDriver, caplog: pytest.LogCaptureFixture, config: dict[str, Any],
        setting: str) -> None:
    with PSPEmulator(config) as emulator:
        emulator.plug_in()
        driver = make_driver(emulator)
        with pytest.raises(ChargerError, match="ignores EVSEPowerAvailable") as err:
            driver.connect()
        assert [r.method for r in emulator.requests].count("POST") == 0
    line = str(err.value)  # the daemon logs it, so the driver does not log it a second time
    assert line.startswith("the PSP EVSE at http://127.0.0.1:") and "\n" not in line
    assert setting in line
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_fixing_the_setting_lets_connect_succeed(make_driver: MakeDriver) -> None:
    with PSPEmulator({"ControlStrategy": 0}) as emulator:
        driver = make_driver(emulator)
        with pytest.raises(ChargerError):
            driver.connect()
        emulator.config["ControlStrategy"] = 1
        assert driver.connect().control is ControlKind.POWER


@pytest.mark.parametrize("fault", [F.TRUNCATED, F.GARBAGE, F.LOST, F.SLOW])
def test_a_bad_reply_is_retried(emu: PSPEmulator, make_driver: MakeDriver, fault: F) -> None:
    driver = make_driver()
    driver.connect()
    emu.inject(fault, path=STATUS, delay_s=1.0)
    assert driver.read().vehicle_connected


@pytest.mark.parametrize(("fault", "message"), [
    (F.TRUNCATED, r"Status: truncated JSON .* \(3 attempts\)"),
    (F.GARBAGE, r"Status: not JSON .*<html>"),
    (F.LOST, "RemoteProtocolError"),
    (F.SLOW, "no answer within 0.3 s"),
])
def test_a_charger_answering_badly_is_a_charger_error_not_a_crash(
        emu: PSPEmulator, make_driver: MakeDriver, fault: F, message: str) -> None:
    driver = make_driver()
    driver.connect()
    emu.inject(fault, path=STATUS, count=3, delay_s=1.0)
    with pytest.raises(ChargerError, match=message):
        driver.read()
    assert driver.read().vehicle_connected  # and the next read works


@pytest.mark.parametrize("path", [SYSTEM_CONFIG, SYSTEM_INFO])
def test_garbled_config_at_connect_is_a_charger_error(emu: PSPEmulator, make_driver: MakeDriver,
                                                      path: str) -> None:
    emu.inject(F.TRUNCATED, path=path, count=3)
    with pytest.raises(ChargerError, match="truncated JSON"):
        make_driver().connect()


def test_a_lost_setpoint_reply_is_retried(emu: PSPEmulator, make_driver: MakeDriver) -> None:
    driver = make_driver()
    driver.connect()
    emu.inject(F.LOST, path=EVSE_CTRL)
    driver.set_power(4500)
    assert emu.writes("EVSEPowerAvailable") == [4500, 4500]  # a setpoint is safe to repeat
    assert emu.power_available_w == 4500


def test_a_silent_charger_is_a_charger_error(make_driver: MakeDriver) -> None:
    emulator = PSPEmulator().start()
    driver = make_driver(emulator)
    driver.connect()
    emulator.close()
    with pytest.raises(ChargerError, match=r"GET http://127.0.0.1:\d+/webapi/v1/Status: "
                                           r"ConnectError"):
        driver.read()


def test_a_refusal_labelled_with_an_odd_charset_is_a_charger_error() -> None:
    # httpx's `.text` raises for charset=utf-32 (no BOM); the client quotes the bytes itself.
    with http_answering(403, {"Content-Type": "text/plain; charset=utf-32"},
                        b"forbidden") as url:
        driver = PSPCharger(PSPConfig(name="garage", url=url, timeout_s=0.3))
        try:
            with pytest.raises(ChargerError, match="refused with HTTP 403: 'forbidden'"):
                driver.read()
        finally:
            driver.close()


def test_faults_are_reported_in_state_and_logged_once(
        emu: PSPEmulator, make_driver: MakeDriver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    driver = make_driver()
    driver.connect()
    emu.set_fault(EvseState.RELAY_ERR_F)
    for _ in range(3):
        r = driver.read()
        assert r.state == "fault: relay (EVSE_RELAY_ERR_F)" and r.vehicle_connected is None
    emu.set_fault(None)
    assert driver.read().state == "vehicle connected, stopped"
    assert caplog.text.count("EVSE_RELAY_ERR_F") == 1
    assert "fault cleared" in caplog.text


def test_a_charger_no_longer_following_the_setpoint_is_reported(
        emu: PSPEmulator, make_driver: MakeDriver, caplog: pytest.LogCaptureFixture) -> None:
    driver = make_driver()
    driver.connect()
    driver.set_power(5000)
    driver.enable(True)
    emu.config["ControlStrategy"] = 0  # changed on the charger after connect: full power
    states = [driver.read().state for _ in range(4)]
    assert states[:2] == ["charging", "charging"]  # the car may still be ramping down
    assert states[2] == states[3] == ("charging, not following the setpoint: drawing 11040 W "
                                      "over EVSEPowerAvailable 5000 W")
    assert caplog.text.count("check ControlStrategy = 1") == 1


def test_auto_start_is_warned_about(make_driver: MakeDriver,
                                    caplog: pytest.LogCaptureFixture) -> None:
    with PSPEmulator({"ChargeAutoStart": True}) as emulator:
        make_driver(emulator).connect()
    assert "ChargeAutoStart is on" in caplog.text


@pytest.mark.parametrize(("path", "body"), [
    (SYSTEM_INFO, {"SCode": "Reset", "SCodeData": ""}),
    (SYSTEM_INFO, {"SCode": "FactoryDefault", "SCodeData": ""}),
    (SYSTEM_INFO, {"UpdateRunToggle": True}),
    (SYSTEM_INFO, {"UpdateCheckToggle": True}),
    (SYSTEM_CONFIG, {"ControlStrategy": 1}),
    (EVSE_CTRL, {"ChargeBoostToggle": True}),
    (EVSE_CTRL, {"EVSEPowerAvailable": 1000, "ChargeBoostToggle": True}),
    (EVSE_CTRL, {}),
    (STATUS, {"EVSEPowerAvailable": 1000}),
])
def test_writes_off_the_allow_list_are_refused_before_sending(
        emu: PSPEmulator, path: str, body: dict[str, Any]) -> None:
    client = WebAPIClient(emu.url, timeout_s=1, retries=0, backoff_s=0)
    with pytest.raises(ValueError, match="refusing to POST"):
        client.post(path, body)
    client.close()
    assert emu.requests == []


def test_the_allow_list_is_the_throttle_and_the_toggle_only() -> None:
    assert {p: set(keys) for p, keys in ALLOWED_WRITES.items()} == {EVSE_CTRL: ALLOWED}


@pytest.fixture(scope="module")
def shared_emu() -> Iterator[PSPEmulator]:
    with PSPEmulator() as emulator:
        yield emulator


_faults = st.none() | st.tuples(st.sampled_from([F.LOST, F.TRUNCATED, F.GARBAGE]),
                                st.sampled_from([EVSE_CTRL, STATUS]), st.integers(1, 4))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _faults), min_size=1, max_size=6))
def test_whatever_replies_are_lost_a_decision_never_toggles_twice(
        shared_emu: PSPEmulator, steps: list[tuple[bool, tuple[F, str, int] | None]]) -> None:
    emu = shared_emu
    emu.unplug()
    emu.plug_in()
    driver = PSPCharger(PSPConfig(name="garage", url=emu.url, phases=3, timeout_s=0.5,
                                  retry_backoff_s=0))
    try:
        for on, fault in steps:
            before = emu.started
            sent = len(emu.writes("ChargeStartToggle"))
            if fault is not None:
                emu.inject(fault[0], path=fault[1], count=fault[2])
            try:
                driver.enable(on)
                confirmed = True
            except ChargerError:
                confirmed = False
            toggles = len(emu.writes("ChargeStartToggle")) - sent
            assert toggles <= 1
            if before == on:
                assert toggles == 0
            if toggles or confirmed:
                assert emu.started == on  # never flipped back, never left the other way
            emu.clear_faults()
    finally:
        driver.close()
    assert all(r.path == EVSE_CTRL and set(r.body) <= ALLOWED
               for r in emu.requests if r.method == "POST")
