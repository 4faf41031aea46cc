"""EVSEMaster driver, config and `divert evsemaster discover` against the emulator on
loopback: restart-only semantics, readings, phases, refusals, and a password never logged."""

from __future__ import annotations

import logging
import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import free_udp_port

from chargers.base import ChargerError
from chargers.evsemaster import protocol as p
from chargers.evsemaster.config import EVSEMasterConfig
from chargers.evsemaster.driver import EVSEMasterCharger
from chargers.evsemaster.emulator import BS20, EmulatorTiming, EVSEMasterEmulator
from chargers.evsemaster.protocol import Cmd
from chargers.evsemaster.session import Session, Timing
from chargers.registry import create
from divert.cli import main
from divert.config import ConfigError, Settings, validate
from divert.core.capabilities import Capabilities, ControlKind

SERIAL = "9181102751219513"
PIN = "739184"
CHARGER_CLOCKS = EmulatorTiming(login_interval_s=0.1, heading_interval_s=0.2,
                                status_interval_s=0.2, session_timeout_s=4.0)
APP_CLOCKS = Timing(offline_after_s=1.0, session_lapse_s=3.0, login_retry_s=0.2,
                    password_retry_s=0.5, reply_timeout_s=2.0, tick_s=0.05)
WAIT_S = 10.0
REPO = Path(__file__).resolve().parents[3]


