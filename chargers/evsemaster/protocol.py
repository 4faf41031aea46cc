"""The EVSEMaster LAN protocol ("EM protocol"): datagram framing, payload layouts, time fields.

Every datagram: `06 01`, u16 total length, key type, 8-byte serial, 6-byte password, u16
command, payload, u16 checksum, `0F 02`; integers big-endian. Each payload kind is a frozen
dataclass that decodes itself (`from_payload`, raising ProtocolError on anything malformed)
and encodes itself (`to_payload`): the driver uses the app→charger ones, the emulator the
charger→app ones, and both directions are checked against real captures in the tests.

Time fields ("EM time") are u32 seconds of the local wall clock read as if it were
Asia/Shanghai time: `em = unix + local UTC offset − 8 h`. `tz` arguments name the local
zone; None means the system's own, like the phone app that set the convention.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import IntEnum
from typing import ClassVar, Self

APP_PORT = 28376  # the app (controller) side binds this; chargers send from any port
HEADER = b"\x06\x01"
TAIL = b"\x0f\x02"
OVERHEAD = 25  # header 2, length 2, key type 1, serial 8, password 6, command 2, sum 2, tail 2
PASSWORD_LEN = 6
UNSET_U16 = 0xFFFF  # "unlimited" / "not available"


class ProtocolError(ValueError):
    """A datagram or payload that does not follow the protocol. Says what, never the password."""


class Cmd(IntEnum):
    """Command ids. Charger→app ids are below 0x8000, app→charger ids have bit 15 set."""

    LOGIN = 0x0001  # broadcast while nobody is logged in
    LOGIN_RESPONSE = 0x0002
    HEADING = 0x0003  # keep-alive ping
    AC_STATUS = 0x0004
    CHARGING_STATUS = 0x0005  # pushed
    CHARGING_STATUS_RESPONSE = 0x0006  # answer to REQUEST_CHARGING_STATUS
    CHARGE_START_RESPONSE = 0x0007
    CHARGE_STOP_RESPONSE = 0x0008
    CURRENT_CHARGE_RECORD = 0x0009
    SYSTEM_TIME_RESPONSE = 0x0101
    VERSION_RESPONSE = 0x0106
    MAX_CURRENT_RESPONSE = 0x0107
    NICKNAME_RESPONSE = 0x0108
    OFFLINE_CHARGE_RESPONSE = 0x010D
    ALARM_STRATEGY_RESPONSE = 0x010E
    LANGUAGE_RESPONSE = 0x010F
    TEMPERATURE_UNIT_RESPONSE = 0x0112
    PASSWORD_ERROR = 0x0155
    LOGIN_CONFIRM = 0x8001
    REQUEST_LOGIN = 0x8002
    HEADING_RESPONSE = 0x8003
    AC_STATUS_ACK = 0x8004
    CHARGING_STATUS_ACK = 0x8005
    REQUEST_CHARGING_STATUS = 0x8006
    CHARGE_START = 0x8007
    CHARGE_STOP = 0x8008
    REQUEST_STATUS = 0x800D  # "requestStatusRecord": asks for an AC status (0x0004)
    SYSTEM_TIME = 0x8101
    GET_VERSION = 0x8106
    MAX_CURRENT = 0x8107  # the stored default current, not the running session's (§8)
    NICKNAME = 0x8108
    OFFLINE_CHARGE = 0x810D
    ALARM_STRATEGY = 0x810E
    LANGUAGE = 0x810F
    TEMPERATURE_UNIT = 0x8112


class Action(IntEnum):
    """First byte of every setting request and response."""

    SET = 1
    GET = 2


class GunState(IntEnum):
    """The plug (AC status byte 18). Values not listed are unknown."""

    DISCONNECTED = 1
    CONNECTED = 2  # plugged, not locked
    CONNECTED_LOCKED = 4  # charging


class OutputState(IntEnum):
    CHARGING = 1  # power flowing
    IDLE = 2


class CurrentState(IntEnum):
    """The charger's state (AC status byte 20, charging status byte 1); a selection."""

    EVSE_FAULT = 1
    CHARGING_FAULT_2 = 2
    CHARGING_FAULT_3 = 3
    WAITING_FOR_SWIPE = 10
    WAITING_FOR_BUTTON = 11
    NOT_CONNECTED = 12
    READY_TO_CHARGE = 13  # plugged, no session (or the session finished)
    CHARGING = 14  # a session runs (the car may not draw yet)
    COMPLETED = 15
    COMPLETED_FULL = 17
    RESERVATION = 20  # a planned start


