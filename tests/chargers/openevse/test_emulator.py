"""The emulator is strict: it answers as the controller does, on each of its front ends."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

import httpx
import paho.mqtt.client as mqtt
import pytest
import serial
from conftest import Broker
from paho.mqtt.enums import CallbackAPIVersion

from chargers.openevse import rapi
from chargers.openevse.emulator import EmulatedEvse, HttpEmulator, MqttEmulator, SerialEmulator
from chargers.openevse.rapi import EvseState


def ask(controller: EmulatedEvse, line: str) -> str | None:
    return controller.exchange(line).reply


def framed(text: str) -> str:
    return f"{text}^{rapi.xor_checksum(text):02X}"


def test_checksums_are_verified_and_echoed_only_when_sent() -> None:
    c = EmulatedEvse()
    assert ask(c, "$GC^20") == "$OK 6 32^" + f"{rapi.xor_checksum('$OK 6 32'):02X}"
    assert ask(c, "$GC") == "$OK 6 32"  # no checksum in, none out
    assert ask(c, "$GC*AE") == framed("$OK 6 32")  # legacy in, XOR out
    assert ask(c, "$GC^21") == "$NK^21"  # bad checksum: refused, not executed
    assert ask(c, "$SC 20 V^00") == "$NK^21"
    assert c.current_a == 16
    assert ask(c, "$XX") == "$NK"  # unknown command
    assert ask(c, "$SC twenty V") == "$NK"
    assert ask(c, "$GS :3C") == "$OK 01 0 01 0000 :3C"  # sequence id echoed


def test_seed_example_on_a_controller_with_an_80_a_range() -> None:
    c = EmulatedEvse(max_a=80)
    assert ask(c, "$GC^20") == "$OK 6 80^1E"
    assert ask(c, "$SC 24^12") == "$OK 24^06"


def test_set_current_range_eeprom_and_over_temperature() -> None:
    c = EmulatedEvse(min_a=6, max_a=32, eeprom_current_a=16)
    assert ask(c, "$SC 10 V") == "$OK 10"
    assert (c.current_a, c.eeprom_current_a, c.eeprom_writes) == (10, 16, 0)
    assert ask(c, "$SC 40 V") == "$NK 10"  # outside $GC: refused with the kept value
    assert ask(c, "$SC 5 V") == "$NK 10"
    assert ask(c, "$SC 12") == "$OK 12"  # without V: saved to EEPROM
    assert (c.eeprom_current_a, c.eeprom_writes) == (12, 1)
    c.over_temperature = True
    assert ask(c, "$SC 20 V") == "$NK 12"  # raising is refused while over temperature
    assert ask(c, "$SC 8 V") == "$OK 8"  # lowering is allowed
    assert c.set_current_commands() == [("10", "V"), ("40", "V"), ("5", "V"), ("12",),
                                        ("20", "V"), ("8", "V")]
    old = EmulatedEvse(bare_nk=True)
    assert ask(old, "$SC 99 V") == "$NK"


def test_state_and_measurements_follow_car_and_commands() -> None:
    c = EmulatedEvse(voltage_mv=230_000, car_max_a=32)
    notes: list[str] = []
    c.on_async = notes.append
    assert rapi.parse_status(rapi.decode(ask(c, "$GS") or "")).state == EvseState.NOT_CONNECTED
    c.plug_in(requesting=True)
    assert notes == [framed("$AT 03 03 16 0000")]  # state, pilot, current, flags
    assert ask(c, "$SC 10 V") == "$OK 10"
    assert ask(c, "$GG") == "$OK 10000 230000"
    out = c.exchange("$FS")
    assert out.reply == "$OK" and out.after == [framed("$AT fe 02 10 0000")]  # after the reply
    assert ask(c, "$GS") == "$OK fe 0 02 0000"  # sleeping; the pilot still sees the car (B)
    assert ask(c, "$GG") == "$OK 0 230000"
    c.exchange("$FD")
    assert rapi.parse_status(rapi.decode(ask(c, "$GS") or "")).state == EvseState.DISABLED
    c.exchange("$FE")
    assert ask(c, "$GG") == "$OK 10000 230000"
    c.car_max_a = 7  # the car's onboard charger takes less than offered
    assert ask(c, "$GG") == "$OK 7000 230000"
    c.set_fault(EvseState.GFCI_FAULT)
    assert ask(c, "$GG") == "$OK 0 230000"
    assert rapi.parse_status(rapi.decode(ask(c, "$GS") or "")).text == "fault: GFCI"
    c.set_fault(None)
    c.unplug()
    assert notes[-1] == framed("$AT 01 01 10 0000")
    assert EmulatedEvse(voltage_mv=None).exchange("$GG").reply == "$OK 0 -1"


def test_reboot_forgets_the_volatile_current_and_sleep() -> None:
    c = EmulatedEvse(eeprom_current_a=16)
    notes: list[str] = []
    c.on_async = notes.append
    c.plug_in()
    c.exchange("$SC 8 V")
    c.exchange("$FS")
    notes.clear()
    c.reboot()
    assert (c.current_a, c.state, c.reboots) == (16, EvseState.CHARGING, 1)
    assert notes == [framed("$AB 00 8.2.1"), framed("$AT 03 03 16 0000")]


@pytest.mark.parametrize(("firmware", "sleeping", "note", "boot"), [
    ("D4.0.2", "$OK 254 0", "$ST fe", False),  # notifications without a checksum
    ("D5.1.0", "$OK 254 0", framed("$ST fe"), False),  # RAPI 2.0.1 on: checksummed
    ("D5.2.0", "$OK fe 0 02", framed("$AT fe 02 16 0000"), False),  # hex, pilot, $AT
    ("7.1.3", "$OK fe 0 02 0000", framed("$AT fe 02 16 0000"), True),  # vflags, $AB
])
def test_state_reports_take_the_form_of_the_firmware(firmware: str, sleeping: str,
                                                     note: str, boot: bool) -> None:
    c = EmulatedEvse(firmware=firmware)
    notes: list[str] = []
    c.on_async = notes.append
    c.plug_in()
    out = c.exchange("$FS")
    assert ask(c, "$GS") == sleeping and out.after == [note]
    notes.clear()
    c.reboot()
    assert notes[0].startswith("$AB") is boot and len(notes) == 1 + boot


def test_firmware_without_sequence_ids_treats_them_as_a_parameter() -> None:
    c = EmulatedEvse(sequence_ids=False)
    assert ask(c, "$GV :05") == "$OK 8.2.1 5.1.3"  # answered, but no id echoed
    assert ask(c, "$SC 10 V :06") == "$NK"  # one token too many for $SC
    assert c.current_a == 16


def test_faults_lost_garbled_delayed() -> None:
    c = EmulatedEvse()
    c.drop_next()
    assert c.exchange("$FS").reply is None and c.state != EvseState.SLEEPING
    c.garble_next()
    assert c.exchange("$GC").noise
    c.delay_next(0.5)
    assert c.exchange("$GC").delay_s == 0.5
    assert c.exchange("$GC") == c.exchange("$GC")  # faults apply once


# ---- front ends ---------------------------------------------------------------------------

@pytest.fixture
def pty() -> Iterator[tuple[EmulatedEvse, serial.Serial]]:
    c = EmulatedEvse()
    emulator = SerialEmulator(c)
    port = serial.Serial(emulator.path, 115200, timeout=2)
    yield c, port
    port.close()
    emulator.stop()


def read_line(port: serial.Serial) -> bytes:
    return bytes(port.read_until(b"\r"))


def test_serial_front_end_answers_echoes_and_notifies(
        pty: tuple[EmulatedEvse, serial.Serial]) -> None:
    c, port = pty
    port.write(b"noise$GC^20\r")  # bytes before '$' are skipped, as by the firmware
    assert read_line(port) == framed("$OK 6 32").encode() + b"\r"
    c.plug_in()
    assert read_line(port) == framed("$AT 03 03 16 0000").encode() + b"\r"
    port.write(b"$FF E 1\r")
    assert read_line(port) == b"$OK\r"
    port.write(b"$GC\r")
    assert read_line(port) == b"\n$GC\r"  # LF after each reply, then the echo of "$GC"
    assert read_line(port) == b"$OK 6 32\r"
    assert port.read(1) == b"\n"
    c.interleave("$WF 02")
    port.write(b"$FF E 0\r")
    assert read_line(port) == b"$FF E 0\r"
    assert read_line(port) == framed("$WF 02").encode() + b"\r"
    assert read_line(port) == b"$OK\r"
    c.garble_next()
    port.write(b"$GE\r")
    assert port.read_until(b"$OX").endswith(b"$OX")  # noise, then a corrupted reply


def test_http_front_end_json_html_auth_and_timeout() -> None:
    c = EmulatedEvse(max_a=80)
    emulator = HttpEmulator(c, "admin", "secret")
    try:
        with httpx.Client(base_url=emulator.url, timeout=5) as client:
            assert client.get("/r", params={"rapi": "$GC^20"}).status_code == 401
            auth = ("admin", "secret")
            r = client.get("/r", params={"json": "1", "rapi": "$GC^20"}, auth=auth)
            assert r.json() == {"cmd": "$GC^20", "ret": "$OK 6 80^1E"}
            r = client.get("/r?rapi=%24SC+24%5E12", auth=auth)  # the guide's URL, as HTML
            assert "&gt;$OK 24^06" in r.text
            assert c.received[-1] == "$SC 24^12"
            r = client.get("/r", params={"json": "1", "rapi": "$GS"}, auth=auth)
            assert c.received[-1] == framed("$GS")  # the module adds its checksum
            c.drop_next()
            r = client.get("/r", params={"json": "1", "rapi": "$GS"}, auth=auth)
            assert r.status_code == 500 and r.json()["error"] == "RAPI_RESPONSE_TIMEOUT"
    finally:
        emulator.stop()


def test_mqtt_front_end(broker: Broker) -> None:
    host, port = broker.host, broker.port
    c = EmulatedEvse()
    emulator = MqttEmulator(c, host, port, "openevse")
    replies: queue.Queue[str] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe")
    client.on_message = lambda _c, _u, m: replies.put(m.payload.decode())
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(host, port)
    client.subscribe("openevse/rapi/out")
    client.loop_start()
    try:
        assert subscribed.wait(5)
        client.publish("openevse/rapi/in/$SC", "13 V")
        assert replies.get(timeout=5) == framed("$OK 13")
        client.publish("openevse/rapi/in/$GC", "")
        assert replies.get(timeout=5) == framed("$OK 6 32")
        assert c.received[-2:] == [framed("$SC 13 V"), framed("$GC")]
        client.publish("openevse/rapi/in/status", "x")  # not a RAPI topic: ignored
        client.publish("openevse/rapi/in/$GV", "")
        assert json.dumps(replies.get(timeout=5)) == json.dumps(framed("$OK 8.2.1 5.1.3"))
    finally:
        client.disconnect()
        client.loop_stop()
        emulator.stop()


def test_read_only_and_display_commands_are_answered_as_the_controller_does() -> None:
    c = EmulatedEvse()
    for line in ("$GT", "$G3", "$GH", "$GF", "$GA", "$FB 2", "$FP 0 0 solar"):
        reply = ask(c, line)
        assert reply is not None and reply.startswith("$OK"), (line, reply)
    assert ask(c, "$G3") == "$OK 0" and ask(c, "$GF") == "$OK 0 0 0"
    assert len(rapi.decode(ask(c, "$GT") or "").params) == 6
    assert ask(c, "$FB red") == "$NK"


def test_old_firmware_takes_its_own_flag_and_no_flag_before_2_0_2() -> None:
    n = EmulatedEvse(firmware="D4.3.1", protocol="2.0.2")
    assert ask(n, "$SC 10 N") == "$OK 10" and n.eeprom_writes == 0
    assert ask(n, "$SC 11 V") == "$OK 11" and n.eeprom_writes == 1  # undocumented: stored
    old = EmulatedEvse(firmware="D3.5.0", protocol="2.0.1")
    assert ask(old, "$SC 10 N") == "$NK" and old.current_a == 16
    assert ask(old, "$SC 10") == "$OK 10" and old.eeprom_writes == 1


def test_http_front_end_post_status_and_config() -> None:
    c = EmulatedEvse(firmware="7.1.3", protocol="5.1.4")
    c.plug_in()
    emulator = HttpEmulator(c)
    try:
        with httpx.Client(base_url=emulator.url, timeout=5) as client:
            posted = client.post("/r", data={"json": "1", "rapi": "$SC 10 V"})
            assert posted.status_code == 200 and posted.json()["ret"].startswith("$OK 10")
            status = client.get("/status").json()
            assert (status["state"], status["pilot"], status["amp"]) == (3, 10, 10_000)
            config = client.get("/config").json()
            assert (config["firmware"], config["protocol"]) == ("7.1.3", "5.1.4")
            assert client.post("/nothing", data={}).status_code == 404
    finally:
        emulator.stop()
