"""`[[chargers]]` keys for a PSP EVSE controller (`type = "psp"`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from chargers.config import ChargerConfig
from divert.core.capabilities import Capabilities, ControlKind

STEP_A = 0.1  # the setpoint is in W; 0.1 A per phase is finer than any pilot current


class PSPConfig(ChargerConfig):
    """A PSP EVSE reached over its WebAPI. Power in W, times in s."""

    type: Literal["psp"] = "psp"
    url: str  # base URL of the controller, e.g. "http://192.168.0.17"
    # Lowest power the charger charges at, total over all phases; default
    # min_current_a × voltage_v × phases (phases as the charger is set).
    min_power_w: float | None = Field(None, gt=0, le=80 * 280 * 3)
    timeout_s: float = Field(3.0, gt=0, le=60)  # per HTTP request
    retries: int = Field(2, ge=0, le=10)  # extra attempts for reads and setpoint writes
    retry_backoff_s: float = Field(0.5, ge=0, le=30)  # first pause; doubles per attempt

    @field_validator("url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected the controller's address like 'http://192.168.0.17', "
                             f"got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"expected a base URL without ?query or #fragment, got {url!r}")
        path = parts.path.rstrip("/")
        if path.lower().endswith("/webapi/v1"):
            raise ValueError(f"give the controller's base URL without /webapi/v1, got {url!r}")
        return f"{parts.scheme}://{parts.netloc}{path}"

    def capabilities(self, phases: int | None = None,
                     max_current_a: float | None = None) -> Capabilities:
        """A power setpoint; `phases` and `max_current_a` as the charger is set, if known."""
        caps = Capabilities(ControlKind.POWER, self.min_current_a, self.max_current_a, STEP_A,
                            phases or self.phases, self.voltage_v).limited(max_current_a)
        return replace(caps, min_power_w=self.min_power_w or caps.power_w(caps.min_current_a))