MAX_VOLTAGE_V, MAX_CURRENT_A, MAX_POWER_W = 500.0, 100.0, 100_000

ERROR_BITS: dict[int, str] = {
    0: "relay stuck L1", 1: "relay stuck L2", 2: "relay stuck L3", 3: "offline",
    4: "CC error", 5: "CP error", 6: "emergency stop", 7: "inner over-temperature",
    8: "outer over-temperature", 10: "leakage (RCD) protection", 11: "short circuit",
    12: "over-current", 13: "not grounded", 14: "over-voltage", 15: "under-voltage",
    25: "input power error", 26: "mains overload", 27: "diode short circuit",
    28: "RTC failure", 29: "flash failure", 30: "EEPROM failure", 31: "metering failure",
}

START_ERRORS: dict[int, str] = {
    1: "plug not inserted", 2: "system error", 3: "already charging",
    4: "system maintenance", 5: "incorrect fee", 6: "incorrect power setting",
    7: "incorrect time", 20: "a reservation is already active",
}
START_ALREADY_CHARGING = 3

# Login types that are three-phase units; every other type is single-phase.
THREE_PHASE_TYPES = frozenset({10, 11, 12, 13, 14, 15, 22, 23, 24, 25})


# --- framing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Datagram:
    """One framed datagram. `serial` is 16 lowercase hex digits; `password` None when the
    field holds the charger's filler (all 0xFF or all zero)."""

    serial: str
    command: int
    payload: bytes
    password: str | None = field(default=None, repr=False)

    @property
    def from_charger(self) -> bool:
        return self.command < 0x8000


def checksum(data: bytes) -> int:
    """Sum of all bytes mod 65536 (the firmware's variant; see `_checksum_ok`)."""
    return sum(data) & 0xFFFF


def _checksum_ok(body: bytes, value: int) -> bool:
    # Apps disagree on mod 65536 (firmware, OEM app) and mod 65535 (emproto and its ports);
    # they differ only for long datagrams, so accept either.
    total = sum(body)
    return value in (total % 65536, total % 65535)


def serial_bytes(serial: str) -> bytes:
    """The 8 wire bytes of a 16-hex-digit serial; ValueError otherwise."""
    if len(serial) != 16:
        raise ValueError("a serial is 16 hex digits")
    return bytes.fromhex(serial)


def encode(serial: str, password: str | None, command: int, payload: bytes = b"") -> bytes:
    """Frame one datagram. `password` None writes the charger's 0xFF filler."""
    if password is None:
        pw = b"\xff" * PASSWORD_LEN
    else:
        pw = password.encode("ascii")
        if len(pw) != PASSWORD_LEN:
            raise ValueError("the password is 6 ASCII characters")
    length = OVERHEAD + len(payload)
    if length > 0xFFFF:
        raise ValueError("payload too long")
    body = (HEADER + struct.pack(">HB", length, 0) + serial_bytes(serial) + pw
            + struct.pack(">H", command) + payload)
    return body + struct.pack(">H", checksum(body)) + TAIL


