"""The TOML configuration, validated by pydantic-settings; `DIVERT_…` variables override it.

Environment overrides use `__` between levels: `DIVERT_MQTT__HOST=broker`,
`DIVERT_POLICY__MODE=fast`. Lists (`[[chargers]]`) are overridden whole, as JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from chargers.goe_ocpp.config import OcppConfig
from chargers.registry import AnyChargerConfig, DriverEnv
from divert.core.modes import Mode
from divert.netconf import MqttConfig, listen_address
from divert.textfile import UnreadableFile, read_text

MAX_CONFIG_BYTES = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FeedConfig(_Section):
    """One MQTT value. Powers in W after `scale` and `invert`."""

    topic: str = Field(min_length=1)
    json_path: str | None = None  # e.g. "ENERGY.Power", "value", "power.total", "phases.0"
    scale: float = Field(1.0, ge=-1e6, le=1e6)  # multiply the payload: 1000 for kW
    invert: bool = False  # flip the sign (e.g. a meter that reports export as positive)
    max_age_s: float = Field(60.0, gt=0, le=86400)

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, scale: float) -> float:
        if scale == 0:
            raise ValueError("must not be 0 (every value would read as 0)")
        return scale


class GridFeedConfig(FeedConfig):
    includes_ev: bool = True  # the meter sees the EV's draw; it is added back for surplus


class BatteryFeedConfig(FeedConfig):
    """Home battery power (+charging/−discharging, W) and optional state of charge (%)."""

    soc_topic: str | None = None
    soc_json_path: str | None = None
    first_below_soc_pct: float | None = Field(None, ge=0, le=100)  # battery charges first below


class FeedsConfig(_Section):
    grid: GridFeedConfig | None = None
    solar: FeedConfig | None = None
    load: FeedConfig | None = None  # house load without the EV, with `solar` instead of `grid`
    voltage: FeedConfig | None = None
    battery: BatteryFeedConfig | None = None
    ev_power: FeedConfig | None = None


class PolicyConfig(_Section):
    preset: str = "balanced"  # a name in policies/ or a path to a TOML file
    mode: Mode = Mode.SOLAR


class RelayConfig(_Section):
    """Relay-cycle guard; a key left out takes the preset's value."""

    min_on_s: float | None = Field(None, ge=0, le=86400)
    min_off_s: float | None = Field(None, ge=0, le=86400)
    max_starts_per_hour: int | None = Field(None, ge=1, le=60)
    max_starts_per_day: int | None = Field(None, ge=1, le=1000)
    min_phase_switch_s: float | None = Field(None, ge=0, le=86400)
    phase_tau_s: float | None = Field(None, ge=0, le=86400)


class MetricsConfig(_Section):
    listen: str = "127.0.0.1:9464"  # host:port; empty string turns the exporter off

    @field_validator("listen")
    @classmethod
    def _address(cls, listen: str) -> str:
        if listen:
            listen_address(listen)
        return listen


class StateConfig(_Section):
    path: Path = Path("/var/lib/divert/state.json")


