"""Config models: the top-level `[ocpp]` table and a `type = "goe-ocpp"` charger.

Light on purpose (pydantic only): loaded with every config, before any driver is imported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from chargers.config import ChargerConfig
from divert.core.capabilities import Capabilities, ControlKind
from divert.netconf import listen_address, read_secret

STEP_A = 1.0  # whole amperes, as the go-e takes currents (profiles.py says why)

# OCPP 1.6 security whitepaper: the Basic-auth password (AuthorizationKey) is 16 to 40 chars.
PASSWORD_MIN, PASSWORD_MAX = 16, 40


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError(f"the password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters "
                         f"(OCPP security profile 1), got {len(password)}")
    return password


class OcppConfig(BaseModel):
    """`[ocpp]`: the central system that go-eChargers connect to. Times in s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "0.0.0.0:8887"  # host:port the websocket server binds to
    tls_cert: Path | None = None  # PEM certificate (chain): wss:// only (security profile 2)
    tls_key: Path | None = None  # its PEM private key
    heartbeat_s: int = Field(300, ge=10, le=86400)  # Heartbeat interval given at boot
    meter_sample_s: int | None = Field(None, ge=1, le=3600)  # None: the loop's interval_s

    @field_validator("listen")
    @classmethod
    def _listen(cls, listen: str) -> str:
        listen_address(listen)
        return listen

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set tls_cert and tls_key together (or neither)")
        return self


class GoEOcppConfig(ChargerConfig):
    """`type = "goe-ocpp"`: a go-eCharger whose `ocppu` points at divert's `[ocpp]` server.

    A password is required: it is the only thing that stops another device on the network
    from connecting under the charger's id, displacing its session and feeding the controller
    false meter values. The charger sends it with HTTP Basic auth (OCPP security profile 1).
    """

    type: Literal["goe-ocpp"] = "goe-ocpp"
    charge_box_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,48}$")  # last segment of the URL
    password: SecretStr | None = None
    password_file: Path | None = None  # read at start; for systemd credentials
    default_current_a: float = Field(0.0, ge=0, le=80)  # limit set at every boot; 0: paused

    def capabilities(self) -> Capabilities:
        """A current setpoint in whole amperes, the configured range rounded inwards; a
        three-phase go-e switches phases."""
        lo, hi = self._whole_range()
        return Capabilities(ControlKind.CURRENT, lo, hi, STEP_A, self.phases, self.voltage_v,
                            phase_switching=self.phases == 3)

    def _whole_range(self) -> tuple[int, int]:
        return math.ceil(self.min_current_a - 1e-9), math.floor(self.max_current_a + 1e-9)

    @field_validator("password")
    @classmethod
    def _password(cls, password: SecretStr | None) -> SecretStr | None:
        if password is not None:
            check_password(password.get_secret_value())
        return password

    @model_validator(mode="after")
    def _one_password(self) -> Self:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("set password or password_file (exactly one): the charger must "
                             "authenticate with HTTP Basic auth (OCPP security profile 1)")
        if self.default_current_a and not (self.min_current_a <= self.default_current_a
                                           <= self.max_current_a):
            raise ValueError(f"default_current_a ({self.default_current_a}) must be 0 or "
                             f"between min_current_a and max_current_a")
        lo, hi = self._whole_range()
        if lo > hi:
            raise ValueError(f"the go-e takes whole amperes: min_current_a "
                             f"({self.min_current_a}) to max_current_a ({self.max_current_a}) "
                             f"holds none")
        return self

    def read_password(self) -> str:
        """The configured password; ValueError naming the file if it cannot be used."""
        if self.password is not None:
            return self.password.get_secret_value()
        assert self.password_file is not None
        text = read_secret(self.password_file)
        try:
            return check_password(text)
        except ValueError as exc:
            raise ValueError(f"password_file {self.password_file}: {exc}") from None
