"""A strict EVSEMaster charger on UDP, for tests and for trying divert without hardware.

It behaves as the reference describes a unit: broadcasts Login while nobody is logged in,
answers RequestLogin with LoginResponse or PasswordError, and any command before
LoginConfirm with PasswordError; once logged in it pings with Heading and pushes AC and
charging status, and drops the session when pings go unanswered. ChargeStart/ChargeStop get
the documented replies; the session current is fixed at start, as on most real units.
Malformed datagrams are dropped without an answer (and counted).

A car is plugged in by default and draws the session current. Faults can be injected:
a changed password, silence, and truncated, corrupted or paired outgoing datagrams.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from chargers.evsemaster import protocol as p
from chargers.evsemaster.protocol import (
    Action,
    Cmd,
    CurrentState,
    GunState,
    OutputState,
    ProtocolError,
)

log = logging.getLogger(__name__)

BS20 = p.LoginInfo(1, "BESEN", "BS20", "C.3252.112A008", 7040, 32, "WWW.EVSE.COM")
TIME_TOLERANCE_S = 300.0  # a ChargeStart time further off the charger's clock is refused


class Fault(StrEnum):
    """Applied to the next outgoing datagrams (PAIR: joins two datagrams in one packet)."""

    TRUNCATE = "truncate"
    CORRUPT = "corrupt"
    PAIR = "pair"


@dataclass(frozen=True)
class EmulatorTiming:
    """Charger clocks in s; the defaults are a real unit's, tests shrink them."""

    login_interval_s: float = 5.0  # Login broadcasts while nobody is logged in
    heading_interval_s: float = 10.0
    status_interval_s: float = 5.0
    session_timeout_s: float = 30.0  # Heading unanswered this long: the session ends
    tick_s: float = 0.05


@dataclass(frozen=True)
class Event:
    """Something the charger did, at `at_s` on the monotonic clock. `current_a` for starts."""

    at_s: float
    kind: str  # login, password_error, session_dropped, start, refused_start, stop
    current_a: int = 0
    detail: str = ""


