"""RAPI, the OpenEVSE controller's line protocol: framing, checksums and typed replies.

A frame is `$` + two-letter command + space-separated parameters + optional ` :ss` sequence
id (two hex digits, never 00) + optional checksum (`^xk`: 8-bit XOR of every character before
`^`; legacy `*ck`: 8-bit sum), terminated by `\\r` on the wire. The controller answers `$OK`
or `$NK`, with the checksum and sequence id only when the command carried them, and may
interleave asynchronous lines (`$ST`, `$WF`, `$AT`, `$AB`, …) between a command and its reply.

Pure functions, no I/O: the driver and the emulator share this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

MAX_LINE = 200  # longer than any frame the controller sends; longer lines are noise
_COMMAND = re.compile(r"[A-Z0-9]{2}")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_DECIMAL = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")


class RapiError(ValueError):
    """A line that is not a well-formed RAPI frame (bad checksum included)."""


def xor_checksum(text: str) -> int:
    """8-bit XOR of every character: the `^xk` checksum."""
    value = 0
    for byte in text.encode("ascii", errors="replace"):
        value ^= byte
    return value


def additive_checksum(text: str) -> int:
    """8-bit sum of every character: the legacy `*ck` checksum."""
    return sum(text.encode("ascii", errors="replace")) & 0xFF


@dataclass(frozen=True)
class Frame:
    """One decoded RAPI line. `command` is the two letters after `$`, e.g. "GS", "OK", "ST"."""

    command: str
    params: tuple[str, ...] = ()
    seq: int | None = None  # sequence id 1..255
    checksum: str | None = None  # "xor", "sum" or None (the frame carried none)

    @property
    def ok(self) -> bool:
        return self.command == "OK"

    @property
    def is_reply(self) -> bool:
        return self.command in ("OK", "NK")

    @property
    def is_async(self) -> bool:
        """An unsolicited notification: state transition, WiFi request, `$A…` events."""
        return self.command in ("ST", "WF") or self.command.startswith("A")

    def text(self) -> str:
        """The frame without checksum or sequence id, e.g. `$OK 6 80`."""
        return " ".join(("$" + self.command, *self.params))


def encode(command: str, params: tuple[str, ...] | list[str] = (), seq: int | None = None,
           checksum: bool = True) -> str:
    """A frame as text without the trailing `\\r`: `encode("SC", ["24"])` is `$SC 24^12`.

    Raises ValueError for a command or parameter that cannot be framed."""
    if not _COMMAND.fullmatch(command):
        raise ValueError(f"RAPI command must be two letters or digits, got {command!r}")
    for p in params:
        if not p or not _PRINTABLE.fullmatch(p) or any(c in p for c in " $^*:"):
            raise ValueError(f"RAPI parameter must be printable without spaces or $^*:, "
                             f"got {p!r}")
    body = " ".join(("$" + command, *params))
    if seq is not None:
        if not 1 <= seq <= 0xFF:
            raise ValueError(f"sequence id must be 1..255, got {seq}")
        body += f" :{seq:02X}"
    return f"{body}^{xor_checksum(body):02X}" if checksum else body


def decode(line: str) -> Frame:
    """Parse one line (surrounding CR/LF and spaces ignored). Raises RapiError, nothing else.

    Strict: printable ASCII only, `$` first, a two-character command, single spaces between
    non-empty parameters, a valid sequence id, and a checksum that matches when present."""
    line = line.strip("\r\n ")
    if len(line) > MAX_LINE:
        raise RapiError(f"longer than {MAX_LINE} characters: {line[:40]!r}…")
    if not _PRINTABLE.fullmatch(line):
        raise RapiError(f"non-printable characters in {line!r}")
    if not line.startswith("$"):
        raise RapiError(f"does not start with '$': {line!r}")
    body, kind = line, None
    marks = [at for at in (line.find("^"), line.find("*")) if at >= 0]
    if marks:
        body = line[:min(marks)]
        kind = "xor" if line[len(body)] == "^" else "sum"
        digits = line[len(body) + 1:]
        if not _HEX2.fullmatch(digits):
            raise RapiError(f"checksum must be two hex digits: {line!r}")
        want = xor_checksum(body) if kind == "xor" else additive_checksum(body)
        if int(digits, 16) != want:
            raise RapiError(f"bad checksum in {line!r}: expected {want:02X}")
    command, rest = body[1:3], body[3:]
    if not _COMMAND.fullmatch(command):
        raise RapiError(f"no two-character command in {line!r}")
    if rest and not rest.startswith(" "):
        raise RapiError(f"command longer than two characters in {line!r}")
    params = rest[1:].split(" ") if rest else []
    if any(not p for p in params):
        raise RapiError(f"empty parameter in {line!r}")
    seq = None
    if params and params[-1].startswith(":"):
        token = params.pop()[1:]
        if not _HEX2.fullmatch(token) or int(token, 16) == 0:
            raise RapiError(f"sequence id must be two hex digits 01..FF in {line!r}")
        seq = int(token, 16)
    if any(c in p for p in params for c in "$:"):
        raise RapiError(f"misplaced '$' or ':' in {line!r}")
    return Frame(command, tuple(params), seq, kind)


# ---- EVSE states ($GS first field, $ST notification) -------------------------------------

class EvseState(IntEnum):
    """The controller's state codes."""

    UNKNOWN = 0x00
    NOT_CONNECTED = 0x01  # J1772 state A
    CONNECTED = 0x02  # state B: vehicle connected, ready
    CHARGING = 0x03  # state C
    VENT_REQUIRED = 0x04  # state D
    DIODE_CHECK_FAILED = 0x05
    GFCI_FAULT = 0x06
    NO_GROUND = 0x07
    STUCK_RELAY = 0x08
    GFI_SELF_TEST_FAILED = 0x09
    OVER_TEMPERATURE = 0x0A
    OVER_CURRENT = 0x0B
    RELAY_CLOSURE_FAULT = 0x0E
    SLEEPING = 0xFE
    DISABLED = 0xFF

    @property
    def is_fault(self) -> bool:
        return EvseState.VENT_REQUIRED <= self <= EvseState.RELAY_CLOSURE_FAULT

    @property
    def text(self) -> str:
        """In words, e.g. "charging", "sleeping", "fault: GFCI"."""
        return _STATE_TEXT[self]


