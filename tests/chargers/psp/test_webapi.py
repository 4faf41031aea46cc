"""PSP EVSE WebAPI parsing: the guide's examples, every EvseState named, any bytes handled."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargers.psp.webapi import (
    EvseState,
    SystemConfig,
    WebAPIError,
    decode_object,
    is_fault,
    parse_status,
    parse_system_config,
    parse_system_info,
    state_words,
)

# The guide's examples (shared/seeds/003_719ba3166a050b8c.txt), verbatim values.
GUIDE_STATUS = {
    "TimeStamp": 179760, "SystemVersion": "0.9.1", "WiFiInfo": "559EVSE:60%", "EvseState": 4,
    "ThreePhaseCharging": True, "ActualCurrent": 16, "PPCodedCurrent": 20,
    "ActualPower": 11040, "ActualPowerAvailable": 22080, "ActualEnergy": 0,
    "ActualDuration": "00h:00m:00s", "ActualDurationTotalSeconds": 3774,
    "AutoStartAllowed": False, "StartStopAllowed": True, "BoostAllowed": True,
    "ChargerStarted": True, "ChargeBoosted": False, "Meter1Status": 0, "Meter2Status": 0,
}
GUIDE_SYSTEM_CONFIG = {
    "TimeStamp": 1661687, "SystemVersion": "0.5.0", "ChargerMode": 0, "LockMethod": 0,
    "ChargeCurrent": 6, "ChargeCurrentBoost": 32, "Meter1Type": 1, "Meter1Ip": "192.168.0.30",
    "Meter2Type": 2, "Meter2Ip": "192.168.0.30", "PhaseCurrentLimit": 25, "ControlStrategy": 1,
    "ControlLimit": 0, "ChargeAutoStart": True, "Charge3Phase": True,
}
GUIDE_SYSTEM_INFO = {
    "TimeStamp": 520144, "SystemVersion": "0.9.2", "ProductType": "01100200",
    "MAC": "E0:E2:E6:52:AA:D4", "WiFiInfo": "559EVSE,RSSI:-49dB/68%",
    "HeapInfo": "0x022DF0/0x02D230", "GeneralInfo": "System: Brak usterek",
    "OTAMsg": "Operacja nie dozwolona w trybie WiFi AP!", "OTACheckAllowed": True,
    "OTAUpdateAllowed": False,
}


def _body(obj: object) -> bytes:
    return json.dumps(obj, indent=6).encode()


def test_guide_status_example() -> None:
    s = parse_status(_body(GUIDE_STATUS))
    assert (s.evse_state, s.three_phase, s.current_a, s.power_w, s.power_available_w,
            s.energy_ws, s.start_stop_allowed, s.started) == (4, True, 16, 11040, 22080, 0,
                                                              True, True)
    assert s.vehicle_connected and not s.drawing
    assert s.words() == "vehicle connected"


def test_guide_system_config_and_info_examples() -> None:
    cfg = parse_system_config(_body(GUIDE_SYSTEM_CONFIG))
    assert (cfg.charge_current_a, cfg.three_phase, cfg.control_strategy, cfg.meter2_type,
            cfg.meter2_ip, cfg.auto_start) == (6, True, 1, 2, "192.168.0.30", True)
    info = parse_system_info(_body(GUIDE_SYSTEM_INFO))
    assert (info.version, info.product, info.mac) == ("0.9.2", "01100200", "E0:E2:E6:52:AA:D4")


def test_optional_fields_may_be_absent() -> None:
    status = {k: v for k, v in GUIDE_STATUS.items() if k != "ActualPowerAvailable"}
    assert parse_status(_body(status)).power_available_w is None
    info = parse_system_info(_body({"SystemVersion": "1.0.0"}))
    assert info.product is None and info.general is None


@pytest.mark.parametrize("state", list(EvseState))
def test_every_evse_state_has_words_and_faults_say_so(state: EvseState) -> None:
    words = state_words(state)
    assert words and not words.startswith("unknown")
    vendor = state.vendor_name
    assert is_fault(state) == (vendor.endswith(("_F", "_ERR", "_ERR_E")))
    if is_fault(state):
        assert words.startswith("fault: ") and vendor in words


def test_unknown_evse_state_is_named_not_guessed() -> None:
    status = parse_status(_body({**GUIDE_STATUS, "EvseState": 12}))
    assert status.words() == "unknown EvseState 12"
    assert status.vehicle_connected is None and not is_fault(12)


def test_stopped_session_is_said() -> None:
    assert parse_status(_body({**GUIDE_STATUS, "ChargerStarted": False})).words() == \
        "vehicle connected, stopped"
    assert parse_status(_body({**GUIDE_STATUS, "StartStopAllowed": False})).words() == \
        "vehicle connected, start/stop not allowed"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "Status: empty reply"),
    (b"<html><body>500</body></html>", "Status: not JSON"),
    (b'{"EvseState": 4, "ThreePhase', "Status: truncated JSON"),
    (b'{"EvseState": 4,', "Status: truncated JSON"),
    (b"\xff\xfe", "Status: reply is not UTF-8"),
    (b"[4]", "Status: expected a JSON object, got list"),
    (b'{"EvseState": NaN}', "NaN is not a JSON number"),
    (_body({**GUIDE_STATUS, "ActualPower": "11 kW"}), "ActualPower should be a number"),
    (_body(GUIDE_STATUS).replace(b"11040", b"1e999"), "ActualPower inf is outside"),
    (_body(GUIDE_STATUS).replace(b"11040", b"9" * 400), "ActualPower 9+ is outside"),
    (_body({**GUIDE_STATUS, "ActualCurrent": 1e92}), "ActualCurrent 1e\\+92 is outside"),
    (_body({**GUIDE_STATUS, "ActualEnergy": -5}), "ActualEnergy -5 is outside"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (_body({**GUIDE_STATUS, "ChargerStarted": 1}), "ChargerStarted should be true or false"),
    (_body({**GUIDE_STATUS, "EvseState": 4.5}), "EvseState should be an integer"),
    (_body({k: v for k, v in GUIDE_STATUS.items() if k != "ChargerStarted"}),
     "ChargerStarted missing"),
])
def test_broken_replies_are_clear_errors(body: bytes, message: str) -> None:
    with pytest.raises(WebAPIError, match=message):
        parse_status(body)


def test_every_truncation_of_a_reply_is_an_error() -> None:
    body = _body(GUIDE_STATUS)
    for cut in range(len(body.rstrip()) - 1):
        with pytest.raises(WebAPIError, match=r"JSON|empty reply"):
            parse_status(body[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_webapi_error(body: bytes) -> None:
    with contextlib.suppress(WebAPIError):
        parse_status(body)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(GUIDE_STATUS)), _json))
def test_any_field_values_parse_or_raise_webapi_error(changes: dict[str, object]) -> None:
    body = json.dumps({**GUIDE_STATUS, **changes}).encode()
    with contextlib.suppress(WebAPIError):
        parse_status(body)


def test_settings_check_names_each_setting_to_change() -> None:
    ok = SystemConfig(16, True, 1, 7, "192.168.0.10", False)
    assert ok.problems() == []
    bad = SystemConfig(16, True, 0, 2, "192.168.0.30", False)
    assert bad.problems() == [
        "ControlStrategy = 1 (power limiting; now 0 = no optimisation)",
        "Meter2Type = 7 (remote control, with Meter2Ip = this host's address; now 2 = "
        "Modbus NMID30-2)",
    ]


def test_decode_object_names_the_endpoint() -> None:
    with pytest.raises(WebAPIError, match=r"^SystemConfig: not JSON"):
        decode_object(b"Not Found", "SystemConfig")