class EVSEMasterEmulator:
    """One emulated charger. Its socket binds an ephemeral port, as real units do."""

    def __init__(self, serial: str = "9181102751219513", password: str = "123456", *,
                 info: p.LoginInfo = BS20,
                 broadcast_to: tuple[str, int] = ("255.255.255.255", p.APP_PORT),
                 bind_host: str = "127.0.0.1", timing: EmulatorTiming | None = None,
                 voltage_v: float = 230.0) -> None:
        p.serial_bytes(serial)
        self.serial = serial
        self.password = password  # change it to make the next login fail
        self.info = info
        self.broadcast_to = broadcast_to
        self.timing = timing or EmulatorTiming()
        self.voltage_v = voltage_v
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._sock.bind((bind_host, 0))
        self._sock.settimeout(self.timing.tick_s)
        self._thread: threading.Thread | None = None
        # Guarded by _cond.
        self.silent = False  # neither answers nor sends: a unit that lost power or Wi-Fi
        self.plugged = True
        self.car_max_current_a = 32.0  # the car's own limit
        self.events: list[Event] = []
        self.rejected = 0  # malformed datagrams received
        self.status_acks = 0
        self.charging_status_acks = 0
        self.heading_answers = 0
        self.max_current_setting_a = 16  # the stored default (0x8107)
        self.settings: dict[int, int] = {Cmd.OFFLINE_CHARGE: 0, Cmd.ALARM_STRATEGY: 0,
                                         Cmd.LANGUAGE: 1, Cmd.TEMPERATURE_UNIT: 1}
        self.pushes_status = True  # False: a unit that sends status only when asked
        self.nickname = ""
        self._faults: dict[Fault, int] = {}
        self._held: tuple[bytes, tuple[str, int], float] | None = None
        self._logged_in = False
        self._app: tuple[str, int] | None = None
        self._last_answer_s = 0.0
        self._next_login_s = 0.0
        self._next_heading_s = 0.0
        self._next_status_s = 0.0
        self._clock_offset_s = 0.0  # set by SystemTime SET
        self._charging = False
        self._phases = 1
        self._session: p.ChargingStatus | None = None
        self._energy_kwh = 1475.85
        self._last_tick_s = time.monotonic()

    # --- control from tests -----------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()
        return str(host), int(port)

    @property
    def logged_in(self) -> bool:
        with self._cond:
            return self._logged_in

    @property
    def charging(self) -> bool:
        with self._cond:
            return self._charging

    def inject(self, fault: Fault, count: int = 1) -> None:
        with self._cond:
            self._faults[fault] = self._faults.get(fault, 0) + count

    def faults_left(self) -> int:
        with self._cond:
            return sum(self._faults.values()) + (self._held is not None)

    def reboot(self) -> None:
        """A power cycle: the login is forgotten (Login broadcasts resume) and a running
        charge ends."""
        with self._cond:
            self._logged_in = False
            self._next_login_s = 0.0
            if self._charging:
                self._end_session()
            self._event("reboot")

    def starts(self) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.kind == "start"]

    def kinds(self) -> list[str]:
        with self._cond:
            return [e.kind for e in self.events]

    def wait(self, predicate: Callable[[EVSEMasterEmulator], bool], timeout_s: float) -> bool:
        """Wait until `predicate(self)` holds (checked on every datagram and tick)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout_s)

    def start(self) -> EVSEMasterEmulator:
        self._thread = threading.Thread(target=self._run, name="evsemaster-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> EVSEMasterEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(4096)
            except TimeoutError:
                data, addr = b"", ("", 0)
            except OSError:
                break
            with self._cond:
                now_s = time.monotonic()
                if data and not self.silent:
                    self._on_packet(data, (addr[0], addr[1]), now_s)
                self._tick(now_s)
                self._cond.notify_all()

    def _event(self, kind: str, current_a: int = 0, detail: str = "") -> None:
        self.events.append(Event(time.monotonic(), kind, current_a, detail))
        log.debug("emulator %s: %s %s %s", self.serial, kind, current_a or "", detail)

    def _now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._clock_offset_s)

    def _on_packet(self, data: bytes, addr: tuple[str, int], now_s: float) -> None:
        try:
            for d in p.iter_datagrams(data):
                self._on_datagram(d, addr, now_s)
        except ProtocolError as exc:
            self.rejected += 1
            log.debug("emulator %s: dropped a malformed packet: %s", self.serial, exc)

    def _on_datagram(self, d: p.Datagram, addr: tuple[str, int], now_s: float) -> None:
        if d.serial != self.serial or d.from_charger:
            return
        cmd = d.command
        if d.password != self.password:
            self._event("password_error", detail=f"{cmd:#06x}")
            self._send(Cmd.PASSWORD_ERROR, b"", addr)
            return
        if cmd == Cmd.REQUEST_LOGIN:
            self._send(Cmd.LOGIN_RESPONSE, self.info.to_payload(), addr)
            return
        if cmd == Cmd.LOGIN_CONFIRM:
            self._logged_in = True
            self._app = addr
            self._last_answer_s = now_s
            self._next_heading_s = now_s + self.timing.heading_interval_s
            self._next_status_s = now_s
            self._event("login")
            return
        if not self._logged_in:
            self._send(Cmd.PASSWORD_ERROR, b"", addr)  # what units answer before a login
            return
        self._app = addr
        try:
            self._command(cmd, d, addr, now_s)
        except ProtocolError as exc:
            self.rejected += 1
            log.debug("emulator %s: dropped a malformed %#06x: %s", self.serial, cmd, exc)

    def _command(self, cmd: int, d: p.Datagram, addr: tuple[str, int], now_s: float) -> None:
        if cmd == Cmd.HEADING_RESPONSE:
            self._last_answer_s = now_s
            self.heading_answers += 1
        elif cmd == Cmd.AC_STATUS_ACK:
            self.status_acks += 1
        elif cmd == Cmd.CHARGING_STATUS_ACK:
            self.charging_status_acks += 1
        elif cmd == Cmd.REQUEST_STATUS:
            self._send(Cmd.AC_STATUS, self._ac_status().to_payload(), addr)
        elif cmd == Cmd.REQUEST_CHARGING_STATUS:
            self._send(Cmd.CHARGING_STATUS_RESPONSE, self._charging_status().to_payload(),
                       addr)
        elif cmd == Cmd.CHARGE_START:
            self._charge_start(p.ChargeStartRequest.from_payload(d.payload), addr)
        elif cmd == Cmd.CHARGE_STOP:
            request = p.ChargeStopRequest.from_payload(d.payload)
            if self._charging:
                self._end_session()
                self._event("stop", detail=request.user_id)
            self._send(Cmd.CHARGE_STOP_RESPONSE, p.ChargeStopReply(request.line_id, 1, 0)
                       .to_payload(), addr)
        elif cmd == Cmd.SYSTEM_TIME:
            setting = p.SystemTime.from_payload(d.payload)
            if setting.action == Action.SET and setting.time is not None:
                self._clock_offset_s = (setting.time - datetime.now(UTC)).total_seconds()
            self._send(Cmd.SYSTEM_TIME_RESPONSE,
                       p.SystemTime(Action.SET, self._now()).to_payload(), addr)
        elif cmd == Cmd.GET_VERSION:
            version = p.VersionInfo(self.info.hardware_version, self.info.hardware_version,
                                    0x42296D48)
            self._send(Cmd.VERSION_RESPONSE, version.to_payload(), addr)
        elif cmd == Cmd.MAX_CURRENT:
            amps = p.MaxCurrentSetting.from_payload(d.payload)
            if amps.action == Action.SET and 6 <= amps.max_current_a <= self.info.max_current_a:
                self.max_current_setting_a = amps.max_current_a
            self._send(Cmd.MAX_CURRENT_RESPONSE,
                       p.MaxCurrentSetting(amps.action, self.max_current_setting_a).to_payload(),
                       addr)
        elif cmd in self.settings:
            byte = p.ByteSetting.from_payload(d.payload)
            if byte.action == Action.SET:
                self.settings[cmd] = byte.value
            self._send(cmd - 0x8000, p.ByteSetting(byte.action, self.settings[cmd]).to_payload(),
                       addr)
        elif cmd == Cmd.NICKNAME:
            name = p.NicknameSetting.from_payload(d.payload)
            if name.action == Action.SET:
                self.nickname = name.nickname
            self._send(Cmd.NICKNAME_RESPONSE,
                       p.NicknameSetting(name.action, self.nickname).to_payload(), addr)

    def _charge_start(self, request: p.ChargeStartRequest, addr: tuple[str, int]) -> None:
        amps = request.max_current_a
        off_s = (None if request.start_at is None
                 else abs((request.start_at - self._now()).total_seconds()))

        def answer(reservation_result: int, start_result: int, error_reason: int) -> None:
            reply = p.ChargeStartReply(request.line_id, reservation_result, start_result,
                                       error_reason, amps)
            if error_reason or reservation_result:
                self._event("refused_start", amps, reply.error)
            self._send(Cmd.CHARGE_START_RESPONSE, reply.to_payload(), addr)

        if self._charging:
            answer(7, 0, 3)
        elif not self.plugged:
            answer(0, 0, 1)
        elif not 6 <= amps <= self.info.max_current_a or request.param3 != p.UNSET_U16:
            answer(9, 0, 6)
        elif off_s is None or off_s > TIME_TOLERANCE_S:
            answer(10, 0, 7)
        elif request.reservation:
            answer(2, 0, 0)  # this unit takes no planned starts
        else:
            one_phase = request.line_id == 1 and (
                self.info.phases == 1 or (request.charge_type == 11
                                          and self.info.can_force_single_phase))
            self._phases = 1 if one_phase else self.info.phases
            self._charging = True
            now = self._now()
            self._session = p.ChargingStatus(
                1, CurrentState.CHARGING, request.charge_id, request.start_type,
                request.charge_type, request.max_duration_min, request.max_energy_kwh, None,
                now, request.user_id, amps, now, 0, self._energy_kwh, self._energy_kwh, 0.0,
                0.0, 1, 0.0)
            self._event("start", amps)
            answer(0, 1, 0)
            self._next_status_s = 0.0  # push the new state at once

    def _end_session(self) -> None:
        self._charging = False
        if self._session is not None:
            self._session = replace(self._session, current_state=CurrentState.READY_TO_CHARGE)
        self._next_status_s = 0.0

    def _drawn_a(self) -> float:
        if not (self._charging and self.plugged) or self._session is None:
            return 0.0
        return min(float(self._session.max_current_a), self.car_max_current_a)

    def _ac_status(self) -> p.ACStatus:
        amps = self._drawn_a()
        if self._charging:
            gun, output, state = GunState.CONNECTED_LOCKED, OutputState.CHARGING, \
                CurrentState.CHARGING
        elif self.plugged:
            gun, output, state = GunState.CONNECTED, OutputState.IDLE, \
                CurrentState.READY_TO_CHARGE
        else:
            gun, output, state = GunState.DISCONNECTED, OutputState.IDLE, \
                CurrentState.NOT_CONNECTED
        v = self.voltage_v
        power_w = round(v * amps * self._phases)
        # Byte 17 ("emergency button") is 1 on an idle unit in the real capture.
        status = p.ACStatus(1, v, amps, power_w, round(self._energy_kwh, 2), 30.0, None, 1, gun,
                            output, state, 0)
        if self.info.phases == 3:
            other_a = amps if self._phases == 3 else 0.0
            status = replace(status, l2_voltage_v=v, l2_current_a=other_a, l3_voltage_v=v,
                             l3_current_a=other_a)
        return status

    def _charging_status(self) -> p.ChargingStatus:
        if self._session is None:
            state = CurrentState.READY_TO_CHARGE if self.plugged else CurrentState.NOT_CONNECTED
            return p.ChargingStatus(1, state, "", 1, 1, None, None, None, None, "",
                                    self.max_current_setting_a, None, 0, 0.0, self._energy_kwh,
                                    0.0, 0.0, 1, 0.0)
        session = self._session
        duration_s = 0
        if self._charging and session.started_at is not None:
            duration_s = int((self._now() - session.started_at).total_seconds())
        return replace(session, duration_s=max(duration_s, session.duration_s),
                       energy_now_kwh=round(self._energy_kwh, 2),
                       session_energy_kwh=round(self._energy_kwh - session.start_energy_kwh, 2))

    def _tick(self, now_s: float) -> None:
        dt_s = now_s - self._last_tick_s
        self._last_tick_s = now_s
        self._energy_kwh += self.voltage_v * self._drawn_a() * self._phases * dt_s / 3.6e6
        if self._charging and not self.plugged:
            self._end_session()
            self._event("stop", detail="unplugged")
        if self._held is not None and now_s - self._held[2] > self.timing.tick_s * 4:
            data, addr, _ = self._held  # nothing to pair it with: send it alone
            self._held = None
            self._sendto(data, addr)
        if self.silent:
            return
        t = self.timing
        if not self._logged_in:
            if now_s >= self._next_login_s:
                self._send(Cmd.LOGIN, self.info.to_payload(), self.broadcast_to)
                self._next_login_s = now_s + t.login_interval_s
            return
        if now_s - self._last_answer_s > t.session_timeout_s:
            self._logged_in = False
            self._next_login_s = now_s
            self._event("session_dropped")
            return
        assert self._app is not None
        if now_s >= self._next_heading_s:
            self._send(Cmd.HEADING, b"", self._app)
            self._next_heading_s = now_s + t.heading_interval_s
        if now_s >= self._next_status_s and self.pushes_status:
            self._send(Cmd.AC_STATUS, self._ac_status().to_payload(), self._app)
            self._send(Cmd.CHARGING_STATUS, self._charging_status().to_payload(),
                       self._app)
            self._next_status_s = now_s + t.status_interval_s

    def _take_fault(self, fault: Fault) -> bool:
        if self._faults.get(fault, 0) > 0:
            self._faults[fault] -= 1
            return True
        return False

    def _send(self, command: int, payload: bytes, addr: tuple[str, int]) -> None:
        if self.silent:
            return
        data = p.encode(self.serial, None, command, payload)
        if self._take_fault(Fault.TRUNCATE):
            data = data[:len(data) // 2]
        elif self._take_fault(Fault.CORRUPT):
            at = len(data) - 5  # the last byte before the checksum
            data = data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:]
        if self._held is not None:
            held, held_addr, _ = self._held
            self._held = None
            if held_addr == addr:
                data = held + data
            else:
                self._sendto(held, held_addr)
        elif self._take_fault(Fault.PAIR):
            self._held = (data, addr, time.monotonic())
            return
        self._sendto(data, addr)

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._sock.sendto(data, addr)
        except OSError as exc:
            log.debug("emulator %s: send to %s failed: %s", self.serial, addr, exc)


def main(argv: list[str] | None = None) -> int:
    """`python -m chargers.evsemaster.emulator`: a charger on this host until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serial", default="9181102751219513")
    parser.add_argument("--password", default="123456")
    parser.add_argument("--broadcast-to", default=f"127.0.0.1:{p.APP_PORT}",
                        help="where the Login broadcasts go (default: divert on this host)")
    parser.add_argument("--bind", default="127.0.0.1", help="address the charger listens on")
    args = parser.parse_args(argv)
    host, _, port = args.broadcast_to.rpartition(":")
    with EVSEMasterEmulator(args.serial, args.password, broadcast_to=(host, int(port)),
                            bind_host=args.bind) as charger:
        print(f"EVSEMaster emulator: serial {args.serial} on {charger.address[0]}:"
              f"{charger.address[1]}, broadcasting to {args.broadcast_to}; Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
