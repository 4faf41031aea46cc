"""Smart-charging profiles divert sends, and the check that the charger follows them.

One limit in whole A per phase (0 pauses) and a number of phases (1 or 3; the go-e switches to
one phase through `numberPhases`). OCPP allows tenths, but every current the go-e itself
takes is a whole ampere (`amp`, `ama`, `mca` and the OCPP fallback `ocppf` are uint8 in its
API v2 documentation) and nothing documents what it does with a fraction; rounded up, it would
exceed the decided current, so divert sends whole amperes, rounded down.

divert owns two profile ids on connector 1: the TxDefaultProfile (every transaction starts
under it) and, while a transaction runs, a TxProfile bound to it. Both are Absolute from a
minute ago, with no end: the go-e takes its clock from divert's BootNotification and Heartbeat
replies, so a minute absorbs any skew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ocpp.v16 import call
from ocpp.v16.datatypes import ChargingProfile, ChargingSchedule, ChargingSchedulePeriod
from ocpp.v16.enums import ChargingProfileKindType, ChargingProfilePurposeType, ChargingRateUnitType

from chargers.goe_ocpp.config import STEP_A
from chargers.goe_ocpp.meter import MeterSample

CONNECTOR_ID = 1  # the go-e has one outlet
DEFAULT_PROFILE_ID = 1
TX_PROFILE_ID = 2


@dataclass(frozen=True)
class Setpoint:
    """What the charger may deliver: `limit_a` per phase (0 pauses) on `phases` phases."""

    limit_a: float
    phases: int

    def __str__(self) -> str:
        return f"{self.limit_a:g} A on {self.phases} phase{'s' if self.phases > 1 else ''}"


def quantize_a(current_a: float) -> int:
    """The largest whole ampere not above `current_a` (never negative)."""
    return max(0, math.floor(current_a + 1e-9))


def set_profile(setpoint: Setpoint, now: datetime,
                transaction_id: int | None = None) -> call.SetChargingProfile:
    """SetChargingProfile for the default profile, or the TxProfile of `transaction_id`."""
    schedule = ChargingSchedule(
        charging_rate_unit=ChargingRateUnitType.amps,
        charging_schedule_period=[ChargingSchedulePeriod(
            start_period=0, limit=quantize_a(setpoint.limit_a),
            number_phases=setpoint.phases)],
        start_schedule=(now.astimezone(UTC) - timedelta(minutes=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"))
    tx = transaction_id is not None
    profile = ChargingProfile(
        charging_profile_id=TX_PROFILE_ID if tx else DEFAULT_PROFILE_ID, stack_level=0,
        charging_profile_purpose=(ChargingProfilePurposeType.tx_profile if tx else
                                  ChargingProfilePurposeType.tx_default_profile),
        charging_profile_kind=ChargingProfileKindType.absolute, charging_schedule=schedule,
        transaction_id=transaction_id)
    return call.SetChargingProfile(connector_id=CONNECTOR_ID, cs_charging_profiles=profile)


class FollowCheck:
    """Does the charger do what the last accepted profile says? Judged from MeterValues.

    A sample breaks the profile when the charger offers more than the limit, a phase draws
    more than the limit plus `tolerance_a`, or more phases draw than allowed. Samples in the
    first `settle_s` after a profile are not judged (the car takes seconds to follow); after
    `samples` breaking samples in a row the charger is taken to ignore the profile.
    Times in s on one monotonic clock.
    """

    def __init__(self, settle_s: float = 20.0, tolerance_a: float = 1.0,
                 samples: int = 2) -> None:
        self.settle_s = settle_s
        self.tolerance_a = tolerance_a
        self.samples = samples
        self._expected: Setpoint | None = None
        self._since_s = 0.0
        self._breaking = 0
        self.problem: str | None = None  # why the charger is taken to ignore the profile

    def expect(self, setpoint: Setpoint, now_s: float) -> None:
        """A profile was accepted at `now_s`."""
        if setpoint != self._expected:
            self._expected, self._since_s, self._breaking = setpoint, now_s, 0
            self.problem = None

    def forget(self) -> None:
        """The charger disconnected or rebooted: nothing is expected until the next profile."""
        self._expected, self._breaking, self.problem = None, 0, None

    def _breach(self, sample: MeterSample, want: Setpoint) -> str | None:
        if sample.offered_a is not None and sample.offered_a > want.limit_a + STEP_A / 2:
            return f"offers {sample.offered_a:.1f} A"
        top = sample.max_current_a
        if top is not None and top > want.limit_a + self.tolerance_a:
            return f"draws {top:.1f} A"
        drawing = sample.phases_drawing()
        if drawing is not None and drawing > want.phases:
            return f"draws on {drawing} phases"
        return None

    def observe(self, sample: MeterSample, now_s: float) -> str | None:
        """Judge one sample; returns the problem when it first appears, else None."""
        want = self._expected
        if want is None or now_s - self._since_s < self.settle_s:
            return None
        breach = self._breach(sample, want)
        if breach is None:
            self._breaking, self.problem = 0, None
            return None
        self._breaking += 1
        if self._breaking < self.samples or self.problem is not None:
            return None
        self.problem = f"ignores the profile ({want}): {breach}"
        return self.problem
