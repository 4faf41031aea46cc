"""OCPP 1.6 MeterValues → one measurement of the EV's draw.

The go-e samples Current.Import, Current.Offered, Energy.Active.Import.Register,
Power.Active.Import and Voltage (plus values divert does not use), per phase where it applies.
Parsing is total: a value divert cannot read is skipped and named, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_SCALE = {  # measurand → {unit: factor to W, Wh, A or V}; the first unit is the default
    "Power.Active.Import": {"W": 1.0, "kW": 1000.0},
    "Energy.Active.Import.Register": {"Wh": 1.0, "kWh": 1000.0},
    "Current.Import": {"A": 1.0},
    "Current.Offered": {"A": 1.0},
    "Voltage": {"V": 1.0},
}
# What a wallbox (22 kW, 32 A per phase) can report at all, in W, Wh, A, V; a value outside
# (e.g. "1e306" kW) is skipped like a malformed one.
_PLAUSIBLE = {
    "Power.Active.Import": (-1_000.0, 100_000.0),
    "Energy.Active.Import.Register": (0.0, 1e10),
    "Current.Import": (-1.0, 100.0),
    "Current.Offered": (0.0, 100.0),
    "Voltage": (0.0, 500.0),
}
_PHASE = {"L1": 0, "L2": 1, "L3": 2, "L1-N": 0, "L2-N": 1, "L3-N": 2}


@dataclass(frozen=True)
class MeterSample:
    """One sample: power in W (total), currents in A and voltages in V per phase (L1..L3),
    the current offered to the EV in A, the energy register in Wh. None: not reported."""

    power_w: float | None = None
    currents_a: tuple[float | None, float | None, float | None] = (None, None, None)
    voltages_v: tuple[float | None, float | None, float | None] = (None, None, None)
    offered_a: float | None = None
    energy_wh: float | None = None
    skipped: tuple[str, ...] = field(default=(), compare=False)  # values that were not usable

    @property
    def max_current_a(self) -> float | None:
        known = [c for c in self.currents_a if c is not None]
        return max(known) if known else None

    def phases_drawing(self, threshold_a: float = 1.0) -> int | None:
        """Phases carrying more than `threshold_a`; None without per-phase currents."""
        known = [c for c in self.currents_a if c is not None]
        return sum(c > threshold_a for c in known) if known else None

    @property
    def mean_voltage_v(self) -> float | None:
        known = [v for v in self.voltages_v if v is not None]
        return sum(known) / len(known) if known else None


def _number(raw: object) -> float | None:
    if not isinstance(raw, str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse(meter_value: Iterable[Mapping[str, Any]]) -> MeterSample:
    """Merge the sampled values of a MeterValues request (snake_case keys, as the `ocpp`
    package passes them); later entries override earlier ones."""
    power: float | None = None
    phase_power: list[float | None] = [None, None, None]
    currents: list[float | None] = [None, None, None]
    voltages: list[float | None] = [None, None, None]
    plain_current: float | None = None
    plain_voltage: float | None = None
    offered: float | None = None
    energy: float | None = None
    skipped: list[str] = []
    for entry in meter_value:
        for sv in entry.get("sampled_value", ()):
            if sv.get("format") == "SignedData" or sv.get("location") == "Body":
                continue
            measurand = sv.get("measurand", "Energy.Active.Import.Register")
            units = _SCALE.get(measurand)
            if units is None:
                continue  # frequency, temperature, power factor, …: not used
            unit = sv.get("unit", next(iter(units)))
            value = _number(sv.get("value"))
            phase = sv.get("phase")
            if value is not None and unit in units:
                value *= units[unit]
                low, high = _PLAUSIBLE[measurand]
                value = value if low <= value <= high else None
            if value is None or unit not in units or (phase is not None
                                                     and phase not in _PHASE):
                skipped.append(f"{measurand}{f' {phase}' if phase else ''}="
                               f"{str(sv.get('value'))[:40]!r} {str(unit)[:20]}")
                continue
            i = _PHASE.get(phase) if phase is not None else None
            if measurand == "Power.Active.Import":
                if i is None:
                    power = value
                else:
                    phase_power[i] = value
            elif measurand == "Energy.Active.Import.Register":
                energy = value
            elif measurand == "Current.Offered":
                offered = value
            elif measurand == "Current.Import":
                if i is None:
                    plain_current = value
                else:
                    currents[i] = value
            elif i is None:
                plain_voltage = value
            else:
                voltages[i] = value
    if power is None and any(p is not None for p in phase_power):
        power = sum(p for p in phase_power if p is not None)
    if plain_current is not None and all(c is None for c in currents):
        currents[0] = plain_current  # one current without a phase: a single-phase reading
    if plain_voltage is not None and all(v is None for v in voltages):
        voltages[0] = plain_voltage
    return MeterSample(power, (currents[0], currents[1], currents[2]),
                       (voltages[0], voltages[1], voltages[2]), offered, energy, tuple(skipped))
