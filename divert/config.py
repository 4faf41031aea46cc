"""The TOML configuration, validated by pydantic-settings; `DIVERT_…` variables override it.

Environment overrides use `__` between levels: `DIVERT_MQTT__HOST=broker`,
`DIVERT_POLICY__MODE=fast`. Lists (`[[chargers]]`) are overridden whole, as JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
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
from divert.core.controller import SiteParams
from divert.core.modes import Mode
from divert.core.plan import PlanSpec, parse_days, parse_time_of_day
from divert.core.site import Member, Sharing, SiteRules
from divert.core.surplus import BatteryMode, BatteryRule
from divert.netconf import FeedConfig, MqttConfig, listen_address
from divert.textfile import UnreadableFile, read_text

MAX_CONFIG_BYTES = 1024 * 1024
TOPIC_LEVEL = re.compile(r"[A-Za-z0-9_-]+")
RESERVED_NAMES = frozenset({"site", "status"})  # topics of their own under base_topic


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GridFeedConfig(FeedConfig):
    includes_ev: bool = True  # the meter sees the EV's draw; it is added back for surplus


class BatteryFeedConfig(FeedConfig):
    """Home battery power (+charging/−discharging, W; `invert` for the other sign) and
    optional state of charge (%)."""

    soc_topic: str | None = None
    soc_json_path: str | None = None
    # The key before [site] battery: battery-first below this SoC.
    first_below_soc_pct: float | None = Field(None, ge=0, le=100)


class ForecastFeedConfig(_Section):
    """A solar forecast: W at future times (JSON; divert.policies.forecast.feed_points).
    The predictive policy uses it while it covers now and is at most 6 h old."""

    topic: str = Field(min_length=1)
    json_path: str | None = None  # where the points are in the payload; omit: the top level
    scale: float = 1.0  # multiply the values: 1000 for kW


class FeedsConfig(_Section):
    grid: GridFeedConfig | None = None
    solar: FeedConfig | None = None
    load: FeedConfig | None = None  # house load without the EV, with `solar` instead of `grid`
    voltage: FeedConfig | None = None
    battery: BatteryFeedConfig | None = None
    ev_power: FeedConfig | None = None  # deprecated: [chargers.ev_power]
    grid_l1: FeedConfig | None = None  # import current per line, A (+ import)
    grid_l2: FeedConfig | None = None
    grid_l3: FeedConfig | None = None
    forecast: ForecastFeedConfig | None = None
    ev_soc: FeedConfig | None = None  # the car's state of charge, % (plans with soc_pct)


class SiteConfig(_Section):
    """`[site]`: how the chargers share the surplus, the site limit, the home battery."""

    sharing: Sharing = Sharing.PRIORITY
    max_import_w: float | None = Field(None, gt=0)  # house plus chargers, W
    max_phase_current_a: float | None = Field(None, gt=0, le=1000)  # per line, A
    battery: BatteryMode | None = None  # default: ev-first (battery-first with the old key)
    battery_first_below_soc_pct: float | None = Field(None, ge=0, le=100)
    buffer_soc_pct: float | None = Field(None, ge=0, le=100)


class PolicyConfig(_Section):
    preset: str = "balanced"  # a name in policies/ or a path to a TOML file
    mode: Mode = Mode.SOLAR
    latitude: float | None = Field(None, ge=-90, le=90)  # the site: the predictive policy's
    longitude: float | None = Field(None, ge=-180, le=180)  # sun from the first day on

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together")
        return self

    def location(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return self.latitude, self.longitude


class PlanConfig(_Section):
    """A departure plan: energy to add (or a state of charge to reach) by a local time."""

    by: str  # local time of day in the configured time zone, "07:00"
    days: str = "*"  # weekday names: "mon-fri", "sat,sun", "*"
    energy_kwh: float | None = Field(None, gt=0, le=200)
    soc_pct: float | None = Field(None, gt=0, le=100)  # needs battery_kwh and [feeds.ev_soc]
    battery_kwh: float | None = Field(None, gt=0, le=300)
    charger: str | None = None  # a [[chargers]] name; omit: every charger

    @field_validator("by")
    @classmethod
    def _by(cls, by: str) -> str:
        parse_time_of_day(by)
        return by

    @field_validator("days")
    @classmethod
    def _days(cls, days: str) -> str:
        parse_days(days)
        return days

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        self.spec()
        return self

    def spec(self) -> PlanSpec:
        return PlanSpec(parse_time_of_day(self.by), parse_days(self.days),
                        None if self.energy_kwh is None else self.energy_kwh * 1000,
                        self.soc_pct,
                        None if self.battery_kwh is None else self.battery_kwh * 1000)


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
    site: SiteConfig = SiteConfig()
    policy: PolicyConfig = PolicyConfig()
    relay: RelayConfig = RelayConfig()
    chargers: list[AnyChargerConfig] = Field(default_factory=list)
    ocpp: OcppConfig = OcppConfig()  # the central system go-e chargers connect to
    metrics: MetricsConfig = MetricsConfig()
    state: StateConfig = StateConfig()
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    plan: list[PlanConfig] = Field(default_factory=list)  # departure plans
    timezone: str = "UTC"  # IANA name used by [[schedule]] and [[plan]]
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
        # Names are MQTT topic levels (<base_topic>/<name>/…) beside the site's.
        for name in names:
            if not TOPIC_LEVEL.fullmatch(name) or name in RESERVED_NAMES:
                raise ValueError(f"charger name {name!r}: use letters, digits, _ and - "
                                 f"(not {', '.join(sorted(RESERVED_NAMES))})")
        return self

    @model_validator(mode="after")
    def _site_feeds(self) -> Self:
        """The readings each [site] rule needs, and one meter per charger."""
        site, feeds = self.site, self.feeds
        battery = feeds.battery
        if site.max_import_w is not None and feeds.grid is None \
                and (feeds.solar is None or feeds.load is None):
            raise ValueError("site.max_import_w needs [feeds.grid] (or [feeds.solar] and "
                             "[feeds.load]) to know the house's import")
        if site.max_phase_current_a is not None and None in (feeds.grid_l1, feeds.grid_l2,
                                                             feeds.grid_l3):
            raise ValueError("site.max_phase_current_a needs [feeds.grid_l1], [feeds.grid_l2] "
                             "and [feeds.grid_l3]")
        if site.battery is not None and battery is None:
            raise ValueError(f"site.battery = {str(site.battery)!r} needs [feeds.battery]")
        if site.battery is BatteryMode.BUFFER and (site.buffer_soc_pct is None or battery is None
                                                   or battery.soc_topic is None):
            raise ValueError("site.battery = 'buffer' needs site.buffer_soc_pct and "
                             "feeds.battery.soc_topic")
        if battery is not None and battery.first_below_soc_pct is not None \
                and site.battery_first_below_soc_pct is not None:
            raise ValueError("set site.battery_first_below_soc_pct or "
                             "feeds.battery.first_below_soc_pct (the old key), not both")
        if feeds.ev_power is not None and self.chargers and self.chargers[0].ev_power:
            raise ValueError(f"charger {self.chargers[0].name} has two meters: "
                             "[feeds.ev_power] and its own ev_power")
        return self

    def warnings(self) -> list[str]:
        """What is valid but deserves a word: deprecated keys."""
        if self.feeds.ev_power is not None and len(self.chargers) > 1:
            return [f"feeds.ev_power is deprecated with several chargers: it measures the "
                    f"first one ({self.chargers[0].name}) only; give each charger its own "
                    "[chargers.ev_power]"]
        return []

    def ev_meters(self) -> dict[str, FeedConfig]:
        """Each charger's own meter, by charger name ([feeds.ev_power]: the first's)."""
        meters = {c.name: c.ev_power for c in self.chargers if c.ev_power is not None}
        if self.feeds.ev_power is not None and self.chargers:
            meters[self.chargers[0].name] = self.feeds.ev_power
        return meters

    def members(self) -> list[Member]:
        """The chargers' places in the site, in config order."""
        return [Member(c.name, c.priority, c.line) for c in self.chargers]

    def site_params(self) -> SiteParams:
        """How the feeds relate to the chargers, the battery rule and the fail-safe."""
        grid = self.feeds.grid
        return SiteParams(True if grid is None else grid.includes_ev, self.battery_rule(),
                          self.stale_pause_s)

    def site_rules(self) -> SiteRules:
        site = self.site
        return SiteRules(site.sharing, site.max_import_w, site.max_phase_current_a)

    def battery_rule(self) -> BatteryRule:
        """`[site] battery`; without it, battery-first when the old
        `[feeds.battery] first_below_soc_pct` is set, else ev-first."""
        site, battery = self.site, self.feeds.battery
        old_pct = None if battery is None else battery.first_below_soc_pct
        mode = site.battery or (BatteryMode.EV_FIRST if old_pct is None
                                else BatteryMode.BATTERY_FIRST)
        first_pct = (old_pct if site.battery_first_below_soc_pct is None
                     else site.battery_first_below_soc_pct)
        return BatteryRule(mode, 100.0 if first_pct is None else first_pct,
                           100.0 if site.buffer_soc_pct is None else site.buffer_soc_pct)

    @model_validator(mode="after")
    def _plan_chargers(self) -> Self:
        names = {c.name for c in self.chargers}
        for i, plan in enumerate(self.plan):
            if plan.charger is not None and plan.charger not in names:
                raise ValueError(f"plan[{i}].charger: no charger named {plan.charger!r}")
        return self

    def plans_for(self, charger: str) -> list[PlanSpec]:
        """The departure plans of one charger."""
        return [p.spec() for p in self.plan if p.charger in (None, charger)]

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init values; the environment overrides them.
        return env_settings, init_settings


ENV_PREFIX = "DIVERT_"


@dataclass(eq=False)  # not frozen: `contextlib` sets __traceback__ on what passes through
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


def load_or_exit(path: Path) -> Settings:
    """`load` for a command: an invalid config is printed (file, key, reason) and exits 1."""
    try:
        return load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


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