def _decode_one(raw: bytes) -> Datagram:
    body = raw[:-4]
    (value,) = struct.unpack_from(">H", raw, len(raw) - 4)
    if not _checksum_ok(body, value):
        raise ProtocolError(f"checksum mismatch (datagram says {value:#06x}, "
                            f"bytes sum to {sum(body) % 65536:#06x})")
    if raw[-2:] != TAIL:
        raise ProtocolError(f"bad tail {raw[-2:].hex()}")
    pw = raw[13:19]
    password = None if pw in (b"\xff" * 6, b"\x00" * 6) else pw.decode("latin-1")
    (command,) = struct.unpack_from(">H", raw, 19)
    return Datagram(raw[5:13].hex(), command, bytes(raw[21:-4]), password)


def iter_datagrams(packet: bytes) -> Iterator[Datagram]:
    """The datagrams in one UDP packet (chargers sometimes send two back to back).

    Yields each well-formed datagram in order and raises ProtocolError at the first fault;
    the ones before it have been yielded."""
    pos = 0
    while pos < len(packet):
        left = len(packet) - pos
        if left < OVERHEAD:
            raise ProtocolError(f"{left} bytes at offset {pos}: too short for a datagram")
        if packet[pos:pos + 2] != HEADER:
            raise ProtocolError(f"bad header {packet[pos:pos + 2].hex()} at offset {pos}")
        (length,) = struct.unpack_from(">H", packet, pos + 2)
        if length < OVERHEAD:
            raise ProtocolError(f"length field {length} < {OVERHEAD}")
        if length > left:
            raise ProtocolError(f"truncated: length field {length}, {left} bytes left")
        yield _decode_one(packet[pos:pos + length])
        pos += length


def redacted_hex(raw: bytes) -> str:
    """Hex of one datagram for debug logs, with the password field masked."""
    if len(raw) < 19:
        return raw.hex()
    return f"{raw[:13].hex()}{'*' * 12}{raw[19:].hex()}"


# --- field encodings -----------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1)
_SHANGHAI_S = 8 * 3600


def em_time(when: datetime, tz: tzinfo | None = None) -> int:
    """EM time of an aware `when`: its wall clock in `tz` as seconds, minus 8 h."""
    local = when.astimezone(tz)  # tz None: the system zone, DST at that instant included
    value = int((local.replace(tzinfo=None) - _EPOCH).total_seconds()) - _SHANGHAI_S
    if not 0 < value < 0xFFFFFFFF:
        raise ValueError(f"{when.isoformat()} is outside the EM time range")
    return value


def from_em_time(value: int, tz: tzinfo | None = None) -> datetime | None:
    """The UTC instant of an EM time; None for the 'no time' values 0 and 0xFFFFFFFF."""
    if value in (0, 0xFFFFFFFF):
        return None
    wall = _EPOCH + timedelta(seconds=value + _SHANGHAI_S)
    local = wall.astimezone() if tz is None else wall.replace(tzinfo=tz)
    return local.astimezone(UTC)


def _text(raw: bytes) -> str:
    """Fixed-width ASCII, NUL-padded (some units pad with 0xFF or spaces)."""
    return raw.split(b"\0", 1)[0].rstrip(b"\xff ").decode("ascii", "replace")


def _pad(text: str, width: int) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > width:
        raise ValueError(f"{text!r} is longer than {width} characters")
    return raw.ljust(width, b"\0")


def _scaled_or_none(raw: int, scale: float) -> float | None:
    return None if raw == UNSET_U16 else raw * scale


def _unscaled_or_unset(value: float | None, scale: float) -> int:
    return UNSET_U16 if value is None else round(value / scale)


def _temperature_c(raw: int) -> float | None:
    return None if raw == UNSET_U16 else (raw - 20000) / 100


def _raw_temperature(value_c: float | None) -> int:
    return UNSET_U16 if value_c is None else round(value_c * 100) + 20000


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise ProtocolError(f"{what}: payload is {len(payload)} bytes, need {size}")


