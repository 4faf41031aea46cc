"""What a charger can do, declared once by its driver; the controller adapts to it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class ControlKind(StrEnum):
    """How a charger is throttled."""

    CURRENT = "current"  # a current setpoint that can change while charging (OpenEVSE, OCPP)
    POWER = "power"  # a power setpoint in W (PSP EVSE)
    RESTART = "restart"  # current fixed per session: a change is a stop + start (EVSEMaster)


@dataclass(frozen=True)
class Capabilities:
    """A charger's control envelope.

    Currents in A per phase, voltage in V per phase (line to neutral), power in W.
    """

    control: ControlKind
    min_current_a: float = 6.0
    max_current_a: float = 16.0
    step_a: float = 1.0  # setpoint resolution: OpenEVSE and go-e 1 A, PSP EVSE 0.1 A
    phases: int = 1  # phases wired to the charger
    voltage_v: float = 230.0
    phase_switching: bool = False  # can drop to one phase (and back) under load control
    min_power_w: float | None = None  # power-setpoint chargers whose floor is not I_min·V·phases
    restart_gap_s: float = 0.0  # restart-only: pause between the stop and the new start

    def __post_init__(self) -> None:
        if not 0 < self.min_current_a <= self.max_current_a:
            raise ValueError(f"need 0 < min_current_a <= max_current_a, got "
                             f"{self.min_current_a} and {self.max_current_a}")
        if self.phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {self.phases}")
        if self.step_a <= 0:
            raise ValueError(f"step_a must be > 0, got {self.step_a}")

    def power_w(self, current_a: float, phases: int | None = None) -> float:
        """Power drawn at `current_a` per phase on `phases` phases (default: all wired)."""
        return current_a * self.voltage_v * (phases or self.phases)

    def min_power_at(self, phases: int | None = None) -> float:
        """The lowest power the charger can charge at on `phases` phases, in W."""
        n = phases or self.phases
        if self.min_power_w is not None and n == self.phases:
            return self.min_power_w
        return self.power_w(self.min_current_a, n)

    def clamp(self, current_a: float) -> float:
        return min(self.max_current_a, max(self.min_current_a, current_a))

    def limited(self, max_current_a: float | None = None, min_current_a: float | None = None,
                ) -> Capabilities:
        """These capabilities narrowed to a device range (never widened); used at connect."""
        lo = self.min_current_a if min_current_a is None else max(self.min_current_a,
                                                                  min_current_a)
        hi = self.max_current_a if max_current_a is None else min(self.max_current_a,
                                                                  max_current_a)
        return replace(self, min_current_a=lo, max_current_a=max(lo, hi))
