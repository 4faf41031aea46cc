"""The `ocpp` package's v16 ChargePoint, a charge point the project did not write, as a strict
go-e against divert's central system over a real websocket.

The package validates every request it receives and every reply to its own requests against
the OCPP 1.6 JSON schemas, and answers a request that fails with a CALLERROR. On top of that
each request divert sent is checked again the naive way, as some charge points do: the raw
JSON with binary floats against the same schema (`multipleOf 0.1` by float division).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import jsonschema
import pytest
from daemon_support import wait_for

from chargers.base import ChargerError
from goe_ocpp.chargepoint import FakeGoE

from .conftest import Rig, booted, goe_config


def _schema(action: str) -> dict[str, Any]:
    text = files("ocpp.v16").joinpath("schemas", f"{action}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _naively_valid(frame: str) -> None:
    """A request frame as it arrived, against its schema with floats as floats."""
    _, _, action, payload = json.loads(frame)
    jsonschema.Draft4Validator(_schema(action)).validate(payload)


def _requests(fake: FakeGoE) -> list[str]:
    with fake.lock:
        return [f for f in fake.received.frames if f.startswith("[2,")]


def test_the_charge_point_refuses_what_the_schema_does_not_allow(rig: Rig) -> None:
    """The harness can fail: a request outside the schema gets a CALLERROR and is not
    applied, and the naive check refuses a tenth that the package's decimal check takes."""
    rig.driver(goe_config())
    fake = rig.goe()
    fake.connect()  # and silent: divert sends nothing before the charger speaks
    period = {"startPeriod": 0, "limit": 6.15}
    bad = [2, "t1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [period]}}}]
    fake.receive(json.dumps(bad))
    assert fake.received.profiles == []
    assert json.loads(fake.received.refused[-1])[:2] == [4, "t1"]
    period["limit"] = 6.1  # valid OCPP, yet 6.1 / 0.1 is 60.99999999999999
    with pytest.raises(jsonschema.ValidationError, match=r"multiple of 0\.1"):
        _naively_valid(json.dumps(bad))


def test_a_whole_session_passes_strict_validation(rig: Rig) -> None:
    driver, fake = booted(rig)
    fake.status("Preparing")
    driver.set_phases(3)
    driver.set_current(7.6)
    driver.enable(True)
    fake.start_transaction(meter_start_wh=100)
    fake.status("Charging")
    fake.draw(energy_wh=150)
    rig.clock.now_s += 10
    driver.set_current(10.9)
    driver.set_phases(1)
    driver.enable(False)
    fake.status("SuspendedEVSE")
    driver.enable(True)
    fake.stop_transaction(meter_stop_wh=900)
    fake.status("Finishing")
    assert driver.read().state == "finishing"
    # A reconnect without a reboot: status and meter values asked for, the profiles again.
    fake.disconnect()
    again = rig.goe()
    again.connect()
    again.heartbeat()
    wait_for(lambda: again.received.clears == 1 and again.limit() is not None,
             what="the profiles after the reconnect")
    wait_for(lambda: len(again.received.triggers) == 2, what="the status requests")
    requests = _requests(fake) + _requests(again)
    actions = {json.loads(f)[2] for f in requests}
    assert actions == {"ChangeConfiguration", "ClearChargingProfile", "SetChargingProfile",
                       "TriggerMessage"}
    for frame in requests:
        _naively_valid(frame)
    limits = [json.loads(f)[3]["csChargingProfiles"]["chargingSchedule"]
              ["chargingSchedulePeriod"][0]["limit"] for f in requests
              if json.loads(f)[2] == "SetChargingProfile"]
    assert limits and all(isinstance(a, int) for a in limits), limits
    assert {7, 10} <= set(limits)
    # Nothing refused by the package's validation, and every reply divert gave to the
    # charge point's own requests passed it (`call` raises otherwise).
    assert fake.received.refused == [] and again.received.refused == []


def test_a_refusal_from_the_strict_charge_point_is_a_charger_error(rig: Rig) -> None:
    driver, fake = booted(rig)
    fake.profile_answer = "NotSupported"
    with pytest.raises(ChargerError, match="answered NotSupported"):
        driver.set_current(9.0)