# --- charger → app -------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginInfo:
    """Login (broadcast) and LoginResponse: who the charger is. Power in W, current in A."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.LOGIN, Cmd.LOGIN_RESPONSE)
    evse_type: int
    brand: str
    model: str
    hardware_version: str
    max_power_w: int
    max_current_a: int  # per phase
    hotline: str
    byte70: int | None = None  # meaning unknown; emproto4go infers 1-phase forcing from it

    @property
    def phases(self) -> int:
        return 3 if self.evse_type in THREE_PHASE_TYPES else 1

    @property
    def can_force_single_phase(self) -> bool:
        """A three-phase unit that can be told to charge on one phase (emproto4go's rule)."""
        return 22 <= self.evse_type <= 25 and self.byte70 is not None and self.byte70 < 11

    _BASE = struct.Struct(">B16s16s16sIB16s")  # 70 bytes

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, cls._BASE.size, "login")
        kind, brand, model, hw, power_w, current_a, hotline = cls._BASE.unpack_from(payload)
        byte70 = None
        # Longer variants: 118 bytes continue the hot line; 119 and 151 put a byte at 70 first,
        # and 151 also continues brand and model.
        texts = [_text(brand), _text(model), _text(hotline)]
        if len(payload) >= 119:
            byte70 = payload[70]
            texts[2] += _text(payload[71:119])
            if len(payload) >= 151:
                texts[0] += _text(payload[119:135])
                texts[1] += _text(payload[135:151])
        elif len(payload) >= 118:
            texts[2] += _text(payload[70:118])
        return cls(kind, texts[0], texts[1], _text(hw), power_w, current_a, texts[2], byte70)

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        base = self._BASE.pack(self.evse_type, _pad(self.brand, 16), _pad(self.model, 16),
                               _pad(self.hardware_version, 16), self.max_power_w,
                               self.max_current_a, _pad(self.hotline[:16], 16))
        if self.byte70 is None:
            return base
        return base + bytes([self.byte70]) + _pad(self.hotline[16:], 48)


