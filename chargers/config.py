"""Keys every `[[chargers]]` entry has; each driver's model adds its own."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from divert.core.capabilities import Capabilities, ControlKind
from divert.netconf import FeedConfig


class ChargerConfig(BaseModel):
    """Common `[[chargers]]` keys. Currents in A per phase, voltage in V per phase.

    `priority`, `line` and `ev_power` place the charger in the site (divert.core.site)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    type: str
    min_current_a: float = Field(6.0, ge=1, le=80)
    max_current_a: float = Field(16.0, ge=1, le=80)
    phases: Literal[1, 3] = 1
    voltage_v: float = Field(230.0, ge=90, le=280)
    priority: int = 0  # sharing the surplus and the site limit: higher first
    line: Literal[1, 2, 3] = 1  # the line a single-phase charger is wired to (phase limit)
    ev_power: FeedConfig | None = None  # its own meter, W; else the charger's reading

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min_current_a > self.max_current_a:
            raise ValueError(f"min_current_a ({self.min_current_a}) must be <= max_current_a "
                             f"({self.max_current_a})")
        return self

    def capabilities(self) -> Capabilities:
        """The envelope this config promises, with the driver's real control kind.

        The one place capabilities are built from a config: the daemon uses it until the
        charger has connected (its driver narrows it to the device's range), the simulator
        uses it as it is. This default is a current setpoint in whole amperes."""
        return Capabilities(ControlKind.CURRENT, self.min_current_a, self.max_current_a, 1.0,
                            self.phases, self.voltage_v)
