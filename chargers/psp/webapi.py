"""The PSP EVSE WebAPI v1 as data: typed replies, the EVSE state names, the settings check.

Facts from the vendor's guide (shared/reference/psp-evse-webapi.md). Pure functions: bytes in,
dataclasses out, `WebAPIError` (a `ChargerError`) for anything that is not what the guide
describes. Powers in W, currents in A, energy in Ws as the controller reports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from chargers.base import ChargerError

BASE_PATH = "/webapi/v1"
STATUS = f"{BASE_PATH}/Status"
EVSE_CTRL = f"{BASE_PATH}/EvseCtrl"
SYSTEM_CONFIG = f"{BASE_PATH}/SystemConfig"
SYSTEM_INFO = f"{BASE_PATH}/SystemInfo"

CONTROL_STRATEGY_POWER_LIMITING = 1
METER2_REMOTE_CONTROL = 7

CONTROL_STRATEGIES = {0: "no optimisation", 1: "power limiting"}
METER_TYPES = {0: "none", 1: "Modbus SDM72D-M", 2: "Modbus NMID30-2", 3: "Modbus SDM120M",
               4: "IP SDM72D-M", 5: "IP NMID30-2", 6: "IP SDM120M", 7: "remote control"}


class WebAPIError(ChargerError):
    """The controller answered something that is not the documented JSON."""


class EvseState(IntEnum):
    """`EvseState` (the firmware's cpEvseStateEnum_t); A–E are IEC 61851 pilot states."""

    WAITING = 0
    IDLE_A1_A2 = 1
    RELAY_ERR_F = 2
    EPO_F = 3
    EV_CONNECTED_B1_B2 = 4
    EV_CHARGE_C1_C2 = 5
    EV_VENT_D1_D2 = 6
    EV_DIODE_ERR = 7
    EV_ERR_E = 8
    EV_GENERAL_ERR = 9
    PP_ERR_F = 10
    LOCK_ERR_F = 11

    @property
    def vendor_name(self) -> str:
        """The name in the vendor's guide, e.g. "EVSE_RELAY_ERR_F"."""
        return f"EVSE_{self.name}"


# Every state in words; a fault's words start with "fault: " and keep the vendor name.
_WORDS: dict[EvseState, str] = {
    EvseState.WAITING: "waiting",
    EvseState.IDLE_A1_A2: "no vehicle",
    EvseState.RELAY_ERR_F: "fault: relay (EVSE_RELAY_ERR_F)",
    EvseState.EPO_F: "fault: emergency power off (EVSE_EPO_F)",
    EvseState.EV_CONNECTED_B1_B2: "vehicle connected",
    EvseState.EV_CHARGE_C1_C2: "charging",
    EvseState.EV_VENT_D1_D2: "charging, ventilation requested",
    EvseState.EV_DIODE_ERR: "fault: vehicle pilot diode (EVSE_EV_DIODE_ERR)",
    EvseState.EV_ERR_E: "fault: vehicle error, pilot state E (EVSE_EV_ERR_E)",
    EvseState.EV_GENERAL_ERR: "fault: general (EVSE_EV_GENERAL_ERR)",
    EvseState.PP_ERR_F: "fault: cable proximity pilot (EVSE_PP_ERR_F)",
    EvseState.LOCK_ERR_F: "fault: socket lock (EVSE_LOCK_ERR_F)",
}
_DRAWING = {EvseState.EV_CHARGE_C1_C2, EvseState.EV_VENT_D1_D2}
_VEHICLE = {EvseState.EV_CONNECTED_B1_B2, *_DRAWING}


def state_words(value: int) -> str:
    """`EvseState` in words; faults read "fault: …", unknown values are named, not guessed."""
    try:
        return _WORDS[EvseState(value)]
    except ValueError:
        return f"unknown EvseState {value}"


def is_fault(value: int) -> bool:
    return state_words(value).startswith("fault: ")


@dataclass(frozen=True)
class Status:
    """GET /webapi/v1/Status, the fields a controller needs."""

    evse_state: int  # raw; may be a value newer firmware added
    three_phase: bool  # ThreePhaseCharging
    current_a: float  # ActualCurrent
    power_w: float  # ActualPower
    power_available_w: float | None  # ActualPowerAvailable: only with optimisation active
    energy_ws: float  # ActualEnergy, this session
    start_stop_allowed: bool  # StartStopAllowed
    started: bool  # ChargerStarted

    @property
    def drawing(self) -> bool:
        """Pilot in C or D: the contactor is closed for the vehicle."""
        return self.evse_state in _DRAWING

    @property
    def vehicle_connected(self) -> bool | None:
        """True in B/C/D, False in A, None when a fault or waiting hides it."""
        if self.evse_state in _VEHICLE:
            return True
        return False if self.evse_state == EvseState.IDLE_A1_A2 else None

    def words(self) -> str:
        """E.g. "charging", "vehicle connected, stopped", "fault: relay (EVSE_RELAY_ERR_F)"."""
        words = state_words(self.evse_state)
        if self.vehicle_connected and not self.started:
            words += ", stopped"
        if self.vehicle_connected and not self.start_stop_allowed:
            words += ", start/stop not allowed"
        return words


@dataclass(frozen=True)
class SystemConfig:
    """GET /webapi/v1/SystemConfig, the fields that decide whether throttling works."""

    charge_current_a: float  # ChargeCurrent: the maximum charge current
    three_phase: bool  # Charge3Phase
    control_strategy: int  # 0 none, 1 power limiting
    meter2_type: int  # 7 = remote control
    meter2_ip: str | None
    auto_start: bool | None  # ChargeAutoStart

    def problems(self) -> list[str]:
        """What to change on the charger so that EVSEPowerAvailable throttles it; [] if fine."""
        out = []
        if self.control_strategy != CONTROL_STRATEGY_POWER_LIMITING:
            now = CONTROL_STRATEGIES.get(self.control_strategy, "unknown")
            out.append(f"ControlStrategy = 1 (power limiting; now {self.control_strategy} = {now})")
        if self.meter2_type != METER2_REMOTE_CONTROL:
            now = METER_TYPES.get(self.meter2_type, "unknown")
            out.append(f"Meter2Type = 7 (remote control, with Meter2Ip = this host's address; "
                       f"now {self.meter2_type} = {now})")
        return out


@dataclass(frozen=True)
class SystemInfo:
    """GET /webapi/v1/SystemInfo, what identifies the controller in a log line."""

    version: str  # SystemVersion
    product: str | None  # ProductType
    mac: str | None
    general: str | None  # GeneralInfo: health in words


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


# The most a wallbox can report: 3 × 100 A at 400 V, and 1 MWh in one session.
MAX_CURRENT_A = 100.0
MAX_POWER_W = 3 * 100 * 400.0
MAX_ENERGY_WS = 3.6e9


def decode_object(body: bytes, what: str) -> dict[str, Any]:
    """A reply body as a JSON object; WebAPIError saying how it is broken otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebAPIError(f"{what}: reply is not UTF-8 text: {body[:60]!r}") from None
    if not text.strip():
        raise WebAPIError(f"{what}: empty reply, expected JSON")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        kind = "truncated JSON" if cut else "not JSON"
        raise WebAPIError(f"{what}: {kind} ({exc.msg}, char {exc.pos} of {len(text)}): "
                          f"{_snippet(text)}") from None
    except ValueError as exc:  # NaN / Infinity
        raise WebAPIError(f"{what}: {exc}: {_snippet(text)}") from None
    except RecursionError:
        raise WebAPIError(f"{what}: JSON nested too deeply: {_snippet(text)}") from None
    if not isinstance(value, dict):
        raise WebAPIError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _snippet(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")


def _value(obj: dict[str, Any], key: str, what: str) -> Any:
    if key not in obj:
        raise WebAPIError(f"{what}: {key} missing")
    return obj[key]


def _number(obj: dict[str, Any], key: str, what: str, low: float = -1e15,
            high: float = 1e15) -> float:
    """A JSON number within [low, high] (a value outside is implausible for the device)."""
    value = _value(obj, key, what)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WebAPIError(f"{what}: {key} should be a number, got {value!r:.60}")
    # Compared before any float(): an integer beyond a float's range would overflow, and
    # 1e999 parses as inf.
    if not low <= value <= high:
        raise WebAPIError(f"{what}: {key} {value!r:.30} is outside the plausible "
                          f"{low:g}…{high:g}")
    return float(value)


def _integer(obj: dict[str, Any], key: str, what: str) -> int:
    value = _number(obj, key, what)
    if not value.is_integer():
        raise WebAPIError(f"{what}: {key} should be an integer, got {value!r}")
    return int(value)


def _flag(obj: dict[str, Any], key: str, what: str) -> bool:
    value = _value(obj, key, what)
    if not isinstance(value, bool):
        raise WebAPIError(f"{what}: {key} should be true or false, got {value!r}")
    return value


def _text(obj: dict[str, Any], key: str, what: str) -> str:
    value = _value(obj, key, what)
    if not isinstance(value, str):
        raise WebAPIError(f"{what}: {key} should be a string, got {value!r}")
    return value


T = TypeVar("T")


def _optional(parse: Callable[[dict[str, Any], str, str], T], obj: dict[str, Any], key: str,
              what: str) -> T | None:
    """Fields the guide marks as conditional (or newer than v1.0) may be absent or null."""
    return None if obj.get(key) is None else parse(obj, key, what)


def parse_status(body: bytes) -> Status:
    what = "Status"
    obj = decode_object(body, what)
    return Status(
        evse_state=_integer(obj, "EvseState", what),
        three_phase=_flag(obj, "ThreePhaseCharging", what),
        current_a=_number(obj, "ActualCurrent", what, 0, MAX_CURRENT_A),
        power_w=_number(obj, "ActualPower", what, 0, MAX_POWER_W),
        power_available_w=_optional(_number, obj, "ActualPowerAvailable", what),
        energy_ws=_number(obj, "ActualEnergy", what, 0, MAX_ENERGY_WS),
        start_stop_allowed=_flag(obj, "StartStopAllowed", what),
        started=_flag(obj, "ChargerStarted", what),
    )


def parse_system_config(body: bytes) -> SystemConfig:
    what = "SystemConfig"
    obj = decode_object(body, what)
    return SystemConfig(
        charge_current_a=_number(obj, "ChargeCurrent", what, 0, MAX_CURRENT_A),
        three_phase=_flag(obj, "Charge3Phase", what),
        control_strategy=_integer(obj, "ControlStrategy", what),
        meter2_type=_integer(obj, "Meter2Type", what),
        meter2_ip=_optional(_text, obj, "Meter2Ip", what),
        auto_start=_optional(_flag, obj, "ChargeAutoStart", what),
    )


def parse_system_info(body: bytes) -> SystemInfo:
    what = "SystemInfo"
    obj = decode_object(body, what)
    return SystemInfo(
        version=_text(obj, "SystemVersion", what),
        product=_optional(_text, obj, "ProductType", what),
        mac=_optional(_text, obj, "MAC", what),
        general=_optional(_text, obj, "GeneralInfo", what),
    )
