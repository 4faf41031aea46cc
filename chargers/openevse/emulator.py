"""An OpenEVSE controller emulator speaking RAPI strictly, over a pty, HTTP `/r` or MQTT.

It is the test double for the driver and a way to try divert without hardware:

    python -m chargers.openevse.emulator serial              # prints the pty path
    python -m chargers.openevse.emulator http --port 8080
    python -m chargers.openevse.emulator mqtt --broker localhost:1883 --base-topic openevse

It lives in the package (not under tests/) so that both the tests and users reading the
`divert rapi` docs can run it; it uses only the runtime dependencies.

What it enforces, as the controller does: checksums (`$NK` for a bad one), the `$GC` range
and the over-temperature rule for `$SC` (`$NK` with the current it kept), `$SC n` writes
EEPROM and `$SC n <flag>` does not, where the flag is the one the emulated firmware version
documents (`N` before firmware D4.10.2, `V` from it; a protocol older than RAPI 2.0.2 takes
no flag and refuses `$SC` with one). It tracks sleep/enable/disable and the car's J1772 state
(A/B/C) so `$GS` and `$GG` agree with the commanded current, notifies every state change,
and injects faults: lost commands, noise and corrupted replies, late replies, and a reboot
that forgets the volatile current.

`$GS` and the notifications take the form of the emulated firmware, from the controller's
CHANGELOG: before D4.1.0 (RAPI 2.0.1) notifications carry no checksum; before D5.2.0 `$GS`
is `state(decimal) elapsed` and a state change is `$ST state(hex)`; from D5.2.0 the state is
hex with the pilot state after it, and `$AT state pilot current vflags` replaces `$ST`; from
D6.0.0 `$GS` ends in the vflags too and a boot is announced with `$AB`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import threading
import time
import tty
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chargers.openevse import rapi
from chargers.openevse.rapi import EvseState

NOISE = b"\x00\xfe\x15~#G\xff\r$O\x03K 1\r"  # a bare '$' fragment among control bytes
_BUFFER_LEN = 64  # a frame longer than this is dropped, as the firmware's buffer overflows


@dataclass
class Exchange:
    """The outcome of one command line: the reply (None: lost) and how to deliver it."""

    reply: str | None
    delay_s: float = 0.0
    noise: bool = False  # corrupt the reply and send noise before it
    before: list[str] = field(default_factory=list)  # async lines ahead of the reply
    after: list[str] = field(default_factory=list)  # state changes the command caused


class EmulatedEvse:
    """The controller's state and RAPI command processor. Thread-safe.

    Currents in A, voltage in mV as RAPI reports it, energy in W·s."""

    def __init__(self, *, min_a: int = 6, max_a: int = 32, eeprom_current_a: int = 16,
                 car_max_a: int = 32, voltage_mv: int | None = 230_000,
                 firmware: str = "8.2.1", protocol: str = "5.1.3",
                 sequence_ids: bool = True, bare_nk: bool = False) -> None:
        self._lock = threading.RLock()
        self.min_a, self.max_a = min_a, max_a
        self.eeprom_current_a = eeprom_current_a
        self.current_a = eeprom_current_a
        self.car_max_a = car_max_a  # what the car's onboard charger draws at most
        self.voltage_mv = voltage_mv  # None: no voltmeter fitted
        self.firmware, self.protocol = firmware, protocol
        self.sequence_ids = sequence_ids  # False: firmware before sequence ids
        self.bare_nk = bare_nk  # True: `$SC` answers a bare `$NK` (old firmware)
        self.mode = "enabled"  # enabled, sleeping or disabled
        self.car = "A"  # J1772: A not connected, B connected, C requesting charge
        self.fault: EvseState | None = None
        self.over_temperature = False
        self.echo = False
        self.eeprom_writes = 0
        self.reboots = 0
        self.received: list[str] = []  # every command line, as received
        self.commands: list[rapi.Frame] = []  # every valid command, decoded
        self.on_async: Callable[[str], None] = lambda line: None
        self._drop = self._garble = self._delay_count = 0
        self._delay_s = 0.0
        self._interleave: list[str] = []
        self._canned: dict[str, tuple[str, int]] = {}  # command → (reply, times left)
        self._charge_start = time.monotonic()
        self._last_tick = time.monotonic()
        self.session_ws = 0.0
        self.total_wh = 0.0
        self._reported_state = self.state

    # ---- the plant -------------------------------------------------------------------

    @property
    def state(self) -> EvseState:
        with self._lock:
            if self.fault is not None:
                return self.fault
            if self.mode == "sleeping":
                return EvseState.SLEEPING
            if self.mode == "disabled":
                return EvseState.DISABLED
            return {"A": EvseState.NOT_CONNECTED, "B": EvseState.CONNECTED,
                    "C": EvseState.CHARGING}[self.car]

    @property
    def pilot(self) -> int:
        """The car's J1772 state: it can only be in C while the EVSE offers current."""
        if self.car == "A":
            return EvseState.NOT_CONNECTED
        return EvseState.CHARGING if self.state == EvseState.CHARGING else EvseState.CONNECTED

    @property
    def draw_ma(self) -> int:
        """The current the car draws, in mA."""
        if self.state != EvseState.CHARGING:
            return 0
        return min(self.current_a, self.car_max_a) * 1000

    def _tick(self) -> None:
        now = time.monotonic()
        power_w = self.draw_ma / 1000 * (self.voltage_mv or 230_000) / 1000
        self.session_ws += power_w * (now - self._last_tick)
        self.total_wh += power_w * (now - self._last_tick) / 3600
        self._last_tick = now

    def since(self, *version: int) -> bool:
        """Whether the emulated firmware is `version` or newer (an unreadable one is new)."""
        number = rapi.version_number(self.firmware)
        return number is None or number >= version

    def _changed(self) -> list[str]:
        """The notification of a state change since the last report, if any."""
        state = self.state
        if state == self._reported_state:
            return []
        if state == EvseState.CHARGING:
            self._charge_start = time.monotonic()
        self._reported_state = state
        if self.since(5, 2):
            line = f"$AT {state:02x} {self.pilot:02x} {self.current_a} 0000"
        else:
            line = f"$ST {state:02x}"
        return [_frame(line) if self.since(4, 1) else line]

    def _mutate(self, change: Callable[[], None]) -> None:
        with self._lock:
            self._tick()
            change()
            lines = self._changed()
        for line in lines:
            self.on_async(line)

    def plug_in(self, requesting: bool = True) -> None:
        """Connect a car; `requesting`: it asks for charge (J1772 C) as soon as offered."""
        self._mutate(lambda: setattr(self, "car", "C" if requesting else "B"))

    def unplug(self) -> None:
        self._mutate(lambda: setattr(self, "car", "A"))

    def set_fault(self, fault: EvseState | None) -> None:
        self._mutate(lambda: setattr(self, "fault", fault))

    def reboot(self) -> None:
        """Power cycle: the volatile current and sleep are forgotten, EEPROM stays."""
        def change() -> None:
            self.current_a = self.eeprom_current_a
            self.mode = "enabled"
            self.echo = False
            self.fault = None
            self.session_ws = 0.0
            self.reboots += 1
        with self._lock:
            self._tick()
            change()
            self._reported_state = EvseState.UNKNOWN
            boot = [_frame(f"$AB 00 {self.firmware}")] if self.since(6) else []
            lines = [*boot, *self._changed()]
        for line in lines:
            self.on_async(line)

    # ---- fault injection -------------------------------------------------------------

    def drop_next(self, count: int = 1) -> None:
        """The next `count` commands are lost: not executed, not answered."""
        with self._lock:
            self._drop += count

    def garble_next(self, count: int = 1) -> None:
        """The next `count` replies arrive corrupted (bad checksum) after line noise."""
        with self._lock:
            self._garble += count

    def delay_next(self, delay_s: float, count: int = 1) -> None:
        """The next `count` replies arrive `delay_s` late (the commands act at once)."""
        with self._lock:
            self._delay_s, self._delay_count = delay_s, count

    def clear_faults(self) -> None:
        """Stop injecting faults: every command is answered at once again."""
        with self._lock:
            self._drop = self._garble = self._delay_count = 0
            self._interleave = []
            self._canned.clear()

    def answer_next(self, command: str, reply: str, count: int = 1) -> None:
        """Answer the next `count` `$<command>` with `reply` (e.g. "$OK 99999 230000"): a
        well-formed frame carrying values of a broken controller. The command is still
        executed."""
        with self._lock:
            self._canned[command] = (reply, count)

    def interleave(self, *lines: str) -> None:
        """Send these async lines (checksummed) between the next command and its reply."""
        with self._lock:
            self._interleave.extend(_frame(line) for line in lines)

    # ---- RAPI ------------------------------------------------------------------------

    def exchange(self, line: str) -> Exchange:
        """Process one received command line (without CR)."""
        with self._lock:
            self.received.append(line)
            if self._drop:
                self._drop -= 1
                return Exchange(None)
            self._tick()
            reply = self._process(line)
            out = Exchange(reply, before=self._interleave)
            self._interleave = []
            if self._garble:
                self._garble -= 1
                out.noise = True
            if self._delay_count:
                self._delay_count -= 1
                out.delay_s = self._delay_s
            out.after = self._changed()  # the firmware reports a state change after the reply
        return out

    def _process(self, line: str) -> str:
        try:
            frame = rapi.decode(line)
        except rapi.RapiError:
            # A bad checksum (or any frame the firmware cannot tokenise) is refused; the
            # reply carries a checksum when the command had one.
            return _frame("$NK") if ("^" in line or "*" in line) else "$NK"
        if frame.seq is not None and not self.sequence_ids:  # old firmware: just a token
            frame = rapi.Frame(frame.command, (*frame.params, f":{frame.seq:02X}"), None,
                               frame.checksum)
        self.commands.append(frame)
        ok, params = self._command(frame.command, frame.params)
        text = " ".join(("$OK" if ok else "$NK", *params))
        if frame.command in self._canned:
            text, left = self._canned.pop(frame.command)
            if left > 1:
                self._canned[frame.command] = (text, left - 1)
        if frame.seq is not None:
            text += f" :{frame.seq:02X}"
        return _frame(text) if frame.checksum else text

    def _command(self, command: str, params: tuple[str, ...]) -> tuple[bool, list[str]]:
        match command, params:
            case "GV", _:
                return True, [self.firmware, self.protocol]
            case "GC", _:
                return True, [str(self.min_a), str(self.max_a)]
            case "GE", _:
                return True, [str(self.current_a), "0001"]  # flags: service level 2
            case "GS", _:
                elapsed_s = (int(time.monotonic() - self._charge_start)
                             if self.state == EvseState.CHARGING else 0)
                if not self.since(5, 2):
                    return True, [str(int(self.state)), str(elapsed_s)]
                vflags = ["0000"] if self.since(6) else []
                return True, [f"{self.state:02x}", str(elapsed_s), f"{self.pilot:02x}", *vflags]
            case "GG", _:
                return True, [str(self.draw_ma), str(self.voltage_mv or -1)]
            case "GU", _:
                return True, [str(int(self.session_ws)), str(int(self.total_wh))]
            case "GP", _:
                return True, ["235", str(rapi.NO_SENSOR), str(rapi.NO_SENSOR)]
            case "GT", _:  # the RTC: 2-digit year
                now = time.localtime()
                return True, [str(v) for v in (now.tm_year % 100, now.tm_mon, now.tm_mday,
                                               now.tm_hour, now.tm_min, now.tm_sec)]
            case ("G3" | "GH"), _:  # time limit (15 min units), energy limit (kWh): none
                return True, ["0"]
            case "GF", _:  # GFI, no-ground and stuck-relay trip counters, hex
                return True, ["0", "0", "0"]
            case "GA", _:  # ammeter scale factor and offset
                return True, ["220", "0"]
            case "FB", (color,) if color.isdigit():  # LCD backlight colour
                return True, []
            case "FP", (x, y, *_) if x.isdigit() and y.isdigit():  # print on the LCD
                return True, []
            case "SC", (amps,):
                return self._set_current(amps, volatile=False)
            case "SC", (amps, flag):
                documented = rapi.volatile_flag(rapi.Version(self.firmware, self.protocol))
                if documented is None:  # this firmware takes `$SC amps` only
                    return False, []
                # Read as documented: any other flag is no promise, so it counts as a write.
                return self._set_current(amps, volatile=flag == documented)
            case "FE", ():
                self.mode = "enabled"
                return True, []
            case "FS", ():
                self.mode = "sleeping"
                return True, []
            case "FD", ():
                self.mode = "disabled"
                return True, []
            case "FR", ():
                threading.Timer(0.01, self.reboot).start()  # the reply goes out first
                return True, []
            case ("FF", ("E", "0" | "1" as on)) | ("SE", (on,)):
                self.echo = on == "1"
                return True, []
            case "FF", (("B" | "D" | "F" | "G" | "R" | "T" | "V"), ("0" | "1")):
                return True, []  # safety checks: accepted, not modelled
        return False, []

    def _set_current(self, amps: str, volatile: bool) -> tuple[bool, list[str]]:
        if not amps.isdigit():
            return False, []
        value = int(amps)
        refused = (not self.min_a <= value <= self.max_a
                   or (self.over_temperature and value > self.current_a))
        if not refused:
            self.current_a = value
            if not volatile:
                self.eeprom_current_a = value
                self.eeprom_writes += 1
        if refused and self.bare_nk:
            return False, []
        return not refused, [str(self.current_a)]

    def status_json(self) -> dict[str, Any]:
        """The WiFi module's `GET /status` (the fields it fills from RAPI)."""
        with self._lock:
            self._tick()
            return {"mode": "STA", "wifi_client_connected": 1, "state": int(self.state),
                    "pilot": self.current_a, "amp": self.draw_ma,
                    "voltage": (self.voltage_mv or 230_000) / 1000,
                    "wattsec": int(self.session_ws), "watthour": int(self.total_wh),
                    "temp": 235, "elapsed": 0, "vehicle": int(self.car != "A")}

    def config_json(self, wifi_version: str) -> dict[str, Any]:
        """The WiFi module's `GET /config`: its own and the controller's versions."""
        with self._lock:
            return {"firmware": self.firmware, "protocol": self.protocol,
                    "version": wifi_version, "wifi_serial": "EMULATED01", "buildenv": "emulator",
                    "min_current_hard": self.min_a, "max_current_hard": self.max_a,
                    "max_current_soft": self.current_a, "service": 2}

    def set_current_commands(self) -> list[tuple[str, ...]]:
        """The parameters of every `$SC` received, e.g. [("16", "V")]."""
        with self._lock:
            return [f.params for f in self.commands if f.command == "SC"]


