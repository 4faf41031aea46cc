"""What a policy sees and what it says: the contract between the controller and a policy.

A policy decides only in `solar` and `min-solar` modes: whether it wants to charge and at
what current. The controller owns modes, capabilities and the relay guard around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from divert.core.capabilities import Capabilities
from divert.core.guard import RelayLimits
from divert.core.modes import Mode
from divert.core.reasons import Reason


@dataclass(frozen=True)
class Observation:
    """One control step as a policy sees it. Powers in W, currents in A, times in s."""

    time_s: float
    dt_s: float  # since the previous step; 0 at the first
    surplus_w: float  # power the EV could take without import (its own draw added back)
    from_grid_meter: bool  # surplus came from a grid meter (True) or solar − load (False)
    voltage_v: float  # per phase
    phases: int  # phases in use
    charging: bool  # relay closed by us
    setpoint_a: float  # the current in force while charging
    since_change_s: float | None  # time since the last start or stop
    sessions_24h: int  # charging sessions begun in the last 24 h (the relay guard's count)
    mode: Mode
    caps: Capabilities
    limits: RelayLimits | None = None  # the relay guard's, less the starts a plan keeps
    wall_s: float | None = None  # wall-clock unix time, for the time of day (None: time_s)
    plan_wh: float | None = None  # energy a departure plan still needs (None: no plan)
    plan_by_s: float | None = None  # … by this time (controller clock)


@dataclass(frozen=True)
class Desire:
    """A policy's wish; the controller may hold it back (guard) or adapt it (capabilities)."""

    charge: bool
    current_a: float  # per phase; meaningful also when charge is False (used while holding)
    reason: str  # one line for people
    code: Reason


class Policy(Protocol):
    def decide(self, obs: Observation) -> Desire: ...

    def to_state(self) -> dict[str, Any]:
        """The policy's memory (averages, timers), JSON-ready, for a warm restart."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Take back a `to_state()`; ValueError, TypeError or KeyError if it does not fit."""
        ...


def finite(value: Any) -> float:
    """A saved number back: finite, else ValueError (TypeError for a non-number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"expected a finite number, got {value!r}")
    return out
