"""Power available to the EV, from either kind of feed, and what a home battery adds to it.

Sign convention: grid power is + import / − export; battery power is + charging / − discharging.
A feed with the opposite convention is flipped by its `invert` key before it gets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


def surplus_w(grid_w: float | None = None, solar_w: float | None = None,
              load_w: float | None = None, ev_w: float | None = None,
              grid_includes_ev: bool = True, battery_w: float | None = None,
              battery_first: bool = False) -> float | None:
    """Power the EV could draw without importing, in W; None when the feeds cannot tell.

    With a grid meter, surplus is the export plus the EV's own measured draw when the meter
    sees the EV. Without one, it is solar minus house load (load excludes the EV). A charging
    home battery is surplus the EV may take, unless `battery_first`; a discharging battery is
    never surplus (the EV must not drain it; `BatteryRule.carries` is the one exception).
    """
    if grid_w is not None:
        ev_seen_w = (ev_w or 0.0) if grid_includes_ev else 0.0
        available_w = ev_seen_w - grid_w
    elif solar_w is not None:
        available_w = solar_w - (load_w or 0.0)
    else:
        return None
    if battery_w is not None:
        available_w += min(battery_w, 0.0) if battery_first else battery_w
    return available_w


class BatteryMode(StrEnum):
    """Who comes first, the home battery or the cars."""

    BATTERY_FIRST = "battery-first"  # its charging is not surplus below a state of charge
    EV_FIRST = "ev-first"  # its charging is surplus
    BUFFER = "buffer"  # ev-first above a state of charge, where it carries a car through a dip


@dataclass(frozen=True)
class BatteryRule:
    """The home battery's place in the surplus. States of charge in %."""

    mode: BatteryMode = BatteryMode.EV_FIRST
    first_below_soc_pct: float = 100.0  # battery-first: its charging is not surplus below this
    buffer_soc_pct: float = 100.0  # buffer: above this it carries charging cars' minimum

    def charges_first(self, soc_pct: float | None) -> bool:
        """True when the battery's charging is not surplus now (unknown SoC: it is)."""
        if soc_pct is None or self.mode is BatteryMode.EV_FIRST:
            return False
        if self.mode is BatteryMode.BATTERY_FIRST:
            return soc_pct < self.first_below_soc_pct
        return soc_pct <= self.buffer_soc_pct

    def carries(self, soc_pct: float | None) -> bool:
        """True when a charging car may ride through a dip at its minimum power from the
        battery (buffer mode above `buffer_soc_pct`) instead of stopping: its surplus is
        raised to its minimum power, never more."""
        return self.mode is BatteryMode.BUFFER and soc_pct is not None \
            and soc_pct > self.buffer_soc_pct