_STATE_TEXT = {
    EvseState.UNKNOWN: "unknown",
    EvseState.NOT_CONNECTED: "no vehicle",
    EvseState.CONNECTED: "vehicle connected",
    EvseState.CHARGING: "charging",
    EvseState.VENT_REQUIRED: "fault: vent required",
    EvseState.DIODE_CHECK_FAILED: "fault: diode check failed",
    EvseState.GFCI_FAULT: "fault: GFCI",
    EvseState.NO_GROUND: "fault: no ground",
    EvseState.STUCK_RELAY: "fault: stuck relay",
    EvseState.GFI_SELF_TEST_FAILED: "fault: GFI self-test failed",
    EvseState.OVER_TEMPERATURE: "fault: over temperature",
    EvseState.OVER_CURRENT: "fault: over current",
    EvseState.RELAY_CLOSURE_FAULT: "fault: relay closure",
    EvseState.SLEEPING: "sleeping",
    EvseState.DISABLED: "disabled",
}


_KNOWN_STATES = frozenset(int(s) for s in EvseState)


def parse_state(token: str) -> int:
    """A state code from `$GS`/`$ST`. Current firmware writes two hex digits (`0a`, `fe`);
    old firmware wrote decimal (`10`, `254`), so a value that is no known state in hex is
    read as decimal when that is one. Raises RapiError."""
    if not _HEX.fullmatch(token):
        raise RapiError(f"state must be a number, got {token!r}")
    as_hex = int(token, 16)
    if as_hex in _KNOWN_STATES and len(token) <= 2:
        return as_hex
    if token.isdigit() and int(token) in _KNOWN_STATES:
        return int(token)
    if as_hex > 0xFF:
        raise RapiError(f"state out of range: {token!r}")
    return as_hex


def state_text(code: int) -> str:
    """A state code in words; codes this module does not know are named by number."""
    if code in _KNOWN_STATES:
        return EvseState(code).text
    return f"unknown state 0x{code:02X}"


# ---- typed replies ------------------------------------------------------------------------

