"""The OpenEVSE driver: RAPI commands over any transport, as a Charger and CurrentLimiter.

Control: current with `$SC n V` (or `$SC n N` on controllers whose firmware documents N,
see `rapi.volatile_flag`), which keeps the setting out of EEPROM: a controller that changes
current all day would wear it out, so a controller whose firmware documents no such flag, or
whose version cannot be read, is not controlled at all. Pause with `$FS` (sleep, the
normal "not ready") or `$FD` if configured; resume with `$FE`. Each loop reads `$GG` and
`$GS` so the core can add the car's draw back to the grid reading.

One command is in flight at a time. A reply is the next `$OK`/`$NK` line that is not an
echo of our command, an asynchronous notification, noise, or (with sequence ids) a late
reply to an earlier attempt. No valid reply within `timeout_s` → resend, up to `retries`
times; then ChargerError.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from chargers.base import ChargerError, ChargerReading
from chargers.openevse import rapi
from chargers.openevse.config import OpenEVSEConfig
from chargers.openevse.transports import Transport, TransportError
from divert.core.capabilities import Capabilities

log = logging.getLogger(__name__)
T = TypeVar("T")


class CurrentRefused(ChargerError):
    """`$SC` answered `$NK` (out of range, or raising current while over temperature)."""

    def __init__(self, name: str, requested_a: int, kept_a: int | None) -> None:
        self.requested_a = requested_a
        self.kept_a = kept_a
        kept = f"{kept_a} A" if kept_a is not None else "unknown"
        super().__init__(f"{name}: controller refused {requested_a} A (out of its range or "
                         f"over temperature); it kept {kept}")


class OpenEVSECharger:
    """Implements Charger and CurrentLimiter for an OpenEVSE controller."""

    def __init__(self, config: OpenEVSEConfig, transport: Transport) -> None:
        self.name = config.name
        self._config = config
        self._transport = transport
        self._lock = threading.Lock()  # one command in flight
        self._use_seq = False  # decided at connect: does the controller echo sequence ids?
        self._checked = False  # decided at connect: does it checksum its replies?
        self._seq = 0
        self.version: rapi.Version | None = None
        self._volatile: str | None = None  # the `$SC` flag that keeps EEPROM out, from $GV

    # ---- the RAPI exchange -----------------------------------------------------------

    def open(self) -> None:
        """Open the transport only (what `divert rapi` needs). Raises ChargerError."""
        try:
            self._transport.open()
        except TransportError as exc:
            raise ChargerError(f"{self.name}: {exc}") from None

    def request(self, command: str, *params: str) -> rapi.Frame:
        """Send one command and return its `$OK`/`$NK` reply. Raises ChargerError."""
        with self._lock:
            return self._request(command, params, self._use_seq)

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFF + 1  # 1..255: 00 is reserved as "no id"
        return self._seq

    def _request(self, command: str, params: tuple[str, ...], with_seq: bool,
                 probing: bool = False) -> rapi.Frame:
        attempts = 1 + self._config.retries
        problem = "no reply"
        for attempt in range(1, attempts + 1):
            seq = self._next_seq() if with_seq else None
            line = rapi.encode(command, params, seq, checksum=self._transport.checksum)
            self._transport.discard_pending()
            try:
                self._transport.send(line)
            except TransportError as exc:
                problem = str(exc)
                log.debug("%s: %s (attempt %d of %d)", self.name, exc, attempt, attempts)
                continue
            reply = self._await_reply(line, seq, probing)
            if reply is not None:
                return reply
            problem = f"no valid reply within {self._config.timeout_s:g} s"
            if attempt < attempts:
                log.info("%s: %s to %s (attempt %d of %d)", self.name, problem, line,
                         attempt, attempts)
        raise ChargerError(f"{self.name}: {self._transport.description}: {problem} to "
                           f"${command} after {attempts} attempt(s)")

    def _await_reply(self, sent: str, seq: int | None, probing: bool = False
                     ) -> rapi.Frame | None:
        """The reply to `sent`, or None to resend: nothing within the timeout, a garbled
        reply, or the controller refusing our command as garbled (a bare `$NK` without the
        sequence id). `probing`: a reply without sequence id is accepted (old firmware)."""
        deadline = time.monotonic() + self._config.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            line = self._transport.receive(remaining)
            if line is None:
                return None
            line = line.strip("\r\n ")
            start = line.rfind("$")  # as the firmware does: a frame starts at the last '$'
            if start < 0:
                if line:
                    log.warning("%s: ignored noise on the line: %r", self.name, line[:80])
                continue
            if start > 0:
                log.warning("%s: ignored noise before a frame: %r", self.name, line[:start][:80])
                line = line[start:]
            if line == sent:
                continue  # the controller echoes commands when echo is on ($FF E 1)
            try:
                frame = rapi.decode(line)
            except rapi.RapiError as exc:
                log.warning("%s: garbled reply, resending: %s", self.name, exc)
                return None
            if frame.is_async:
                self._notification(frame)
            elif not frame.is_reply:
                log.debug("%s: ignored a command frame: %s", self.name, line)
            elif self._checked and frame.checksum is None:
                log.warning("%s: reply without checksum (its ^ garbled?), resending: %s",
                            self.name, line)
                return None
            elif seq is None or frame.seq == seq or (probing and frame.seq is None):
                return frame
            elif frame.seq is None and not frame.ok:
                log.warning("%s: controller could not read %s (garbled on the line?), "
                            "resending", self.name, sent)
                return None
            else:
                log.debug("%s: ignored a late reply (sequence id %s, waiting for %02X): %s",
                          self.name, frame.seq, seq, line)
        return None

    def _notification(self, frame: rapi.Frame) -> None:
        if frame.command == "AB":
            log.info("%s: controller restarted (%s)", self.name, frame.text())
        elif frame.command in ("ST", "AT") and frame.params:
            try:
                log.info("%s: state now %s", self.name,
                         rapi.state_text(rapi.parse_state(frame.params[0])))
            except rapi.RapiError:
                log.debug("%s: notification %s", self.name, frame.text())
        else:
            log.debug("%s: notification %s", self.name, frame.text())

    def _typed(self, parse: Callable[[rapi.Frame], T], command: str, *params: str) -> T:
        reply = self.request(command, *params)
        try:
            return parse(reply)
        except rapi.RapiError as exc:
            raise ChargerError(f"{self.name}: ${command}: {exc}") from None

    # ---- Charger ---------------------------------------------------------------------

    def connect(self) -> Capabilities:
        self.open()
        with self._lock:
            if self._transport.sequence_ids:
                # Ask for the version with a sequence id: firmware that echoes it supports
                # them, and then every later reply can be told from a late one.
                reply = self._request("GV", (), with_seq=True, probing=True)
                self._use_seq = reply.seq is not None
            else:
                reply = self._request("GV", (), with_seq=False)
            # A reply carries a checksum when the command did; from firmware that does so, a
            # reply without one has lost its `^` to line noise.
            self._checked = self._transport.checksum and reply.checksum is not None
        try:
            self.version = rapi.parse_version(reply)
        except rapi.RapiError as exc:
            raise ChargerError(f"{self.name}: $GV: {exc}") from None
        self._volatile = rapi.volatile_flag(self.version)
        if self._volatile is None:
            raise ChargerError(
                f"{self.name}: controller firmware {self.version.firmware!r}, RAPI "
                f"{self.version.protocol!r} documents no way to change the current without "
                f"writing EEPROM (that needs RAPI 2.0.2 or later); divert will not control it "
                f"— update the controller firmware")
        device = self._typed(rapi.parse_current_range, "GC")
        c = self._config
        log.info("%s: OpenEVSE firmware %s, RAPI %s over %s%s; controller range %d–%d A; "
                 "current set with $SC n %s", self.name, self.version.firmware,
                 self.version.protocol, self._transport.description,
                 " with sequence ids" if self._use_seq else "", device.min_a, device.max_a,
                 self._volatile)
        # The controller takes whole amperes: round the configured range inwards.
        lo = max(math.ceil(c.min_current_a - 1e-9), device.min_a)
        hi = min(math.floor(c.max_current_a + 1e-9), device.max_a)
        if lo > hi:
            raise ChargerError(f"{self.name}: configured {c.min_current_a:g}–"
                               f"{c.max_current_a:g} A does not overlap the controller's "
                               f"{device.min_a}–{device.max_a} A")
        if (lo, hi) != (c.min_current_a, c.max_current_a):
            log.warning("%s: configured current range %g–%g A narrowed to %d–%d A (the "
                        "controller's range is %d–%d A)", self.name, c.min_current_a,
                        c.max_current_a, lo, hi, device.min_a, device.max_a)
        return replace(c.capabilities(), min_current_a=lo, max_current_a=hi)

    def read(self) -> ChargerReading:
        measured = self._typed(rapi.parse_measurement, "GG")
        status = self._typed(rapi.parse_status, "GS")
        current_a = measured.current_ma / 1000 if measured.current_ma is not None else None
        voltage_v = measured.voltage_mv / 1000 if measured.voltage_mv is not None else None
        # Without a voltmeter the power is estimated at the nominal voltage; the ammeter
        # measures one phase, so the others are assumed to carry the same.
        power_w = (current_a * (voltage_v or self._config.voltage_v) * self._config.phases
                   if current_a is not None else None)
        return ChargerReading(power_w=power_w, current_a=current_a, voltage_v=voltage_v,
                              charging=status.state == rapi.EvseState.CHARGING,
                              vehicle_connected=status.vehicle_connected,
                              phases=self._config.phases, state=status.text)

    def enable(self, on: bool) -> None:
        command = "FE" if on else ("FS" if self._config.pause_with == "sleep" else "FD")
        reply = self.request(command)
        if not reply.ok:
            raise ChargerError(f"{self.name}: controller refused ${command}: {reply.text()}")

    def set_current(self, current_a: float) -> None:
        """Set the pilot current in A, never saved to EEPROM. The controller takes whole
        amperes: a fraction is rounded down, never above what was decided."""
        if self._volatile is None:  # never guess: a wrong flag may mean an EEPROM write
            raise ChargerError(f"{self.name}: not connected (the controller's version decides "
                               f"how to set the current without writing EEPROM)")
        amps = math.floor(current_a + 1e-9)
        reply = self.request("SC", str(amps), self._volatile)
        kept = rapi.parse_current_reply(reply)
        if reply.ok:
            if kept is not None and kept != amps:
                log.warning("%s: asked for %d A, controller set %d A", self.name, amps, kept)
            return
        if kept is None:  # older firmware answers a bare $NK: read the setting back
            try:
                kept = self._typed(rapi.parse_settings, "GE").current_a
            except ChargerError as exc:
                log.warning("%s: could not read the current back: %s", self.name, exc)
        raise CurrentRefused(self.name, amps, kept)

    def close(self) -> None:
        with self._lock:
            self._transport.close()

