"""Power available to the EV, from either kind of feed.

Sign convention: grid power is + import / − export; battery power is + charging / − discharging.
A feed with the opposite convention is flipped by its `invert` key before it gets here.
"""

from __future__ import annotations


def surplus_w(grid_w: float | None = None, solar_w: float | None = None,
              load_w: float | None = None, ev_w: float | None = None,
              grid_includes_ev: bool = True, battery_w: float | None = None,
              battery_first: bool = False) -> float | None:
    """Power the EV could draw without importing, in W; None when the feeds cannot tell.

    With a grid meter, surplus is the export plus the EV's own measured draw when the meter
    sees the EV. Without one, it is solar minus house load (load excludes the EV). A charging
    home battery is surplus the EV may take, unless `battery_first`; a discharging battery is
    never surplus (the EV must not drain it).
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
