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
              battery_first: bool = False, buffer_w: float = 0.0) -> float | None:
    """Power the EV could draw without importing, in W; None when the feeds cannot tell.

    With a grid meter, surplus is the export plus the EV's own measured draw when the meter
    sees the EV. Without one, it is solar minus house load (load excludes the EV). A charging
    home battery is surplus the EV may take, unless `battery_first`; a discharging battery is
    not surplus (the EV must not drain it), except for the first `buffer_w` of its discharge.
    """
    if grid_w is not None:
        ev_seen_w = (ev_w or 0.0) if grid_includes_ev else 0.0
        available_w = ev_seen_w - grid_w
    elif solar_w is not None:
        available_w = solar_w - (load_w or 0.0)
    else:
        return None
    if battery_w is not None:
        if battery_w >= 0:
            available_w += 0.0 if battery_first else battery_w
        else:
            available_w += min(0.0, battery_w + buffer_w)
    return available_w


class BatteryMode(StrEnum):
    """Who comes first, the home battery or the cars."""

    BATTERY_FIRST = "battery-first"  # its charging is not surplus below a state of charge
    EV_FIRST = "ev-first"  # its charging is surplus
    BUFFER = "buffer"  # ev-first above a state of charge, and it may carry a car through a dip


@dataclass(frozen=True)
class BatteryRule:
    """The home battery's place in the surplus. States of charge in %."""

    mode: BatteryMode = BatteryMode.EV_FIRST
    first_below_soc_pct: float = 100.0  # battery-first: its charging is not surplus below this
    buffer_soc_pct: float = 100.0  # buffer: above this it may carry the cars' minimum

    def charges_first(self, soc_pct: float | None) -> bool:
        """True when the battery's charging is not surplus now (unknown SoC: it is)."""
        if soc_pct is None or self.mode is BatteryMode.EV_FIRST:
            return False
        if self.mode is BatteryMode.BATTERY_FIRST:
            return soc_pct < self.first_below_soc_pct
        return soc_pct <= self.buffer_soc_pct

    def buffer_w(self, soc_pct: float | None, charging_min_w: float) -> float:
        """Discharge that counts as surplus: in buffer mode above `buffer_soc_pct`, up to the
        minimum power of the cars that are charging (W), so that they ride through a dip
        instead of stopping; else 0."""
        if self.mode is not BatteryMode.BUFFER or soc_pct is None \
                or soc_pct <= self.buffer_soc_pct:
            return 0.0
        return charging_min_w