def until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    """Poll `condition` until it holds; a ChargerError (no status yet) counts as not yet."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except ChargerError:
            pass
        time.sleep(0.02)
    return False


@pytest.fixture
def port() -> int:
    return free_udp_port()


def emulator(port: int, **kwargs: Any) -> EVSEMasterEmulator:
    kwargs.setdefault("timing", CHARGER_CLOCKS)
    return EVSEMasterEmulator(SERIAL, PIN, broadcast_to=("127.0.0.1", port), **kwargs)


@pytest.fixture
def charger(port: int) -> Iterator[EVSEMasterEmulator]:
    with emulator(port) as c:
        yield c


@pytest.fixture
def driver(port: int) -> Iterator[Callable[..., EVSEMasterCharger]]:
    made: list[EVSEMasterCharger] = []

    def make(**keys: Any) -> EVSEMasterCharger:
        keys = {"password": PIN, "max_current_a": 16, "restart_gap_s": 30} | keys
        config = EVSEMasterConfig(name="carport", serial=SERIAL, port=port, **keys)
        d = EVSEMasterCharger(config, timing=APP_CLOCKS, connect_timeout_s=WAIT_S)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def charging_at(d: EVSEMasterCharger, current_a: float) -> Callable[[], bool]:
    def check() -> bool:
        reading = d.read()
        return bool(reading.charging) and reading.current_a == current_a
    return check


def test_connect_declares_restart_only(charger: EVSEMasterEmulator,
                                       driver: Callable[..., EVSEMasterCharger]) -> None:
    caps = driver(max_current_a=32).connect()
    assert caps == Capabilities(ControlKind.RESTART, 6, 32, 1.0, 1, 230.0, restart_gap_s=30)


def test_maximum_narrowed_to_the_unit(port: int,
                                      driver: Callable[..., EVSEMasterCharger]) -> None:
    small = p.LoginInfo(1, "DELTACO", "EV-7", "hw", 2300, 10, "")
    with emulator(port, info=small):
        assert driver().connect().max_current_a == 10


def test_current_applies_at_the_next_start(charger: EVSEMasterEmulator,
                                           driver: Callable[..., EVSEMasterCharger]) -> None:
    d = driver()
    d.connect()
    d.set_current(10)
    d.enable(True)
    assert until(charging_at(d, 10.0))
    reading = d.read()
    assert (reading.power_w, reading.phases, reading.vehicle_connected, reading.state) == \
        (2300, 1, True, "charging")
    d.set_current(13)  # stored; the running session keeps 10 A
    d.enable(True)  # the daemon's periodic re-assert: no second start
    assert d.read().current_a == 10.0
    d.enable(False)
    assert until(lambda: d.read().charging is False)
    d.enable(False)  # re-assert of a stop: nothing sent
    d.enable(True)
    assert until(charging_at(d, 13.0))
    assert [(e.kind, e.current_a) for e in charger.events] == [
        ("login", 0), ("start", 10), ("stop", 0), ("start", 13)]


def test_setpoints_are_whole_amps_within_the_range(
        charger: EVSEMasterEmulator, driver: Callable[..., EVSEMasterCharger]) -> None:
    d = driver()
    d.connect()
    d.set_current(40.0)
    d.enable(True)
    assert until(charging_at(d, 16.0))
    d.enable(False)
    d.set_current(7.9)
    d.enable(True)
    assert until(charging_at(d, 7.0))


def test_no_start_without_a_car(charger: EVSEMasterEmulator,
                                           driver: Callable[..., EVSEMasterCharger]) -> None:
    charger.plugged = False
    d = driver()
    d.connect()
    assert until(lambda: d.read().vehicle_connected is False)
    assert d.read().state == "no vehicle"
    with pytest.raises(ChargerError, match="no vehicle plugged in"):
        d.enable(True)
    assert charger.kinds() == ["login"]  # no ChargeStart sent just to be refused


def test_rebooted_charger_is_started_again_by_the_reassert(
        charger: EVSEMasterEmulator, driver: Callable[..., EVSEMasterCharger]) -> None:
    d = driver()
    d.connect()
    d.set_current(8)
    d.enable(True)
    assert until(charging_at(d, 8.0))
    charger.reboot()  # the session and the login are gone
    assert until(lambda: d.read().charging is False)
    assert until(lambda: charger.logged_in)
    d.enable(True)
    assert until(charging_at(d, 8.0))
    assert [e.kind for e in charger.events] == ["login", "start", "reboot", "login", "start"]


def test_offline_charger_is_an_error_then_recovers(
        charger: EVSEMasterEmulator, driver: Callable[..., EVSEMasterCharger]) -> None:
    d = driver()
    d.connect()
    charger.silent = True

    def offline() -> bool:
        try:
            d.read()
        except ChargerError as exc:
            return "offline" in str(exc)
        return False

    assert until(offline)
    with pytest.raises(ChargerError, match="offline"):
        d.enable(True)
    charger.silent = False
    assert until(lambda: not offline())


def test_three_phase_unit(port: int, driver: Callable[..., EVSEMasterCharger]) -> None:
    three = p.LoginInfo(10, "TELESTAR", "EC311S6", "hw", 11000, 16, "")
    with emulator(port, info=three) as charger:
        d = driver(phases=3)
        assert d.connect().phases == 3
        d.set_current(10)
        d.enable(True)
        assert until(charging_at(d, 10.0))
        reading = d.read()
        assert (reading.power_w, reading.phases) == (6900, 3)
        assert charger.starts()[0].current_a == 10


def test_single_phase_on_a_unit_that_can_force_it(
        port: int, driver: Callable[..., EVSEMasterCharger]) -> None:
    forcible = p.LoginInfo(22, "SYNC", "EV", "hw", 11000, 16, "", byte70=5)
    with emulator(port, info=forcible):
        d = driver(phases=1)
        assert d.connect().phases == 1
        d.set_current(10)
        d.enable(True)
        assert until(charging_at(d, 10.0))
        assert (d.read().power_w, d.read().phases) == (2300, 1)


def test_single_phase_config_on_a_three_phase_unit_that_cannot_is_refused(
        port: int, driver: Callable[..., EVSEMasterCharger]) -> None:
    three = p.LoginInfo(10, "TELESTAR", "EC311S6", "hw", 11000, 16, "")
    with emulator(port, info=three), \
            pytest.raises(ChargerError, match="cannot be limited to one phase"):
        driver(phases=1).connect()


def test_wrong_password_fails_connect(port: int,
                                      driver: Callable[..., EVSEMasterCharger]) -> None:
    with emulator(port), pytest.raises(ChargerError, match="rejected the password"):
        driver(password="000000").connect()


def test_password_file(charger: EVSEMasterEmulator, driver: Callable[..., EVSEMasterCharger],
                       tmp_path: Path) -> None:
    secret = tmp_path / "pin"
    secret.write_text(f"{PIN}\n")
    assert driver(password=None, password_file=secret).connect().control is ControlKind.RESTART
    missing = tmp_path / "nothing"
    with pytest.raises(ChargerError, match="cannot read password_file"):
        driver(password=None, password_file=missing).connect()
    secret.write_text("1234567\n")
    with pytest.raises(ChargerError, match="6-character PIN") as err:
        driver(password=None, password_file=secret).connect()
    assert "1234567" not in str(err.value)


def test_password_is_never_logged(port: int, driver: Callable[..., EVSEMasterCharger],
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "246813"
    with emulator(port) as charger:
        refused = driver(password=wrong)
        with pytest.raises(ChargerError):
            refused.connect()
        refused.close()  # frees the port
        d = driver()
        d.connect()
        d.set_current(12)
        d.enable(True)
        assert until(charging_at(d, 12.0))
        d.enable(False)
        charger.password = "999999"  # refusals and a failed re-login, logged at every level
        assert until(lambda: "password was rejected" in caplog.text)
    config = EVSEMasterConfig(name="c", serial=SERIAL, password=PIN)
    texts = caplog.text + repr(config) + str(config) + repr(d.__dict__)
    assert "send 0601" in caplog.text  # the datagrams were logged, masked
    for secret in (PIN, wrong):
        assert secret not in texts
        assert secret.encode().hex() not in texts


# --- config and registry -----------------------------------------------------------------------

def charger_entry(**keys: Any) -> dict[str, Any]:
    return {"name": "carport", "type": "evsemaster", "serial": "9181102751219513",
            "password": PIN} | keys


def settings_with(**keys: Any) -> Settings:
    return validate({"chargers": [charger_entry(**keys)]}, Path("test.toml"))


def test_config_defaults_and_registry() -> None:
    settings = settings_with(serial="ABCDEF0123456789", host="192.168.1.40:7248")
    c = settings.chargers[0]
    assert isinstance(c, EVSEMasterConfig)
    assert (c.serial, c.port, c.restart_gap_s, c.host) == ("abcdef0123456789", 28376, 60.0,
                                                           "192.168.1.40:7248")
    assert isinstance(create(c, settings.driver_env()), EVSEMasterCharger)


@pytest.mark.parametrize(("keys", "message"), [
    ({"serial": "91811027512195"}, "chargers[0].serial: String should match pattern"),
    ({"serial": "918110275121951x"}, "chargers[0].serial: String should match pattern"),
    ({"password": None}, "chargers[0]: set exactly one of password and password_file"),
    ({"password_file": "/run/pin"}, "chargers[0]: set exactly one of password and password_"),
    ({"password": "12345"}, "chargers[0].password: the password is the 6-character PIN"),
    ({"host": "192.168.1.40:port"}, "chargers[0].host: host must be 'address' or"),
    ({"max_current_a": 40}, "chargers[0]: max_current_a must be a whole number of amps from 6"),
    ({"min_current_a": 6.5}, "chargers[0]: min_current_a must be a whole number of amps"),
    ({"restart_gap_s": -1}, "chargers[0].restart_gap_s: input should be greater than or equal"),
    ({"port": 0}, "chargers[0].port: input should be greater than or equal to 1"),
])
def test_config_errors_name_the_key(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_with(**keys)
    assert str(err.value).startswith(f"test.toml: {message}"), str(err.value)


def test_config_error_does_not_echo_the_password() -> None:
    with pytest.raises(ConfigError) as err:
        settings_with(password="73918x4")
    assert "73918x4" not in str(err.value)


def test_example_block_in_config_example_is_valid() -> None:
    text = (REPO / "config.example.toml").read_text()
    block = text[text.index("# [[chargers]]                # an EVSEMaster"):].splitlines()
    lines = [line.removeprefix("# ") for line in block]
    end = next((i for i, line in enumerate(lines[1:], 1) if line.startswith("[")), len(lines))
    settings = validate(tomllib.loads("\n".join(lines[:end])), Path("config.example.toml"))
    assert isinstance(settings.chargers[0], EVSEMasterConfig)


# --- divert evsemaster discover -------------------------------------------------------------

def test_discover_command(port: int, charger: EVSEMasterEmulator,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evsemaster", "discover", "--timeout", "1", "--port", str(port),
                 "--bind", "127.0.0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SERIAL", "BRAND", "MODEL", "IP", "PHASES", "MAX", "A"]
    assert lines[1].split() == [SERIAL, BS20.brand, BS20.model, "127.0.0.1", "1", "32"]


def test_discover_command_errors(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evsemaster", "discover", "--timeout", "0.2", "--port", str(port), "--bind",
            "127.0.0.1"]
    assert main(args) == 1
    assert "no EVSEMaster charger heard in 0.2 s" in capsys.readouterr().err
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on UDP port {port}" in err


def test_unit_that_pushes_no_status_is_asked_and_starts(
        port: int, charger: EVSEMasterEmulator) -> None:
    charger.pushes_status = False
    config = EVSEMasterConfig(name="carport", serial=SERIAL, port=port, password=PIN,
                              max_current_a=16, restart_gap_s=30)
    d = EVSEMasterCharger(config, timing=replace(APP_CLOCKS, status_request_s=0.3),
                          connect_timeout_s=WAIT_S)
    try:
        d.connect()
        d.set_current(10)
        d.enable(True)
        assert until(charging_at(d, 10.0))
        assert [(e.kind, e.current_a) for e in charger.events] == [("login", 0), ("start", 10)]
    finally:
        d.close()


def test_emulator_answers_what_other_clients_send(port: int,
                                                  charger: EVSEMasterEmulator) -> None:
    """Requests the OEM app and outside libraries send, each answered as a unit does."""
    s = Session(SERIAL, PIN, port=port, bind_host="127.0.0.1", timing=APP_CLOCKS)
    s.start()
    try:
        assert s.wait_logged_in(WAIT_S)
        status = s.wait_status(WAIT_S)  # pushed by the emulator, as by the BS20
        assert status is not None and status.emergency_button == 1  # as in the capture
        amps = s.request(lambda serial, pw: p.encode(serial, pw, Cmd.MAX_CURRENT, b"\x02"),
                         Cmd.MAX_CURRENT_RESPONSE)
        assert amps == p.MaxCurrentSetting(2, 16)
        alarm = s.request(lambda serial, pw: p.get_setting(serial, pw, Cmd.ALARM_STRATEGY),
                          Cmd.ALARM_STRATEGY_RESPONSE)
        assert alarm == p.ByteSetting(2, 0)
        stop = s.request(lambda serial, pw: p.encode(serial, pw, Cmd.CHARGE_STOP,
                                                     b"\x01" + b"someone".ljust(16, b"\0")),
                         Cmd.CHARGE_STOP_RESPONSE)
        assert stop == p.ChargeStopReply(1, 1, 0)
    finally:
        s.close()