@dataclass(frozen=True)
class ACStatus:
    """Live measurements. Voltages in V and currents in A per phase, power in W, the
    lifetime energy register in kWh, temperatures in °C (None: not available)."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.AC_STATUS,)
    line_id: int
    l1_voltage_v: float
    l1_current_a: float
    power_w: int
    energy_total_kwh: float
    inner_temperature_c: float | None
    outer_temperature_c: float | None
    emergency_button: int
    gun_state: int  # GunState
    output_state: int  # OutputState
    current_state: int  # CurrentState
    errors: int  # bitfield, see ERROR_BITS
    l2_voltage_v: float | None = None  # None: a single-phase status
    l2_current_a: float | None = None
    l3_voltage_v: float | None = None
    l3_current_a: float | None = None

    _BASE = struct.Struct(">BHHIIHHBBBBI")  # 25 bytes
    _PHASES = struct.Struct(">HHHH")  # 8 more on three-phase units

    @property
    def error_bits(self) -> tuple[int, ...]:
        return tuple(bit for bit in range(32) if self.errors >> bit & 1)

    @property
    def phase_currents_a(self) -> tuple[float, ...]:
        if self.l2_current_a is None or self.l3_current_a is None:
            return (self.l1_current_a,)
        return (self.l1_current_a, self.l2_current_a, self.l3_current_a)

    @property
    def phase_voltages_v(self) -> tuple[float, ...]:
        if self.l2_voltage_v is None or self.l3_voltage_v is None:
            return (self.l1_voltage_v,)
        return (self.l1_voltage_v, self.l2_voltage_v, self.l3_voltage_v)

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, cls._BASE.size, "AC status")
        (line, v1, i1, power_w, energy, t_in, t_out, emergency, gun, output, state,
         errors) = cls._BASE.unpack_from(payload)
        extra: tuple[float | None, ...] = (None, None, None, None)
        if len(payload) >= cls._BASE.size + cls._PHASES.size:
            v2, i2, v3, i3 = cls._PHASES.unpack_from(payload, cls._BASE.size)
            extra = (v2 / 10, i2 / 100, v3 / 10, i3 / 100)
        # Values no wallbox reports (≤ 32 A a phase, ≤ 22 kW): a broken datagram, not used.
        volts = [v for v in (v1 / 10, extra[0], extra[2]) if v is not None]
        amps = [a for a in (i1 / 100, extra[1], extra[3]) if a is not None]
        if max(volts) > MAX_VOLTAGE_V or max(amps) > MAX_CURRENT_A or power_w > MAX_POWER_W:
            raise ProtocolError(f"AC status: implausible {volts} V, {amps} A, {power_w} W")
        return cls(line, v1 / 10, i1 / 100, power_w, energy / 100, _temperature_c(t_in),
                   _temperature_c(t_out), emergency, gun, output, state, errors, *extra)

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        out = self._BASE.pack(
            self.line_id, round(self.l1_voltage_v * 10), round(self.l1_current_a * 100),
            self.power_w, round(self.energy_total_kwh * 100),
            _raw_temperature(self.inner_temperature_c),
            _raw_temperature(self.outer_temperature_c), self.emergency_button, self.gun_state,
            self.output_state, self.current_state, self.errors)
        if None in (self.l2_voltage_v, self.l2_current_a, self.l3_voltage_v, self.l3_current_a):
            return out
        return out + self._PHASES.pack(
            round((self.l2_voltage_v or 0) * 10), round((self.l2_current_a or 0) * 100),
            round((self.l3_voltage_v or 0) * 10), round((self.l3_current_a or 0) * 100))


@dataclass(frozen=True)
class ChargingStatus:
    """The running session, else a planned one, else the last one. Energies in kWh (the
    counters are the lifetime register), durations in min and s, current in A, money in the
    charger's currency units."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.CHARGING_STATUS, Cmd.CHARGING_STATUS_RESPONSE)
    port: int
    current_state: int  # CurrentState
    charge_id: str
    start_type: int
    charge_type: int
    max_duration_min: int | None
    max_energy_kwh: float | None
    param3: float | None
    reservation_at: datetime | None
    user_id: str
    max_current_a: int  # the current this session runs at
    started_at: datetime | None
    duration_s: int
    start_energy_kwh: float
    energy_now_kwh: float
    session_energy_kwh: float
    charge_price: float
    fee_type: int
    charge_fee: float

    _LAYOUT = struct.Struct(">BB16sBBHHHI16sBIIIIIIBH")  # 74 bytes

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, cls._LAYOUT.size, "charging status")
        (port, state, charge_id, start_type, charge_type, duration_min, energy, param3,
         reserved, user, current_a, started, duration_s, start_e, now_e, session_e, price,
         fee_type, fee) = cls._LAYOUT.unpack_from(payload)
        return cls(port, state, _text(charge_id), start_type, charge_type,
                   None if duration_min == UNSET_U16 else duration_min,
                   _scaled_or_none(energy, 0.01), _scaled_or_none(param3, 0.01),
                   from_em_time(reserved, tz), _text(user), current_a,
                   from_em_time(started, tz), duration_s, start_e / 100, now_e / 100,
                   session_e / 100, price / 100, fee_type, fee / 100)

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        return self._LAYOUT.pack(
            self.port, self.current_state, _pad(self.charge_id, 16), self.start_type,
            self.charge_type,
            UNSET_U16 if self.max_duration_min is None else self.max_duration_min,
            _unscaled_or_unset(self.max_energy_kwh, 0.01),
            _unscaled_or_unset(self.param3, 0.01),
            0 if self.reservation_at is None else em_time(self.reservation_at, tz),
            _pad(self.user_id, 16), self.max_current_a,
            0 if self.started_at is None else em_time(self.started_at, tz), self.duration_s,
            round(self.start_energy_kwh * 100), round(self.energy_now_kwh * 100),
            round(self.session_energy_kwh * 100), round(self.charge_price * 100),
            self.fee_type, round(self.charge_fee * 100))


