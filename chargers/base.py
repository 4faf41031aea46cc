"""The driver interface: small capability protocols, in the style of evcc's api package.

Every driver implements `Charger`. A driver then implements exactly one of the setpoint
protocols its hardware supports (`CurrentLimiter`, `PowerLimiter`) and optionally
`PhaseSwitcher`; `Capabilities.control` says which. The shell (`divert.daemon.actuator`) checks the
fit once at start-up and only ever calls what the driver declared.

Drivers are synchronous: the daemon calls each from a worker thread of its own, one call at a
time, and stops waiting after a few seconds. A driver that needs background work (an OCPP
server, a UDP session with keep-alives) runs its own thread. A driver may set a class
attribute `min_read_s`: the daemon reads it no more often (default 1 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from divert.core.capabilities import Capabilities


class ChargerError(Exception):
    """A charger did not answer, answered wrongly, or refused a command."""


@dataclass(frozen=True)
class ChargerReading:
    """What a charger reports about itself. None means the charger does not tell."""

    power_w: float | None = None  # measured power into the EV
    current_a: float | None = None  # measured current per phase
    voltage_v: float | None = None  # measured voltage per phase
    charging: bool | None = None  # contactor closed and the EV drawing
    vehicle_connected: bool | None = None
    phases: int | None = None  # phases in use
    energy_wh: float | None = None  # session or lifetime energy register
    state: str = ""  # the charger's own state in words, e.g. "charging", "sleeping", "fault: GFCI"


@runtime_checkable
class Charger(Protocol):
    """Every driver: connect, read, enable or pause, close."""

    name: str

    def connect(self) -> Capabilities:
        """Open the transport, read the device's limits and return the envelope.

        The configured limits are narrowed to what the device reports (never widened)."""
        ...

    def read(self) -> ChargerReading:
        """Read the charger's state and measurements; raises ChargerError when it is silent."""
        ...

    def enable(self, on: bool) -> None:
        """Start (True) or pause (False) charging. Each False→True is one relay cycle."""
        ...

    def close(self) -> None:
        """Release the transport. The charger is left in whatever state it was put in."""
        ...


@runtime_checkable
class CurrentLimiter(Protocol):
    """Current setpoint in A per phase. Restart-only chargers apply it at the next start."""

    def set_current(self, current_a: float) -> None: ...


@runtime_checkable
class PowerLimiter(Protocol):
    """Power setpoint in W (total over all phases)."""

    def set_power(self, power_w: float) -> None: ...


@runtime_checkable
class PhaseSwitcher(Protocol):
    """Switch between one and three phases. Each switch is a relay cycle."""

    def set_phases(self, phases: int) -> None: ...
