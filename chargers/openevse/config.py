"""`type = "openevse"`: an OpenEVSE controller over serial, HTTP (WiFi module) or MQTT."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from chargers.config import ChargerConfig

DEFAULT_BASE_TOPIC = "openevse"


class OpenEVSEConfig(ChargerConfig):
    """RAPI over one transport. Times in s."""

    type: Literal["openevse"] = "openevse"
    transport: Literal["serial", "http", "mqtt"]
    device: str | None = None  # serial: e.g. /dev/ttyUSB0 (115200 8N1)
    url: str | None = None  # http: the WiFi module, e.g. http://openevse.local
    username: str | None = None  # http: basic auth (the module's www_username)
    password: str | None = None  # http: basic auth (www_password)
    base_topic: str | None = None  # mqtt: the module's base topic (default "openevse")
    pause_with: Literal["sleep", "disable"] = "sleep"  # $FS (normal not-ready) or $FD
    timeout_s: float = Field(2.0, gt=0, le=30)  # wait for one reply
    retries: int = Field(2, ge=0, le=5)  # resend after a timeout or a garbled reply

    @model_validator(mode="after")
    def _transport_keys(self) -> Self:
        needs = {"serial": "device", "http": "url", "mqtt": None}[self.transport]
        if needs and not getattr(self, needs):
            raise ValueError(f'transport = "{self.transport}" needs {needs}')
        used = {"serial": {"device"}, "http": {"url", "username", "password"},
                "mqtt": {"base_topic"}}[self.transport]
        stray = [k for k in ("device", "url", "username", "password", "base_topic")
                 if getattr(self, k) is not None and k not in used]
        if stray:
            raise ValueError(f'{", ".join(stray)} not used with transport = "{self.transport}"')
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password, or neither")
        if self.base_topic is not None and (not self.base_topic.strip("/")
                                            or any(c in self.base_topic for c in "+#")):
            raise ValueError(f"base_topic must be a topic without wildcards, got "
                             f"{self.base_topic!r}")
        return self

    @property
    def topic(self) -> str:
        """The MQTT base topic without a trailing slash."""
        return (self.base_topic or DEFAULT_BASE_TOPIC).rstrip("/")