@dataclass(frozen=True)
class ChargeStartReply:
    """Answer to ChargeStart. Current in A."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.CHARGE_START_RESPONSE,)
    line_id: int
    reservation_result: int  # 0 immediate, 1 reserved, 4 time in the past (started), …
    start_result: int
    error_reason: int  # START_ERRORS; 0 = OK
    max_current_a: int

    _LAYOUT = struct.Struct(">BBBBB")

    @property
    def ok(self) -> bool:
        return self.error_reason == 0 and self.reservation_result in (0, 1, 4)

    @property
    def error(self) -> str:
        reason = START_ERRORS.get(self.error_reason, f"error {self.error_reason}")
        return reason if self.error_reason else f"reservation result {self.reservation_result}"

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, cls._LAYOUT.size, "charge start reply")
        return cls(*cls._LAYOUT.unpack_from(payload))

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        return self._LAYOUT.pack(self.line_id, self.reservation_result, self.start_result,
                                 self.error_reason, self.max_current_a)


@dataclass(frozen=True)
class ChargeStopReply:
    """Answer to ChargeStop."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.CHARGE_STOP_RESPONSE,)
    line_id: int
    stop_result: int
    fail_reason: int  # 0 = OK

    _LAYOUT = struct.Struct(">BBB")

    @property
    def ok(self) -> bool:
        return self.fail_reason == 0

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, cls._LAYOUT.size, "charge stop reply")
        return cls(*cls._LAYOUT.unpack_from(payload))

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        return self._LAYOUT.pack(self.line_id, self.stop_result, self.fail_reason)


@dataclass(frozen=True)
class VersionInfo:
    """GetVersion answer. BS20 units send 36 bytes, without `support_new`."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.VERSION_RESPONSE,)
    hardware_version: str
    software_version: str
    feature: int
    support_new: int | None = None

    _LAYOUT = struct.Struct(">16s16sI")

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, cls._LAYOUT.size, "version")
        hw, sw, feature = cls._LAYOUT.unpack_from(payload)
        support_new = payload[36] if len(payload) > 36 else None
        return cls(_text(hw), _text(sw), feature, support_new)

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        out = self._LAYOUT.pack(_pad(self.hardware_version, 16),
                                _pad(self.software_version, 16), self.feature)
        return out if self.support_new is None else out + bytes([self.support_new])


# --- settings: requests (app → charger) and replies (charger → app) share each layout -----

@dataclass(frozen=True)
class MaxCurrentSetting:
    """The stored default current, A (0x8107 / 0x0107). A GET carries 0."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.MAX_CURRENT, Cmd.MAX_CURRENT_RESPONSE)
    action: int  # Action
    max_current_a: int

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, 1, "max current setting")  # a bare GET (`02`) is one byte
        return cls(payload[0], payload[1] if len(payload) > 1 else 0)

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        return bytes([self.action, self.max_current_a])


@dataclass(frozen=True)
class ByteSetting:
    """A one-byte setting: offline charging (0x810D), language (0x810F), temperature unit
    (0x8112; 1 °C, 2 °F) and their replies. A GET carries 0."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (
        Cmd.OFFLINE_CHARGE, Cmd.OFFLINE_CHARGE_RESPONSE, Cmd.ALARM_STRATEGY,
        Cmd.ALARM_STRATEGY_RESPONSE, Cmd.LANGUAGE, Cmd.LANGUAGE_RESPONSE,
        Cmd.TEMPERATURE_UNIT, Cmd.TEMPERATURE_UNIT_RESPONSE)
    action: int
    value: int

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, 2, "setting")
        return cls(payload[0], payload[1])

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        return bytes([self.action, self.value])


NICKNAME_PREFIX = "ACP#"  # the charger stores it in front of the name


@dataclass(frozen=True)
class NicknameSetting:
    """The charger's name (0x8108 / 0x0108), without the stored `ACP#` prefix."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.NICKNAME, Cmd.NICKNAME_RESPONSE)
    action: int
    nickname: str

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, 1, "nickname")
        return cls(payload[0], _text(payload[1:33]).removeprefix(NICKNAME_PREFIX))

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        name = NICKNAME_PREFIX + self.nickname if self.nickname else ""
        return bytes([self.action]) + _pad(name, 32)


