"""`[[chargers]]` keys of an EVSEMaster charger (Besen, Telestar, Deltaco, …)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from chargers.config import ChargerConfig
from divert.core.capabilities import Capabilities, ControlKind

APP_PORT = 28376  # as protocol.APP_PORT; config models stay free of driver imports


def check_password(password: str) -> str:
    """The 6-character app PIN, as the charger expects it; ValueError without echoing it."""
    if len(password) != 6 or not password.isascii() or not password.isprintable():
        raise ValueError("the password is the 6-character PIN of the EVSEMaster app")
    return password


class EVSEMasterConfig(ChargerConfig):
    """`type = "evsemaster"`. Currents are whole amps from 6 to 32 (the protocol's range)."""

    type: Literal["evsemaster"] = "evsemaster"
    serial: str = Field(pattern=r"^[0-9a-fA-F]{16}$")  # "Device Number" in the app
    password: SecretStr | None = None
    password_file: Path | None = None  # read at connect, e.g. a systemd credential
    host: str | None = None  # "ip" or "ip:port": skip waiting for the broadcast
    restart_gap_s: float = Field(60.0, ge=0, le=3600)  # pause between stop and new start
    port: int = Field(APP_PORT, ge=1, le=65535)  # local UDP port the charger talks to

    def capabilities(self, phases: int | None = None) -> Capabilities:
        """Restart-only: the current is fixed for a session; `phases` as the unit has."""
        return Capabilities(ControlKind.RESTART, self.min_current_a, self.max_current_a, 1.0,
                            phases or self.phases, self.voltage_v,
                            restart_gap_s=self.restart_gap_s)

    @field_validator("serial")
    @classmethod
    def _lower(cls, serial: str) -> str:
        return serial.lower()

    @field_validator("password")
    @classmethod
    def _pin(cls, password: SecretStr | None) -> SecretStr | None:
        if password is not None:
            check_password(password.get_secret_value())
        return password

    @field_validator("host")
    @classmethod
    def _host(cls, host: str | None) -> str | None:
        if host is not None:
            parse_host(host)
        return host

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("set exactly one of password and password_file")
        for key in ("min_current_a", "max_current_a"):
            value = getattr(self, key)
            if value != int(value) or not 6 <= value <= 32:
                raise ValueError(f"{key} must be a whole number of amps from 6 to 32, "
                                 f"got {value:g}")
        return self


def parse_host(host: str) -> tuple[str, int | None]:
    """"ip" or "ip:port" → (ip, port or None); ValueError on anything else."""
    name, sep, port = host.rpartition(":")
    if not sep:
        name, port = host, ""
    if not name or (sep and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"host must be 'address' or 'address:port', got {host!r}")
    return name, int(port) if port else None
