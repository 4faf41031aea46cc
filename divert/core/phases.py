"""1/3-phase switching: which phase count the surplus calls for.

The surplus averaged over `tau_s` decides, so that a passing cloud or spike does not cost a
relay cycle; the surplus now decides when the policy would otherwise stop on three phases and
one phase can carry it. The relay guard has the last word (`RelayGuard.why_no_switch`).
Powers in W, times in s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from divert.core.capabilities import Capabilities
from divert.core.modes import Mode


@dataclass(frozen=True)
class PhaseParams:
    tau_s: float = 600.0  # time constant of the surplus average that decides a switch


class PhaseChooser:
    """The averaged surplus of one charger, and the phase count it calls for."""

    def __init__(self, params: PhaseParams) -> None:
        self.params = params
        self.average_w: float | None = None

    def observe(self, available_w: float | None, dt_s: float) -> None:
        if available_w is None:
            return
        tau_s = self.params.tau_s
        k = 1.0 if self.average_w is None or tau_s <= 0 else 1.0 - math.exp(-dt_s / tau_s)
        self.average_w = (self.average_w or 0.0) + k * (available_w - (self.average_w or 0.0))

    def want(self, caps: Capabilities, mode: Mode, phases: int, available_w: float | None,
             charging: bool, policy_charges: bool) -> int | None:
        """The phase count to switch to; None to keep `phases` or when it cannot be told."""
        if not (caps.phase_switching and caps.phases == 3):
            return None
        want = _better(caps, mode, phases, self.average_w)
        if charging and not policy_charges:  # the policy would stop: one phase rather than stop
            one_carries = available_w is not None and available_w >= caps.min_power_at(1)
            want = 1 if phases == 3 and one_carries else None
        return None if want == phases else want


def _better(caps: Capabilities, mode: Mode, phases: int, surplus_w: float | None) -> int | None:
    """Down to one phase when the surplus cannot carry the three-phase minimum; up to three
    when it exceeds the one-phase maximum and carries the three-phase minimum. `fast` mode
    wants all three."""
    if mode is Mode.FAST:
        return 3
    if mode is Mode.OFF or surplus_w is None:
        return None
    three_min_w = caps.min_power_at(3)
    if phases == 3:
        return 1 if surplus_w < three_min_w else 3
    up_w = max(caps.power_w(caps.max_current_a, 1), three_min_w)
    return 3 if surplus_w >= up_w else 1