@dataclass(frozen=True)
class SystemTime:
    """The charger's clock (0x8101 / 0x0101)."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.SYSTEM_TIME, Cmd.SYSTEM_TIME_RESPONSE)
    action: int
    time: datetime | None

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        _need(payload, 5, "system time")
        (value,) = struct.unpack_from(">I", payload, 1)
        return cls(payload[0], from_em_time(value, tz))

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        value = 0 if self.time is None else em_time(self.time, tz)
        return struct.pack(">BI", self.action, value)


# --- app → charger -------------------------------------------------------------------------

@dataclass(frozen=True)
class ChargeStartRequest:
    """ChargeStart, 47 bytes. The session runs at `max_current_a` (A) until it stops: most
    units cannot change it during a session. Durations in min, energy in kWh."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.CHARGE_START,)
    line_id: int  # 1; three-phase units: 2 = all phases, 1 (+ charge type 11) = one
    user_id: str  # shown in the charger's records
    charge_id: str
    reservation: bool
    start_at: datetime | None
    start_type: int
    charge_type: int
    max_duration_min: int | None
    max_energy_kwh: float | None
    param3: int  # always 0xFFFF: 0 makes units stop the session after a few seconds
    max_current_a: int

    _LAYOUT = struct.Struct(">B16s16sBIBBHHHB")  # 47 bytes

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        if len(payload) != cls._LAYOUT.size:
            raise ProtocolError(f"charge start: payload is {len(payload)} bytes, need 47")
        (line, user, charge_id, reservation, start, start_type, charge_type, duration,
         energy, param3, current_a) = cls._LAYOUT.unpack(payload)
        return cls(line, _text(user), _text(charge_id), reservation == 1,
                   from_em_time(start, tz), start_type, charge_type,
                   None if duration == UNSET_U16 else duration, _scaled_or_none(energy, 0.01),
                   param3, current_a)

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        return self._LAYOUT.pack(
            self.line_id, _pad(self.user_id, 16), _pad(self.charge_id, 16),
            int(self.reservation), 0 if self.start_at is None else em_time(self.start_at, tz),
            self.start_type, self.charge_type,
            UNSET_U16 if self.max_duration_min is None else self.max_duration_min,
            _unscaled_or_unset(self.max_energy_kwh, 0.01), self.param3, self.max_current_a)


@dataclass(frozen=True)
class ChargeStopRequest:
    """ChargeStop, 47 bytes: line, user id, 30 zero bytes. Also cancels a planned start.
    Other clients send the first 17 bytes only (line and user id), or just the line."""

    COMMANDS: ClassVar[tuple[Cmd, ...]] = (Cmd.CHARGE_STOP,)
    line_id: int
    user_id: str

    @classmethod
    def from_payload(cls, payload: bytes, tz: tzinfo | None = None) -> Self:
        if not 1 <= len(payload) <= 47:
            raise ProtocolError(f"charge stop: payload is {len(payload)} bytes, need 1–47")
        return cls(payload[0], _text(payload[1:17]))

    def to_payload(self, tz: tzinfo | None = None) -> bytes:
        return bytes([self.line_id]) + _pad(self.user_id, 16) + bytes(30)


Message = (LoginInfo | ACStatus | ChargingStatus | ChargeStartReply | ChargeStopReply
           | VersionInfo | MaxCurrentSetting | ByteSetting | NicknameSetting | SystemTime
           | ChargeStartRequest | ChargeStopRequest)

_DECODERS: dict[int, type[Message]] = {
    cmd: kind
    for kind in (LoginInfo, ACStatus, ChargingStatus, ChargeStartReply, ChargeStopReply,
                 VersionInfo, MaxCurrentSetting, ByteSetting, NicknameSetting, SystemTime,
                 ChargeStartRequest, ChargeStopRequest)
    for cmd in kind.COMMANDS
}