class ScheduleEntry(_Section):
    cron: str = Field(min_length=1)  # five fields: minute hour day month day-of-week
    mode: Mode | None = None
    max_current_a: float | None = Field(None, ge=1, le=80)  # cap until the next entry; None: no cap

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str) -> str:
        fields = cron.split()
        if len(fields) != 5:
            raise ValueError(f"needs five fields (minute hour day month day-of-week), "
                             f"got {cron!r}")
        if any(c.isdigit() for c in fields[4]):
            # Cron dialects disagree on weekday numbers (apscheduler 3: 0 = Monday).
            raise ValueError(f"day-of-week must use names (mon-fri, sat,sun or *), "
                             f"got {fields[4]!r}")
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"invalid cron {cron!r}: {exc}") from None
        return cron


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIVERT_", env_nested_delimiter="__",
                                      extra="forbid", frozen=True, allow_inf_nan=False)

    mqtt: MqttConfig = MqttConfig()
    feeds: FeedsConfig = FeedsConfig()
    policy: PolicyConfig = PolicyConfig()
    relay: RelayConfig = RelayConfig()
    chargers: list[AnyChargerConfig] = Field(default_factory=list)
    ocpp: OcppConfig = OcppConfig()  # the central system go-e chargers connect to
    metrics: MetricsConfig = MetricsConfig()
    state: StateConfig = StateConfig()
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    timezone: str = "UTC"  # IANA name used by [[schedule]]
    interval_s: float = Field(5.0, ge=0.5, le=300)  # control loop period
    reassert_s: float = Field(60.0, ge=0.5, le=3600)  # resend unchanged commands this often
    stale_pause_s: float = Field(300.0, ge=0, le=86400)  # fail-safe: pause after this long stale
    shutdown: Literal["pause", "minimum", "leave"] = "pause"  # chargers' state when divert stops

    def driver_env(self) -> DriverEnv:
        return DriverEnv(self.mqtt, self.ocpp, self.interval_s)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
            raise ValueError(f"unknown time zone {_preview(name)}") from None
        return name

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [c.name for c in self.chargers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"charger names must be unique, repeated: {', '.join(dupes)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init values; the environment overrides them.
        return env_settings, init_settings


ENV_PREFIX = "DIVERT_"


@dataclass(frozen=True)
class ConfigError(Exception):
    """An invalid config: which file, which key, and why — ready to print. A problem with an
    environment override names the variable instead (`DIVERT_MQTT__PORT: …`)."""

    path: Path
    problems: tuple[str, ...]  # "key: reason", in the file
    env_problems: tuple[str, ...] = ()  # "DIVERT_…: reason"

    def __str__(self) -> str:
        return "\n".join([*(f"{self.path}: {p}" for p in self.problems), *self.env_problems])


def _key_path(loc: tuple[int | str, ...], tags: set[str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags:  # pydantic puts the union member's tag in the path; users never wrote it
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _env_var(loc: tuple[int | str, ...], env: dict[str, Any]) -> tuple[str, int] | None:
    """The `DIVERT_…` variable the value at `loc` came from, and how many parts of `loc` it
    names; None when the value came from the file.

    Environment values are keyed like the file (`DIVERT_MQTT__PORT` → mqtt.port); a list is
    one variable holding JSON (`DIVERT_CHARGERS`)."""
    node: Any = env
    for depth, part in enumerate(loc, 1):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
        if not isinstance(node, dict):
            return ENV_PREFIX + "__".join(str(p) for p in loc[:depth]).upper(), depth
    return None


def _preview(value: Any, limit: int = 40) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python will print
        return "a number too large to print"
    return text if len(text) <= limit else text[:limit] + "…"


def _reason(err: dict[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"unknown type {ctx.get('tag')!r}, expected {ctx.get('expected_tags')}"
    if err["type"] == "finite_number":
        return f"must be a finite number, got {_preview(err['input'])}"
    if err["type"] in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        value = err["input"]
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        return f"{msg.lower()}, got {_preview(value)}"
    return msg


def _charger_tags(chargers: Any) -> set[str]:
    if not isinstance(chargers, list):
        return set()
    return {str(c.get("type")) for c in chargers if isinstance(c, dict)}


def _deep_variable() -> str:
    """The `DIVERT_…` variable whose JSON is nested too deeply to parse."""
    for name, value in os.environ.items():
        if name.upper().startswith(ENV_PREFIX):
            try:
                json.loads(value)
            except RecursionError:
                return name
            except ValueError:
                pass
    return ENV_PREFIX + "…"


def validate(data: dict[str, Any], path: Path) -> Settings:
    """Settings from already parsed TOML (and the environment), or ConfigError naming every
    bad key or variable."""
    # pydantic-settings takes keyword arguments starting with "_" as its own options
    # (`_env_file`, `_secrets_dir`, …): in a config file they are just unknown keys.
    options = sorted(k for k in data if k.startswith("_"))
    if options:
        raise ConfigError(path, tuple(f"{k}: unknown key" for k in options))
    try:
        env: dict[str, Any] = EnvSettingsSource(Settings)()
    except SettingsError as exc:  # a variable holding a list or table that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = ENV_PREFIX + field.group(1).upper() if field else f"{ENV_PREFIX}…"
        raise ConfigError(path, (), (f"{name}: not valid JSON",)) from None
    except RecursionError:
        raise ConfigError(path, (), (f"{_deep_variable()}: JSON nested too deeply",)) from None
    try:
        return Settings(**data)
    except RecursionError:
        raise ConfigError(path, ("(top level): nested too deeply",)) from None
    except ValidationError as exc:
        tags = _charger_tags(data.get("chargers")) | _charger_tags(env.get("chargers"))
        in_file: list[str] = []
        in_env: list[str] = []
        for e in exc.errors():
            loc = tuple(e["loc"])
            if e["type"] == "union_tag_invalid":
                loc += ("type",)
            origin = _env_var(loc, env)
            if origin is None:
                in_file.append(f"{_key_path(loc, tags)}: {_reason(dict(e))}")
                continue
            var, depth = origin
            inside = f" {_key_path(loc[depth:], tags)}:" if loc[depth:] else ""
            in_env.append(f"{var}:{inside} {_reason(dict(e))}")
        raise ConfigError(path, tuple(in_file), tuple(in_env)) from None


def load(path: Path) -> Settings:
    """Read and validate a config file. Raises ConfigError, never anything else for bad input."""
    try:
        text = read_text(path, MAX_CONFIG_BYTES)
    except UnreadableFile as exc:
        raise ConfigError(path, (f"cannot read: {exc}",)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, (f"invalid TOML: {exc}",)) from None
    except ValueError:  # an integer of more digits than Python converts
        raise ConfigError(path, ("invalid TOML: a number with too many digits",)) from None
    except RecursionError:
        raise ConfigError(path, ("invalid TOML: nested too deeply",)) from None
    return validate(data, path)


def require_charger(settings: Settings, path: Path) -> None:
    """`divert run` controls chargers: ConfigError for a config that has none."""
    if not settings.chargers:
        raise ConfigError(path, ("chargers: none configured; `divert run` needs at least one "
                                 "[[chargers]] table",))
