"""The daemon's two clocks: a monotonic control clock and the wall clock.

The core, the relay guard, feed ages and the actuator run on `control_s()`: monotonic, so an
NTP step, a manual `date -s` or a Pi's first sync after a boot without a real-time clock moves
nothing the relay promise depends on. `wall_s()` is for schedules, display and the state file.
`boot_id()` names what the control clock counts from: two readings under the same id are
comparable even across processes (Linux's CLOCK_MONOTONIC runs from boot).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class Clock(Protocol):
    def control_s(self) -> float: ...

    def wall_s(self) -> float: ...

    def boot_id(self) -> str:
        """An id of the control clock's origin; "" when unknown (never matches)."""
        ...


class SystemClock:
    """time.monotonic and time.time, with the kernel's boot id."""

    def __init__(self) -> None:
        try:
            self._boot_id = BOOT_ID.read_text(encoding="ascii").strip()
        except OSError:
            self._boot_id = ""

    def control_s(self) -> float:
        return time.monotonic()

    def wall_s(self) -> float:
        return time.time()

    def boot_id(self) -> str:
        return self._boot_id


class ManualClock:
    """A clock moved by hand, for tests: `advance` moves both clocks, `step_wall` only the
    wall clock (an NTP step), `reboot` starts the control clock afresh under a new id."""

    def __init__(self, control_s: float = 1000.0, wall_s: float = 1.78e9) -> None:
        self._control_s = control_s
        self._wall_s = wall_s
        self._boots = 1

    def control_s(self) -> float:
        return self._control_s

    def wall_s(self) -> float:
        return self._wall_s

    def boot_id(self) -> str:
        return f"manual-{self._boots}"

    def advance(self, seconds: float) -> None:
        self._control_s += seconds
        self._wall_s += seconds

    def step_wall(self, seconds: float) -> None:
        self._wall_s += seconds

    def reboot(self, wall_s: float | None = None) -> None:
        """A new boot: the control clock starts again (at 10 s), the wall clock at `wall_s`
        (a Pi without a real-time clock: 1970) or where it was."""
        self._boots += 1
        self._control_s = 10.0
        if wall_s is not None:
            self._wall_s = wall_s