def _frame(text: str) -> str:
    """`text` with its XOR checksum, as the firmware sends every line it originates."""
    return f"{text}^{rapi.xor_checksum(text):02X}"


def _corrupt(reply: str) -> str:
    """The reply with one character changed, so its checksum no longer matches."""
    at = min(2, len(reply) - 1)
    return reply[:at] + ("X" if reply[at] != "X" else "Y") + reply[at + 1:]


# ---- front ends ---------------------------------------------------------------------

class SerialEmulator:
    """The controller on a pty: open `path` with pyserial as if it were /dev/ttyUSB0."""

    def __init__(self, controller: EmulatedEvse) -> None:
        self.controller = controller
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._buffer = b""
        controller.on_async = self._write_line
        self._thread = threading.Thread(target=self._run, name="openevse-pty", daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        with self._write_lock, contextlib.suppress(OSError):
            os.write(self._master, data)

    def _write_line(self, line: str) -> None:
        self._write(line.encode("ascii") + (b"\r\n" if self.controller.echo else b"\r"))

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._master], [], [], 0.05)
            if not readable:
                continue
            try:
                data = os.read(self._master, 1024)
            except OSError:
                continue
            for byte in data:
                self._receive(bytes([byte]))

    def _receive(self, char: bytes) -> None:
        if self.controller.echo:
            self._write(char)
        if char == b"$":
            self._buffer = char
        elif self._buffer and char == b"\r":
            line, self._buffer = self._buffer.decode("ascii", errors="replace"), b""
            self._answer(self.controller.exchange(line))
        elif self._buffer:
            self._buffer += char
            if len(self._buffer) > _BUFFER_LEN:
                self._buffer = b""

    def _answer(self, out: Exchange) -> None:
        if out.reply is None:
            return
        reply = out.reply

        def send() -> None:
            for line in out.before:
                self._write_line(line)
            if out.noise:
                self._write(NOISE + b"\x07\x08")  # noise glued to the front of the reply
                self._write_line(_corrupt(reply))
            else:
                self._write_line(reply)
            for line in out.after:
                self._write_line(line)
        if out.delay_s:
            threading.Timer(out.delay_s, send).start()
        else:
            send()

    def stop(self) -> None:
        """Close the pty, as if the adapter were unplugged. Safe to call again."""
        if self._stop.is_set():
            return  # closing the descriptors twice could close someone else's
        self._stop.set()
        self._thread.join(2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class HttpEmulator:
    """The WiFi module's RAPI (`GET /r?rapi=…[&json=1]`, or the same as a `POST /r` form),
    `GET /status` and `GET /config`, on a free loopback port.

    `username`/`password` turn on basic auth like the module's www_username/www_password;
    `blocked` lists commands (e.g. "SC") the module refuses with HTTP 400, as WiFi firmware
    v4 does for what it arbitrates through claims. `wifi_version` is the module's own firmware
    in `/config`; the claims and override API of WiFi firmware v4 is not emulated."""

    def __init__(self, controller: EmulatedEvse, username: str | None = None,
                 password: str | None = None, port: int = 0,
                 blocked: tuple[str, ...] = (), wifi_version: str = "4.1.0") -> None:
        self.controller = controller
        self.blocked = blocked
        self.wifi_version = wifi_version
        expected = (f"Basic {b64encode(f'{username}:{password}'.encode()).decode()}"
                    if username is not None else None)
        self.requests = 0
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                with contextlib.suppress(OSError):  # the client may have given up waiting
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    if status == 401:
                        self.send_header("WWW-Authenticate", 'Basic realm="openevse"')
                    self.end_headers()
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                emulator.requests += 1
                if expected is not None and self.headers.get("Authorization") != expected:
                    self._send(401, b"", "text/plain")
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                url = urlsplit(self.path)
                if url.path in ("/status", "/config"):
                    body = (emulator.controller.status_json() if url.path == "/status"
                            else emulator.controller.config_json(emulator.wifi_version))
                    self._send(200, json.dumps(body).encode(), "application/json")
                elif url.path in ("/r", "/rapi"):
                    self._rapi(parse_qs(url.query))
                else:
                    self._send(404, b"", "text/plain")

            def do_POST(self) -> None:
                """`POST /r` with the same fields as a form (how newer clients send RAPI)."""
                if not self._authorized():
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if urlsplit(self.path).path not in ("/r", "/rapi") or not 0 <= length <= 4096:
                    self._send(404 if length >= 0 else 400, b"", "text/plain")
                    return
                form = self.rfile.read(length).decode("ascii", errors="replace")
                self._rapi(parse_qs(form))

            def _rapi(self, query: dict[str, list[str]]) -> None:
                as_json = query.get("json", ["0"])[0] in ("", "1", "true")
                if "rapi" not in query:
                    self._send(200, b"<html>RAPI command: <form></form></html>", "text/html")
                    return
                self._answer(query["rapi"][0], as_json)

            def _answer(self, command: str, as_json: bool) -> None:
                if command[1:3] in emulator.blocked:
                    body = {"cmd": command, "error": "RAPI_RESPONSE_BLOCKED"}
                    self._send(400, json.dumps(body).encode(), "application/json")
                    return
                # The module's RAPI sender frames the command with its own checksum.
                line = command if ("^" in command or "*" in command) else _frame(command)
                out = emulator.controller.exchange(line)
                time.sleep(out.delay_s)
                if out.noise:
                    self._send(200, NOISE, "application/json")
                elif out.reply is None:  # the module gave up waiting for the controller
                    body = {"cmd": command, "error": "RAPI_RESPONSE_TIMEOUT"}
                    self._send(500, json.dumps(body).encode(), "application/json")
                elif as_json:
                    body = {"cmd": command, "ret": out.reply}
                    self._send(200, json.dumps(body).encode(), "application/json")
                else:
                    page = f"<html>RAPI Command Sent<p>{command}<p>&gt;{out.reply}<p></html>"
                    self._send(200, page.encode(), "text/html")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="openevse-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)


class MqttEmulator:
    """The WiFi module's RAPI over MQTT: `<base>/rapi/in/$XX` → `<base>/rapi/out`."""

    def __init__(self, controller: EmulatedEvse, host: str, port: int,
                 base_topic: str = "openevse") -> None:
        self.controller = controller
        self.base_topic = base_topic
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"openevse-emulator-{id(self):x}")
        self._ready = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port, 30)
        self._client.loop_start()
        if not self._ready.wait(10):
            self.stop()
            raise RuntimeError(f"emulator could not subscribe on {host}:{port}")

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any,
                    _props: Any) -> None:
        client.subscribe(f"{self.base_topic}/rapi/in/#", qos=0)

    def _on_message(self, _client: mqtt.Client, _userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        command = message.topic.rsplit("/", 1)[-1]
        if not (len(command) == 3 and command.startswith("$")):
            return  # the module only treats `$XX` topics as RAPI
        payload = message.payload.decode("ascii", errors="replace")
        out = self.controller.exchange(_frame(f"{command} {payload}" if payload else command))
        if out.reply is None:
            return
        reply = out.reply

        def publish() -> None:
            data: bytes | str = NOISE if out.noise else reply
            self._client.publish(f"{self.base_topic}/rapi/out", data, qos=0)
        if out.delay_s:
            threading.Timer(out.delay_s, publish).start()
        else:
            publish()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chargers.openevse.emulator",
                                     description="An OpenEVSE controller emulator (RAPI).")
    parser.add_argument("transport", choices=("serial", "http", "mqtt"))
    parser.add_argument("--port", type=int, default=8080, help="http: port on 127.0.0.1")
    parser.add_argument("--broker", default="localhost:1883", help="mqtt: host:port")
    parser.add_argument("--base-topic", default="openevse", help="mqtt: base topic")
    parser.add_argument("--no-car", action="store_true", help="start with no car plugged in")
    args = parser.parse_args(argv)
    controller = EmulatedEvse()
    if not args.no_car:
        controller.plug_in()
    front: SerialEmulator | HttpEmulator | MqttEmulator
    if args.transport == "serial":
        front = SerialEmulator(controller)
        print(f"OpenEVSE emulator on {front.path}  (device = \"{front.path}\")")
    elif args.transport == "http":
        front = HttpEmulator(controller, port=args.port)
        print(f"OpenEVSE emulator on {front.url}  (url = \"{front.url}\")")
    else:
        host, _, port = args.broker.rpartition(":")
        front = MqttEmulator(controller, host or "localhost", int(port), args.base_topic)
        print(f"OpenEVSE emulator on mqtt {args.broker}, base topic {args.base_topic}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        front.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