# What a controller can report at all; a value outside is a garbled or broken reply. The
# firmware's highest current capacity is 80 A; mains is 100–240 V nominal.
MAX_A = 100
MIN_V, MAX_V = 50, 500
MAX_SESSION_WS = 3_600_000_000  # 1 MWh
MAX_TOTAL_WH = 100_000_000  # 100 MWh


def _plausible(ok: bool, what: str, frame: Frame) -> None:
    if not ok:
        raise RapiError(f"{what}: implausible value in {frame.text()}")


def _ints(frame: Frame, count: int, what: str) -> list[int]:
    """The first `count` parameters of an $OK reply as integers; extra fields are ignored
    (newer firmware appends some)."""
    if not frame.ok:
        raise RapiError(f"{what}: controller answered {frame.text()}")
    if len(frame.params) < count:
        raise RapiError(f"{what}: expected {count} values, got {frame.text()}")
    if not all(_DECIMAL.fullmatch(p) for p in frame.params[:count]):
        raise RapiError(f"{what}: not a number in {frame.text()}")
    return [int(p) for p in frame.params[:count]]


@dataclass(frozen=True)
class Version:
    """`$GV`: controller firmware and RAPI protocol versions."""

    firmware: str
    protocol: str


def parse_version(frame: Frame) -> Version:
    if not frame.ok or len(frame.params) < 2:
        raise RapiError(f"version: expected firmware and protocol, got {frame.text()}")
    return Version(frame.params[0], frame.params[1])


_VERSION_NUMBER = re.compile(r"[A-Za-z]*v?([0-9]{1,4}(?:\.[0-9]{1,4}){1,3})")


def version_number(text: str) -> tuple[int, ...] | None:
    """`"D4.10.1"`, `"7.1.3"`, `"v5.0.1.EU"` → (4, 10, 1) …; None when no number leads."""
    match = _VERSION_NUMBER.match(text)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


# The flag that keeps `$SC amps <flag>` out of EEPROM, from the controller firmware's
# published rapi_proc.h and CHANGELOG (github.com/lincomatic/open_evse):
# * RAPI 2.0.2 / 1.0.4 (firmware D4.3.x, 2016-06-20) added `SC amps [N]`; earlier protocols
#   have no volatile form at all: every `$SC` is written to EEPROM.
# * Firmware D4.10.2 (2017-10-27; the change of 2017-10-10, still RAPI 4.0.1) documents
#   `SC amps [V]`, and every later one `[V]` or `[V|M]` (5.x, where `M` sets the hardware
#   maximum, written to EEPROM). The protocol version alone cannot tell: D4.10.0 and D4.10.1
#   already report RAPI 4.0.1 and document `N`; since 2021 the firmware calls its protocol
#   version deprecated, so the firmware version decides first.
_V_SINCE_FIRMWARE = (4, 10, 2)
_N_SINCE_PROTOCOL = ((1, 0, 4), (2, 0, 2))  # within RAPI 1.x, and from 2.0.2 on


def volatile_flag(version: Version) -> str | None:
    """The third `$SC` token that this controller documents as "do not save to EEPROM":
    "V" or "N"; None when its documentation has none (or the version cannot be read)."""
    firmware = version_number(version.firmware)
    if firmware is not None and firmware >= _V_SINCE_FIRMWARE:
        return "V"
    protocol = version_number(version.protocol)
    if protocol is None:
        return None
    if protocol >= (5,):
        return "V"
    if protocol >= (4, 0, 1):  # N before firmware D4.10.2, V from it: the firmware decides
        return "N" if firmware is not None else None
    one, two = _N_SINCE_PROTOCOL
    if one <= protocol < (2,) or protocol >= two:
        return "N"
    return None


@dataclass(frozen=True)
class CurrentRange:
    """`$GC`: the settable current range in A."""

    min_a: int
    max_a: int


def parse_current_range(frame: Frame) -> CurrentRange:
    lo, hi = _ints(frame, 2, "current range")
    if not 0 < lo <= hi <= MAX_A:
        raise RapiError(f"current range: implausible {frame.text()}")
    return CurrentRange(lo, hi)


