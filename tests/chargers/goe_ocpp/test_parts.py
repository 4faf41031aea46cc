"""The go-e driver's pure parts: MeterValues parsing, profiles, the follow check, config."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, _validate_payload

from chargers.goe_ocpp import meter
from chargers.goe_ocpp.config import GoEOcppConfig, OcppConfig
from chargers.goe_ocpp.profiles import FollowCheck, Setpoint, quantize_a, set_profile
from divert.config import ConfigError, validate

GOE_SAMPLE = [{"timestamp": "2026-06-01T12:00:00Z", "sampled_value": [
    {"value": "12345", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
    {"value": "4.14", "measurand": "Power.Active.Import", "unit": "kW"},
    {"value": "6.02", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
    {"value": "5.98", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
    {"value": "0.03", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
    {"value": "231.0", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
    {"value": "229.0", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
    {"value": "230.0", "measurand": "Voltage", "phase": "L3-N", "unit": "V"},
    {"value": "6.0", "measurand": "Current.Offered", "unit": "A"},
    {"value": "50.01", "measurand": "Frequency"},
    {"value": "31.5", "measurand": "Temperature", "location": "Body", "unit": "Celsius"},
]}]


def test_meter_values_of_a_go_e() -> None:
    s = meter.parse(GOE_SAMPLE)
    assert s.power_w == pytest.approx(4140.0)
    assert s.currents_a == (6.02, 5.98, 0.03)
    assert s.voltages_v == (231.0, 229.0, 230.0)
    assert s.mean_voltage_v == pytest.approx(230.0)
    assert (s.offered_a, s.energy_wh, s.max_current_a) == (6.0, 12345.0, 6.02)
    assert s.phases_drawing() == 2
    assert s.skipped == ()


def test_meter_values_defaults_and_fallbacks() -> None:
    # No measurand: the energy register (Wh); power only per phase: summed; a current and a
    # voltage without a phase: a single-phase reading.
    s = meter.parse([{"sampled_value": [
        {"value": "2.5", "unit": "kWh"},
        {"value": "700", "measurand": "Power.Active.Import", "phase": "L1"},
        {"value": "690", "measurand": "Power.Active.Import", "phase": "L2"},
        {"value": "10.0", "measurand": "Current.Import"},
        {"value": "228", "measurand": "Voltage"},
    ]}])
    assert (s.energy_wh, s.power_w) == (2500.0, 1390.0)
    assert s.currents_a == (10.0, None, None)
    assert s.voltages_v == (228.0, None, None)


def test_unusable_values_are_skipped_and_named() -> None:
    s = meter.parse([{"sampled_value": [
        {"value": "abc", "measurand": "Power.Active.Import"},
        {"value": "nan", "measurand": "Current.Import", "phase": "L1"},
        {"value": "5", "measurand": "Current.Import", "phase": "N"},
        {"value": "5", "measurand": "Voltage", "unit": "kV"},
        {"value": "7", "measurand": "Current.Import", "phase": "L2"},
        {"value": "AAAA", "measurand": "Power.Active.Import", "format": "SignedData"},
    ]}])
    assert s.power_w is None
    assert s.currents_a == (None, 7.0, None)
    assert len(s.skipped) == 4
    assert "Power.Active.Import='abc' W" in s.skipped


def test_implausible_values_are_skipped_not_infinite() -> None:
    s = meter.parse([{"sampled_value": [
        {"value": "1e306", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "1e306", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "400", "measurand": "Current.Import", "phase": "L1"},
        {"value": "-3", "measurand": "Current.Offered"},
        {"value": "9000", "measurand": "Voltage", "phase": "L1-N"},
        {"value": "230", "measurand": "Voltage", "phase": "L2-N"},
    ]}])
    assert (s.power_w, s.energy_wh, s.currents_a, s.offered_a) == (
        None, None, (None, None, None), None)
    assert s.voltages_v == (None, 230.0, None)
    assert len(s.skipped) == 5 and "Power.Active.Import='1e306' kW" in s.skipped


_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_sampled = st.fixed_dictionaries({"value": _scalar | st.lists(_scalar, max_size=2)}, optional={
    "measurand": st.sampled_from(["Power.Active.Import", "Current.Import", "Voltage",
                                  "Current.Offered", "Energy.Active.Import.Register", "RPM"]),
    "phase": st.sampled_from(["L1", "L2", "L3", "N", "L1-N", "L1-L2", "X"]),
    "unit": st.sampled_from(["W", "kW", "Wh", "kWh", "A", "V", "K"]),
})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"sampled_value": st.lists(_sampled, max_size=6)}),
                max_size=3))
def test_parsing_never_raises(values: list[dict[str, Any]]) -> None:
    s = meter.parse(values)
    assert s.power_w is None or isinstance(s.power_w, float)


def _validated(payload: Any) -> dict[str, Any]:
    """The request as it goes on the wire, checked against the OCPP 1.6 schema."""
    body = json.loads(json.dumps(remove_nones(snake_to_camel_case(serialize_as_dict(payload)))))
    _validate_payload(Call("1", "SetChargingProfile", body), "1.6")
    return body


def test_default_profile_on_the_wire() -> None:
    now = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    body = _validated(set_profile(Setpoint(7.46, 1), now))
    assert body == {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "startSchedule": "2026-06-01T11:59:30Z",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7, "numberPhases": 1}]}}}


def test_transaction_profile_on_the_wire() -> None:
    body = _validated(set_profile(Setpoint(0.0, 3), datetime.now(UTC), transaction_id=42))
    profile = body["csChargingProfiles"]
    assert (profile["chargingProfileId"], profile["chargingProfilePurpose"],
            profile["transactionId"]) == (2, "TxProfile", 42)
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 0.0


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0, max_value=80, allow_nan=False))
def test_quantized_limits_are_valid_and_never_above(current_a: float) -> None:
    q = quantize_a(current_a)
    assert 0 <= q <= current_a + 1e-9
    assert current_a - q < 1 + 1e-9
    body = _validated(set_profile(Setpoint(current_a, 3), datetime.now(UTC)))
    limit = body["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    # On the wire a whole number of amperes, which even a validator that checks `multipleOf
    # 0.1` by float division accepts (6.1 / 0.1 is 60.99999999999999).
    assert json.dumps(limit) == str(q)
    assert limit / 0.1 == int(limit / 0.1)


def _sample(currents: tuple[float, float, float], offered: float | None = None
            ) -> meter.MeterSample:
    return meter.MeterSample(power_w=sum(currents) * 230, currents_a=currents,
                             offered_a=offered)


def test_follow_check_reports_a_charger_that_ignores_the_profile() -> None:
    check = FollowCheck(settle_s=20, tolerance_a=1.0, samples=2)
    check.expect(Setpoint(8.0, 3), now_s=100)
    assert check.observe(_sample((16, 16, 16)), 110) is None  # settling: not judged
    assert check.observe(_sample((16, 16, 16)), 121) is None  # one breaking sample
    problem = check.observe(_sample((16, 16, 16)), 126)
    assert problem == "ignores the profile (8 A on 3 phases): draws 16.0 A"
    assert check.observe(_sample((16, 16, 16)), 131) is None  # reported once
    assert check.problem == problem
    assert check.observe(_sample((8.4, 8.3, 8.5)), 136) is None  # within tolerance: cleared
    assert check.problem is None


def test_follow_check_judges_offered_current_and_phases() -> None:
    check = FollowCheck(settle_s=0, samples=1)
    check.expect(Setpoint(6.0, 1), now_s=0)
    assert check.observe(_sample((0, 0, 0), offered=16.0), 1) == (
        "ignores the profile (6 A on 1 phase): offers 16.0 A")
    check.expect(Setpoint(6.0, 1), now_s=2)  # the same profile again: the finding stands
    assert check.problem is not None
    check.expect(Setpoint(0.0, 1), now_s=3)  # a new profile: judged afresh
    assert check.problem is None
    check.expect(Setpoint(6.0, 1), now_s=4)
    assert check.observe(_sample((6, 6, 6), offered=6.0), 5) == (
        "ignores the profile (6 A on 1 phase): draws on 3 phases")
    # A car that draws less than allowed, or on fewer phases, follows the profile.
    check.expect(Setpoint(16.0, 3), now_s=6)
    assert check.observe(_sample((10, 0, 0), offered=16.0), 7) is None
    check.forget()
    assert check.observe(_sample((32, 32, 32)), 8) is None


def _settings(charger: dict[str, Any], **top: Any) -> None:
    validate({"chargers": [{"name": "goe", "type": "goe-ocpp", "charge_box_id": "goe-1",
                            **charger}], **top}, Path("test.toml"))


@pytest.mark.parametrize(("charger", "top", "message"), [
    ({}, {}, "chargers[0]: set password or password_file (exactly one)"),
    ({"password": "x" * 20, "password_file": "/p"}, {}, "set password or password_file"),
    ({"password": "short"}, {}, "chargers[0].password: the password must be 16 to 40"),
    ({"password": "x" * 20, "charge_box_id": "a/b"}, {}, "chargers[0].charge_box_id: "),
    ({"password": "x" * 20, "default_current_a": 3}, {}, "default_current_a (3.0) must be 0"),
    ({"password": "x" * 20, "min_current_a": 6.2, "max_current_a": 6.8}, {},
     "chargers[0]: the go-e takes whole amperes: min_current_a (6.2) to max_current_a (6.8)"),
    ({"password": "x" * 20}, {"ocpp": {"tls_cert": "/c.pem"}}, "ocpp: set tls_cert and "),
    ({"password": "x" * 20}, {"ocpp": {"listen": "8887"}}, "ocpp.listen: expected host:port"),
    ({"password": "x" * 20}, {"ocpp": {"heartbeat_s": 1}}, "ocpp.heartbeat_s: "),
])
def test_config_errors_name_the_key(charger: dict[str, Any], top: dict[str, Any],
                                    message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _settings(charger, **top)
    assert message in str(err.value), str(err.value)


def test_the_configured_range_is_rounded_inwards_to_whole_amperes() -> None:
    config = GoEOcppConfig(name="goe", charge_box_id="goe-1", password="x" * 20,
                           min_current_a=6.5, max_current_a=15.9)
    caps = config.capabilities()
    assert (caps.min_current_a, caps.max_current_a, caps.step_a) == (7, 15, 1.0)


def test_config_is_read_and_the_password_never_shown(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("a-password-from-a-file\n")
    s = validate({"ocpp": {"listen": "[::]:9000", "tls_cert": "/c", "tls_key": "/k"},
                  "chargers": [{"name": "goe", "type": "goe-ocpp", "charge_box_id": "goe-1",
                                "password_file": str(pw), "phases": 3},
                               {"name": "goe2", "type": "goe-ocpp", "charge_box_id": "goe-2",
                                "password": "the-secret-password"}]}, Path("t.toml"))
    first, second = s.chargers
    assert isinstance(first, GoEOcppConfig) and isinstance(second, GoEOcppConfig)
    assert first.read_password() == "a-password-from-a-file"
    assert "the-secret-password" not in repr(second)
    assert s.ocpp == OcppConfig(listen="[::]:9000", tls_cert=Path("/c"), tls_key=Path("/k"))
    pw.write_text("short")
    with pytest.raises(ValueError, match=r"password_file .*: the password must be"):
        first.read_password()
