"""Charging modes: a small enum with no logic of its own."""

from enum import StrEnum


class Mode(StrEnum):
    OFF = "off"  # never charge
    FAST = "fast"  # maximum current, grid import allowed
    SOLAR = "solar"  # surplus only, as the policy preset decides
    MIN_SOLAR = "min-solar"  # minimum current always, surplus on top