def decode(datagram: Datagram, tz: tzinfo | None = None) -> Message | None:
    """The typed payload of a datagram; None for commands without one we read (pings,
    acknowledgements, login requests, password errors, unknown ids)."""
    kind = _DECODERS.get(datagram.command)
    return None if kind is None else kind.from_payload(datagram.payload, tz)


# --- app → charger datagrams ---------------------------------------------------------------

def request_login(serial: str, password: str) -> bytes:
    return encode(serial, password, Cmd.REQUEST_LOGIN, b"\x00")


def login_confirm(serial: str, password: str) -> bytes:
    return encode(serial, password, Cmd.LOGIN_CONFIRM, b"\x00")


def heading_response(serial: str, password: str) -> bytes:
    return encode(serial, password, Cmd.HEADING_RESPONSE, b"\x00")


def status_ack(serial: str, password: str) -> bytes:
    """Acknowledges an AC status push."""
    return encode(serial, password, Cmd.AC_STATUS_ACK, b"\x01")


def charging_status_ack(serial: str, password: str) -> bytes:
    return encode(serial, password, Cmd.CHARGING_STATUS_ACK, b"\x00")


def request_status(serial: str, password: str) -> bytes:
    """0x800D with payload `00`, as the other requests without a value carry."""
    return encode(serial, password, Cmd.REQUEST_STATUS, b"\x00")


def request_charging_status(serial: str, password: str) -> bytes:
    return encode(serial, password, Cmd.REQUEST_CHARGING_STATUS, b"\x00")


def get_version(serial: str, password: str) -> bytes:
    return encode(serial, password, Cmd.GET_VERSION)


def charge_start(serial: str, password: str, *, current_a: int, user_id: str, charge_id: str,
                 start_at: datetime, line_id: int = 1, charge_type: int = 1,
                 reservation: bool = False, max_duration_min: int | None = None,
                 max_energy_kwh: float | None = None, tz: tzinfo | None = None) -> bytes:
    """ChargeStart at `current_a` (whole A, 6–32). Single-phase units take line 1; three-
    phase units line 2 for all phases, or line 1 with charge type 11 for one phase where
    `LoginInfo.can_force_single_phase`."""
    if not 6 <= current_a <= 32:
        raise ValueError(f"a session current is 6–32 A, got {current_a}")
    request = ChargeStartRequest(line_id, user_id, charge_id, reservation, start_at, 1,
                                 charge_type, max_duration_min, max_energy_kwh, UNSET_U16,
                                 current_a)
    return encode(serial, password, Cmd.CHARGE_START, request.to_payload(tz))


def charge_stop(serial: str, password: str, *, user_id: str, line_id: int = 1) -> bytes:
    return encode(serial, password, Cmd.CHARGE_STOP,
                  ChargeStopRequest(line_id, user_id).to_payload())


_SETTING_WIDTHS = {Cmd.MAX_CURRENT: 1, Cmd.NICKNAME: 32, Cmd.OFFLINE_CHARGE: 1,
                   Cmd.ALARM_STRATEGY: 1,
                   Cmd.LANGUAGE: 1, Cmd.TEMPERATURE_UNIT: 1}


def get_setting(serial: str, password: str, command: Cmd) -> bytes:
    """A GET of a setting: action 2, the value zeroed."""
    width = _SETTING_WIDTHS.get(command)
    if width is None:
        raise ValueError(f"{command!r} is not a gettable setting")
    return encode(serial, password, command, bytes([Action.GET]) + bytes(width))


def set_setting(serial: str, password: str, command: Cmd, value: int) -> bytes:
    """A SET of a one-byte setting (max current in A, offline charging, language, unit)."""
    if _SETTING_WIDTHS.get(command) != 1 or not 0 <= value <= 255:
        raise ValueError(f"cannot set {command!r} to {value}")
    return encode(serial, password, command, bytes([Action.SET, value]))


def set_system_time(serial: str, password: str, when: datetime,
                    tz: tzinfo | None = None) -> bytes:
    return encode(serial, password, Cmd.SYSTEM_TIME, SystemTime(Action.SET, when).to_payload(tz))
