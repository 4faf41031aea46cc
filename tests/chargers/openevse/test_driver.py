"""The driver against the strict emulator, over serial (pty), HTTP and MQTT (real mosquitto)."""

from __future__ import annotations

import json
import logging
import time
import tomllib
from pathlib import Path

import pytest
from conftest import Broker
from daemon_support import http_answering
from hypothesis import given, settings
from hypothesis import strategies as st

from chargers.base import Charger, ChargerError, CurrentLimiter
from chargers.openevse import rapi
from chargers.openevse.config import OpenEVSEConfig
from chargers.openevse.driver import CurrentRefused, OpenEVSECharger
from chargers.openevse.emulator import EmulatedEvse, HttpEmulator
from chargers.openevse.rapi import EvseState
from chargers.openevse.transports import reply_from_body
from chargers.registry import create
from divert.config import ConfigError, validate
from divert.core.capabilities import ControlKind

from .conftest import Rig, RigFactory


def test_driver_implements_the_interfaces(charger: OpenEVSECharger) -> None:
    assert isinstance(charger, Charger) and isinstance(charger, CurrentLimiter)


def test_connect_reads_version_and_range_and_narrows_the_limits(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    for transport in ("serial", "http", "mqtt"):
        rig = make_rig(transport, EmulatedEvse(min_a=8, max_a=24), min_current_a=6,
                       max_current_a=32)
        driver = rig.charger()
        with caplog.at_level(logging.INFO):
            caps = driver.connect()
        driver.close()
        assert (caps.control, caps.min_current_a, caps.max_current_a) == (
            ControlKind.CURRENT, 8, 24)
        assert caps.step_a == 1.0
        assert driver.version is not None and driver.version.firmware == "8.2.1"
        assert "narrowed to 8–24 A" in caplog.text
        caplog.clear()


def test_configured_limits_inside_the_range_are_kept(make_rig: RigFactory) -> None:
    driver = make_rig("serial", min_current_a=7, max_current_a=13.5).charger()
    caps = driver.connect()
    driver.close()
    assert (caps.min_current_a, caps.max_current_a) == (7, 13)  # whole amperes, inwards


def test_limits_outside_the_range_fail_at_connect(make_rig: RigFactory) -> None:
    driver = make_rig("http", EmulatedEvse(max_a=16), min_current_a=20,
                      max_current_a=32).charger()
    with pytest.raises(ChargerError, match="does not overlap"):
        driver.connect()


def test_control_and_readings_agree(rig: Rig, charger: OpenEVSECharger) -> None:
    c = rig.controller
    c.plug_in(requesting=True)
    charger.set_current(10)
    charger.enable(True)
    r = charger.read()
    assert (r.charging, r.vehicle_connected, r.current_a, r.voltage_v) == (True, True, 10, 230)
    assert r.power_w == pytest.approx(2300)
    assert r.state == "charging"
    charger.set_current(7.6)  # whole amperes on the wire, rounded down
    assert c.current_a == 7
    charger.enable(False)
    r = charger.read()
    assert (r.charging, r.vehicle_connected, r.current_a, r.state) == (False, True, 0,
                                                                       "sleeping")
    assert c.state == EvseState.SLEEPING
    c.unplug()
    charger.enable(True)
    r = charger.read()
    assert (r.charging, r.vehicle_connected, r.state) == (False, False, "no vehicle")
    c.set_fault(EvseState.NO_GROUND)
    assert charger.read().state == "fault: no ground"
    assert [f.command for f in c.commands if f.command in ("FE", "FS", "FD", "SC")] == [
        "SC", "FE", "SC", "FS", "FE"]


def test_pause_with_disable(make_rig: RigFactory) -> None:
    rig = make_rig("mqtt", pause_with="disable")
    driver = rig.charger()
    driver.connect()
    driver.enable(False)
    driver.close()
    assert rig.controller.state == EvseState.DISABLED


def test_three_phase_power_and_no_voltmeter(make_rig: RigFactory) -> None:
    c = EmulatedEvse(voltage_mv=None)
    c.plug_in()
    driver = make_rig("serial", c, phases=3, voltage_v=230).charger()
    driver.connect()
    driver.set_current(16)
    r = driver.read()
    driver.close()
    assert r.voltage_v is None  # not measured; power at the nominal voltage on 3 phases
    assert r.power_w == pytest.approx(16 * 230 * 3)


def test_refused_current_is_reported_with_the_kept_value(rig: Rig,
                                                          charger: OpenEVSECharger) -> None:
    charger.set_current(12)
    with pytest.raises(CurrentRefused) as refused:
        charger.set_current(40)
    assert (refused.value.requested_a, refused.value.kept_a) == (40, 12)
    assert "kept 12 A" in str(refused.value)
    rig.controller.over_temperature = True
    with pytest.raises(CurrentRefused, match="kept 12 A"):
        charger.set_current(16)
    charger.set_current(6)  # lowering is still allowed
    assert rig.controller.current_a == 6


def test_bare_nk_is_answered_by_reading_the_setting_back(make_rig: RigFactory) -> None:
    rig = make_rig("serial", EmulatedEvse(bare_nk=True))
    driver = rig.charger()
    driver.connect()
    driver.set_current(9)
    with pytest.raises(CurrentRefused, match="kept 9 A"):
        driver.set_current(50)
    driver.close()
    assert rig.controller.commands[-1].command == "GE"


# ---- faults ------------------------------------------------------------------------------

def test_lost_and_garbled_replies_are_retried(rig: Rig, charger: OpenEVSECharger) -> None:
    c = rig.controller
    c.plug_in()
    c.drop_next()  # the command is lost: resent
    charger.set_current(11)
    assert c.current_a == 11
    c.garble_next()  # noise and a corrupted reply: resent
    assert charger.read().current_a == 11
    assert c.state == EvseState.CHARGING


def test_silent_charger_raises_then_recovers(make_rig: RigFactory) -> None:
    for transport in ("serial", "http", "mqtt"):
        rig = make_rig(transport, timeout_s=0.3, retries=1)
        driver = rig.charger()
        driver.connect()
        rig.controller.drop_next(2)
        with pytest.raises(ChargerError, match=r"no valid reply .* to \$GG after 2 attempt"):
            driver.read()
        assert driver.read().state == "no vehicle"  # answers again: back to normal
        driver.close()


def test_late_reply_is_not_taken_for_the_next_one(make_rig: RigFactory) -> None:
    # Serial with sequence ids: the late reply to the first attempt is recognised.
    rig = make_rig("serial", timeout_s=0.3)
    driver = rig.charger()
    driver.connect()
    rig.controller.plug_in()
    driver.set_current(10)
    rig.controller.delay_next(0.5)
    assert driver.request("GE").params[0] == "10"
    driver.set_current(14)
    assert driver.request("GE").params[0] == "14"  # not the stale "$OK 10 …"
    assert driver.read().current_a == 14
    driver.close()


def test_http_reply_slower_than_the_timeout_is_retried(make_rig: RigFactory) -> None:
    rig = make_rig("http", timeout_s=0.3)
    driver = rig.charger()
    driver.connect()
    rig.controller.delay_next(0.6)
    driver.set_current(9)
    driver.close()
    assert rig.controller.current_a == 9


def test_async_lines_and_echo_are_set_aside(make_rig: RigFactory) -> None:
    rig = make_rig("serial")
    driver = rig.charger()
    driver.connect()
    c = rig.controller
    c.interleave("$ST 02", "$WF 02", "$AT 02 02 16 0100", "$AB 00 5.0.1")
    assert driver.request("GC").params == ("6", "32")
    driver.request("FF", "E", "1")  # echo on: every command comes back before its reply
    c.plug_in()
    driver.set_current(13)
    assert driver.read().current_a == 13
    assert c.echo
    driver.close()


def test_firmware_without_sequence_ids(make_rig: RigFactory) -> None:
    rig = make_rig("serial", EmulatedEvse(sequence_ids=False))
    driver = rig.charger()
    driver.connect()
    driver.set_current(10)
    driver.close()
    assert rig.controller.current_a == 10
    assert rig.controller.received[-1] == rapi.encode("SC", ["10", "V"])  # no sequence id


def test_sequence_ids_are_used_when_the_firmware_echoes_them(make_rig: RigFactory) -> None:
    rig = make_rig("serial")
    driver = rig.charger()
    driver.connect()
    driver.set_current(10)
    driver.close()
    assert all(f.seq is not None for f in rig.controller.commands)
    seqs = [f.seq for f in rig.controller.commands]
    assert len(set(seqs)) == len(seqs)


def test_reboot_loses_the_current_and_the_driver_carries_on(
        rig: Rig, charger: OpenEVSECharger) -> None:
    c = rig.controller
    c.plug_in()
    charger.set_current(8)
    charger.enable(False)
    c.reboot()
    r = charger.read()  # the controller came back enabled at its EEPROM current
    assert (r.charging, r.current_a) == (True, 16)
    charger.set_current(8)
    charger.enable(False)
    assert (c.current_a, c.state) == (8, EvseState.SLEEPING)


def test_wrong_http_credentials(make_rig: RigFactory) -> None:
    rig = make_rig("http", auth=("admin", "secret"))
    assert rig.charger().connect().max_current_a == 32
    driver = rig.charger(password="wrong")
    with pytest.raises(ChargerError, match="401 unauthorized: check username and password"):
        driver.connect()


def test_a_reply_labelled_with_an_odd_charset_is_still_read(make_rig: RigFactory) -> None:
    # httpx's `.text` raises for charset=utf-32 (no BOM); the driver reads the bytes itself.
    body = json.dumps({"cmd": "$GV", "ret": "$OK 8.2.1 5.1.3"}).encode()
    with http_answering(200, {"Content-Type": "application/json; charset=utf-32"},
                        body) as url:
        driver = make_rig("http").charger(url=url, retries=0)
        with pytest.raises(ChargerError, match=r"\$GC: current range: not a number"):
            driver.connect()  # $GV read; every later command gets the same answer
        assert driver.version == rapi.Version("8.2.1", "5.1.3")


def test_command_blocked_by_wifi_firmware_v4(make_rig: RigFactory) -> None:
    rig = make_rig("http", retries=0)
    assert isinstance(rig.front, HttpEmulator)
    rig.front.blocked = ("SC",)
    driver = rig.charger()
    driver.connect()
    with pytest.raises(ChargerError, match=r"blocked \$SC 10 V\^.. \(RAPI_RESPONSE_BLOCKED\)"):
        driver.set_current(10)


def test_unreachable_transports_raise_charger_errors(make_rig: RigFactory,
                                                     tmp_path: Path) -> None:
    rig = make_rig("serial", timeout_s=0.2, retries=0)
    with pytest.raises(ChargerError, match="cannot open"):
        rig.charger(device=str(tmp_path / "ttyUSB9")).connect()
    rig = make_rig("http", timeout_s=0.2, retries=0)
    rig.front.stop()
    with pytest.raises(ChargerError, match="ConnectError"):
        rig.charger().connect()



def test_a_serial_adapter_unplugged_while_connected_is_a_charger_error(
        make_rig: RigFactory) -> None:
    # The flush before each command then fails with termios.error (EIO), not an OSError.
    rig = make_rig("serial", timeout_s=0.2, retries=1)
    driver = rig.charger()
    driver.connect()
    try:
        rig.front.stop()  # the pty goes away, as a USB adapter does
        for command in (driver.read, lambda: driver.set_current(10),
                        lambda: driver.enable(True)):
            with pytest.raises(ChargerError, match=r"cannot open|write failed"):
                command()
    finally:
        driver.close()

def test_mqtt_broker_outage(make_rig: RigFactory, mosquitto: Broker) -> None:
    rig = make_rig("mqtt", broker=mosquitto, timeout_s=0.5, retries=1)
    driver = rig.charger()
    driver.connect()
    mosquitto.stop()
    with pytest.raises(ChargerError, match="not connected to the broker"):
        driver.set_current(10)
    mosquitto.start()
    # Both paho clients reconnect by themselves; the driver works again without a new
    # connect() (poll with a deadline: reconnecting takes a backoff period).
    deadline = time.monotonic() + 20
    while True:
        try:
            driver.set_current(10)
            break
        except ChargerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    driver.close()
    rig.front.stop()  # before the broker fixture goes
    assert rig.controller.current_a == 10


def test_reply_from_http_bodies() -> None:
    assert reply_from_body('{"cmd":"$GE","ret":"$OK 30 0121^21"}') == ("$OK 30 0121^21",
                                                                      None)
    assert reply_from_body('{"cmd":"$GE","error":"RAPI_RESPONSE_TIMEOUT"}') == (
        None, "RAPI_RESPONSE_TIMEOUT")
    page = "<html>RAPI Command Sent<p>$GC^20<p>&gt;$OK 6 80^1E<p></html>"
    assert reply_from_body(page) == ("$OK 6 80^1E", None)
    assert reply_from_body("\x00\xff garbage")[0] is None
    assert reply_from_body("[1, 2]")[0] is None


# ---- config --------------------------------------------------------------------------------

def _config(**keys: object) -> OpenEVSEConfig:
    entry = {"name": "garage", "type": "openevse", **keys}
    charger = validate({"chargers": [entry]}, Path("c.toml")).chargers[0]
    assert isinstance(charger, OpenEVSEConfig)
    return charger


def test_config_per_transport() -> None:
    assert _config(transport="serial", device="/dev/ttyUSB0").device == "/dev/ttyUSB0"
    http = _config(transport="http", url="http://openevse.local", username="admin",
                   password="pw")
    assert http.pause_with == "sleep"
    assert _config(transport="mqtt").topic == "openevse"
    assert _config(transport="mqtt", base_topic="garage/evse/").topic == "garage/evse"


@pytest.mark.parametrize(("keys", "message"), [
    ({"transport": "serial"}, 'chargers[0]: transport = "serial" needs device'),
    ({"transport": "http"}, 'chargers[0]: transport = "http" needs url'),
    ({"transport": "mqtt", "url": "http://x"}, 'url not used with transport = "mqtt"'),
    ({"transport": "serial", "device": "/dev/x", "base_topic": "o"}, "base_topic not used"),
    ({"transport": "http", "url": "openevse.local"}, "url must start with http://"),
    ({"transport": "http", "url": "http://x", "username": "a"}, "set both username and"),
    ({"transport": "mqtt", "base_topic": "a/#"}, "without wildcards"),
    ({"transport": "udp"}, "chargers[0].transport: Input should be"),
    ({"transport": "mqtt", "pause_with": "off"}, "chargers[0].pause_with: Input should be"),
    ({"transport": "mqtt", "bogus": 1}, "chargers[0].bogus: unknown key"),
])
def test_config_errors_name_the_key(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _config(**keys)
    assert message in str(error.value)


def test_registry_builds_the_driver_for_each_transport(make_rig: RigFactory) -> None:
    for transport in ("serial", "http"):
        rig = make_rig(transport)
        settings = validate({"chargers": [rig.config_entry]}, Path("c.toml"))
        driver = create(settings.chargers[0], settings.driver_env())
        assert isinstance(driver, OpenEVSECharger)
        assert driver.connect().max_current_a == 32
        driver.close()


def test_commented_examples_in_config_example_validate() -> None:
    text = (Path(__file__).resolve().parents[3] / "config.example.toml").read_text()
    blocks = [b for b in text.split("\n\n")
              if b.startswith("# [[chargers]]") and 'type = "openevse"' in b]
    assert [b.count("transport = ") for b in blocks] == [1, 1, 1]
    for block in blocks:
        data = tomllib.loads("\n".join(line.removeprefix("# ") for line in block.splitlines()))
        assert isinstance(validate(data, Path("example.toml")).chargers[0], OpenEVSEConfig)


# --- the volatile flag by firmware version, and values no controller reports ---------------

@pytest.mark.parametrize(("firmware", "protocol", "flag"), [
    ("D4.3.1", "2.0.2", "N"),  # rapi_proc.h of 2016-06-20: `SC amps [N]`
    ("D4.10.1", "4.0.1", "N"),  # RAPI 4.0.1 before the [V] documentation
    ("D4.10.2", "4.0.1", "V"),
    ("5.0.1", "4.0.1", "V"),
    ("8.2.3", "5.2.1", "V"),
])
def test_current_changes_use_the_flag_the_firmware_documents(
        make_rig: RigFactory, firmware: str, protocol: str, flag: str) -> None:
    controller = EmulatedEvse(firmware=firmware, protocol=protocol, sequence_ids=False)
    controller.plug_in()
    rig = make_rig("serial", controller)
    driver = rig.charger()
    driver.connect()
    try:
        driver.set_current(10)
        driver.set_current(12.7)
        # Each firmware's $GS and state notifications (decimal state before D5.2.0) read.
        driver.enable(True)
        assert (driver.read().state, driver.read().current_a) == ("charging", 12)
        driver.enable(False)
        assert driver.read().state == "sleeping"
    finally:
        driver.close()
    assert controller.set_current_commands() == [("10", flag), ("12", flag)]
    assert (controller.current_a, controller.eeprom_writes) == (12, 0)


@pytest.mark.parametrize(("firmware", "protocol"), [
    ("D3.5.0", "2.0.1"), ("D3.5.0", "1.0.3"), ("?", "?"), ("D4.10.1", "x")])
def test_no_control_without_a_documented_volatile_flag(
        make_rig: RigFactory, firmware: str, protocol: str) -> None:
    controller = EmulatedEvse(firmware=firmware, protocol=protocol, sequence_ids=False)
    driver = make_rig("serial", controller).charger()
    try:
        with pytest.raises(ChargerError, match="will not control it"):
            driver.connect()
        with pytest.raises(ChargerError, match="not connected"):
            driver.set_current(10)
    finally:
        driver.close()
    assert controller.set_current_commands() == []


@pytest.mark.parametrize("reply", [
    "$OK 1" + "0" * 92 + " 230000", "$OK 16000 9999999999", "$OK -5 230000"])
def test_implausible_measurements_are_refused(make_rig: RigFactory, reply: str) -> None:
    controller = EmulatedEvse()
    controller.answer_next("GG", reply)
    driver = make_rig("serial", controller).charger()
    driver.connect()
    try:
        with pytest.raises(ChargerError, match="implausible"):
            driver.read()
        assert driver.read().current_a == 0.0  # the next, sane reply is used
    finally:
        driver.close()


_TOKENS = st.text(alphabet="0123456789abcdefABCDEF-+.eExV: ^$", min_size=1, max_size=24)


def test_any_reply_is_a_reading_or_a_charger_error(make_rig: RigFactory) -> None:
    """Whatever the controller answers to a read or a command, the driver returns a
    plausible reading or raises ChargerError: no other exception leaves it."""
    c = EmulatedEvse()
    c.plug_in()
    driver = make_rig("serial", c, timeout_s=0.2, retries=1).charger()
    driver.connect()

    @settings(max_examples=150, deadline=None)
    @given(st.sampled_from(["GG", "GS", "SC", "FE", "GE"]), st.sampled_from(["$OK", "$NK"]),
           st.lists(_TOKENS, max_size=4))
    def check(command: str, kind: str, params: list[str]) -> None:
        c.answer_next(command, " ".join((kind, *params)))
        try:
            if command in ("GG", "GS"):
                reading = driver.read()
                assert reading.current_a is None or 0 <= reading.current_a <= rapi.MAX_A
                assert reading.voltage_v is None or rapi.MIN_V <= reading.voltage_v <= rapi.MAX_V
            elif command == "FE":
                driver.enable(True)
            else:
                if command == "GE":  # read after a bare `$NK` to `$SC`
                    c.answer_next("SC", "$NK")
                driver.set_current(10)
        except ChargerError:
            pass
        finally:
            c.clear_faults()

    try:
        check()
    finally:
        driver.close()
