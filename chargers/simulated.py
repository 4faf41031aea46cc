"""A charger without hardware: the EV draws what it is told, like the simulator's ideal plant.

It lets the daemon run, and be tested end to end, with no charger on the network. Every
command is kept in `commands` (oldest first) so a test can see what the daemon sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from chargers.base import ChargerReading
from chargers.config import ChargerConfig
from divert.core.capabilities import Capabilities, ControlKind


class SimulatedConfig(ChargerConfig):
    """`type = "simulated"`."""

    type: Literal["simulated"] = "simulated"
    control: ControlKind = ControlKind.CURRENT
    step_a: float = Field(1.0, gt=0, le=1)
    phase_switching: bool = False
    vehicle_connected: bool = True

    def capabilities(self) -> Capabilities:
        return Capabilities(control=self.control, min_current_a=self.min_current_a,
                            max_current_a=self.max_current_a, step_a=self.step_a,
                            phases=self.phases, voltage_v=self.voltage_v,
                            phase_switching=self.phase_switching)


@dataclass(frozen=True)
class Command:
    """One call the daemon made: `kind` is enable, current, power or phases."""

    kind: str
    value: float


class SimulatedCharger:
    """Implements Charger, CurrentLimiter, PowerLimiter and PhaseSwitcher in memory."""

    min_read_s = 0.0  # reads cost nothing: every cycle may read

    def __init__(self, config: SimulatedConfig) -> None:
        self.name = config.name
        self._config = config
        self._lock = threading.Lock()
        self.commands: list[Command] = []
        self.enabled = False
        self.current_a = config.min_current_a
        self.phases: int = config.phases
        self.vehicle_connected = config.vehicle_connected  # a test may plug it in or out
        self.fault: str | None = None  # a test may report a fault ("fault: …"): no draw

    def connect(self) -> Capabilities:
        c = self._config
        return c.capabilities()

    def read(self) -> ChargerReading:
        with self._lock:
            drawing = self.enabled and self.vehicle_connected and self.fault is None
            current_a = self.current_a if drawing else 0.0
            state = "charging" if drawing else (self.fault or ("sleeping" if not self.enabled
                                                               else "no vehicle"))
            return ChargerReading(
                power_w=current_a * self._config.voltage_v * self.phases,
                current_a=current_a, voltage_v=self._config.voltage_v, charging=drawing,
                vehicle_connected=self.vehicle_connected, phases=self.phases, state=state)

    def _record(self, kind: str, value: float) -> None:
        self.commands.append(Command(kind, value))

    def enable(self, on: bool) -> None:
        with self._lock:
            self.enabled = on
            self._record("enable", float(on))

    def set_current(self, current_a: float) -> None:
        with self._lock:
            self.current_a = current_a
            self._record("current", current_a)

    def set_power(self, power_w: float) -> None:
        with self._lock:
            self.current_a = power_w / (self._config.voltage_v * self.phases)
            self._record("power", power_w)

    def set_phases(self, phases: int) -> None:
        with self._lock:
            self.phases = phases
            self._record("phases", phases)

    def close(self) -> None:
        pass