@dataclass(frozen=True)
class EvseSettings:
    """`$GE`: current setting in A and the flag word (hex on the wire)."""

    current_a: int
    flags: int

    @property
    def service_level(self) -> int:
        return 2 if self.flags & 0x0001 else 1


def parse_settings(frame: Frame) -> EvseSettings:
    (current_a,) = _ints(frame, 1, "settings")
    _plausible(0 <= current_a <= MAX_A, "settings", frame)
    if len(frame.params) < 2 or not _HEX.fullmatch(frame.params[1]):
        raise RapiError(f"settings: expected current and hex flags, got {frame.text()}")
    return EvseSettings(current_a, int(frame.params[1], 16))


@dataclass(frozen=True)
class Status:
    """`$GS`: state code, charge time in s (valid in state C), and on newer firmware the
    pilot state (the vehicle's J1772 state, also while the EVSE sleeps)."""

    state: int
    elapsed_s: int
    pilot: int | None = None

    @property
    def text(self) -> str:
        return state_text(self.state)

    @property
    def vehicle_connected(self) -> bool | None:
        """True in B/C, False in A; from the pilot when reported, else from the state."""
        for code in (self.pilot, self.state):
            if code in (EvseState.CONNECTED, EvseState.CHARGING):
                return True
            if code == EvseState.NOT_CONNECTED:
                return False
        return None


def parse_status(frame: Frame) -> Status:
    if not frame.ok or len(frame.params) < 2:
        raise RapiError(f"state: expected state and elapsed time, got {frame.text()}")
    state = parse_state(frame.params[0])
    (elapsed_s,) = _ints(Frame("OK", frame.params[1:2]), 1, "state")
    _plausible(elapsed_s >= 0, "state", frame)
    # A third field that is not hex is some other firmware's: the state alone still answers.
    extra = frame.params[2] if len(frame.params) >= 3 else ""
    pilot = int(extra, 16) if _HEX.fullmatch(extra) else None
    return Status(state, elapsed_s, pilot)


@dataclass(frozen=True)
class Measurement:
    """`$GG`: charging current in mA (None: no ammeter, the firmware reports -1) and voltage
    in mV (None: no voltmeter fitted)."""

    current_ma: int | None
    voltage_mv: int | None


def parse_measurement(frame: Frame) -> Measurement:
    """Raises RapiError for a value no controller can measure (e.g. 10^92 mA)."""
    current_ma, voltage_mv = _ints(frame, 2, "current and voltage")
    _plausible(current_ma == -1 or 0 <= current_ma <= MAX_A * 1000, "current", frame)
    _plausible(voltage_mv <= 0 or MIN_V * 1000 <= voltage_mv <= MAX_V * 1000, "voltage",
               frame)
    return Measurement(current_ma if current_ma >= 0 else None,
                       voltage_mv if voltage_mv > 0 else None)


@dataclass(frozen=True)
class Energy:
    """`$GU`: energy this session in W·s and accumulated over all sessions in Wh."""

    session_ws: int
    total_wh: int


def parse_energy(frame: Frame) -> Energy:
    session_ws, total_wh = _ints(frame, 2, "energy")
    _plausible(0 <= session_ws <= MAX_SESSION_WS and 0 <= total_wh <= MAX_TOTAL_WH, "energy",
               frame)
    return Energy(session_ws, total_wh)


NO_SENSOR = -2560  # what `$GP` reports for a temperature sensor that is not fitted


@dataclass(frozen=True)
class Temperatures:
    """`$GP`: DS3231, MCP9808 and TMP007 readings in tenths of °C (None: not fitted)."""

    ds3231_dc: int | None
    mcp9808_dc: int | None
    tmp007_dc: int | None


def parse_temperatures(frame: Frame) -> Temperatures:
    values = _ints(frame, 3, "temperatures")
    _plausible(all(v == NO_SENSOR or -600 <= v <= 2000 for v in values), "temperatures",
               frame)
    a, b, c = (None if v == NO_SENSOR else v for v in values)
    return Temperatures(a, b, c)


def parse_current_reply(frame: Frame) -> int | None:
    """The current in A that `$SC` reports it kept (firmware since RAPI 2 answers `$OK n` or
    `$NK n`); None when the reply carries no number."""
    if frame.params and frame.params[0].isdigit():
        return int(frame.params[0])
    return None
