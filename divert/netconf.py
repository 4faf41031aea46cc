"""Network settings shared by the daemon and the drivers: listen addresses, password files,
the MQTT client set-up (credentials, TLS) that the daemon and OpenEVSE's MQTT transport
both use, and an MQTT value (a feed: the site's meters, or a charger's own meter).

A leaf: it imports no other layer of divert, so drivers may use it.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Literal, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

log = logging.getLogger(__name__)

def listen_address(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6-address]:port` → (host, port); ValueError if malformed.

    An empty host means all IPv4 addresses."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"expected host:port, got {listen!r}")
    return host.removeprefix("[").removesuffix("]") or "0.0.0.0", int(port)


class MqttConfig(BaseModel):
    """`[mqtt]`: the broker, credentials and TLS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None  # read at start; for systemd credentials
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str = "divert"
    keepalive_s: int = Field(30, ge=5, le=3600)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate (optional)
    key_file: Path | None = None
    tls_insecure: bool = False  # skip certificate checks (logs a warning)
    base_topic: str = "divert"
    allow_commands: bool = True  # accept <base_topic>/<charger>/…/set commands
    discovery_prefix: str = "homeassistant"  # Home Assistant discovery; "" turns it off

    @model_validator(mode="after")
    def _one_password(self) -> Self:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        return self

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic_prefix(cls, topic: str, info: ValidationInfo) -> str:
        if any(c in topic for c in "+#\0") or topic.startswith("/") or topic.endswith("/"):
            raise ValueError(f"a topic prefix without wildcards (+ #) or outer slashes, "
                             f"got {topic!r}")
        if info.field_name == "base_topic" and not topic:
            raise ValueError("must not be empty")
        return topic


class FeedConfig(BaseModel):
    """One MQTT value. Powers in W (currents in A) after `scale` and `invert`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(min_length=1)
    json_path: str | None = None  # e.g. "ENERGY.Power", "value", "power.total", "phases.0"
    scale: float = 1.0  # multiply the payload: 1000 for kW
    invert: bool = False  # flip the sign (e.g. a meter that reports export as positive)
    max_age_s: float = Field(60.0, gt=0)


class MqttError(Exception):
    """A setting that cannot be used (unreadable password file, bad TLS files)."""


def new_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client speaking `[mqtt] protocol`; `configure` adds credentials and TLS."""
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311)


def configure(client: mqtt.Client, cfg: MqttConfig) -> ssl.SSLContext | None:
    """Apply `[mqtt]`'s credentials and TLS to `client`; returns the TLS context, if any.

    Reads the password file and TLS files, so it raises MqttError for unusable ones."""
    if cfg.username is not None:
        password = cfg.password
        if cfg.password_file is not None:
            try:
                password = read_secret(cfg.password_file)
            except ValueError as exc:
                raise MqttError(f"mqtt.password_file: {exc}") from None
        client.username_pw_set(cfg.username, password)
    if not cfg.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=None if cfg.ca_file is None else str(cfg.ca_file))
        if cfg.cert_file is not None:
            ctx.load_cert_chain(str(cfg.cert_file),
                                None if cfg.key_file is None else str(cfg.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise MqttError(f"mqtt: cannot load TLS files: {exc}") from None
    if cfg.tls_insecure:
        log.warning("mqtt.tls_insecure: the broker's certificate is NOT checked; "
                    "anyone on the path can read and forge MQTT values")
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    client.tls_set_context(ctx)
    return ctx


def read_secret(path: Path) -> str:
    """A password kept in a file (e.g. a systemd credential), without its final newline.

    ValueError naming the file if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read password_file {path}: {exc}") from None
