"""Commands over MQTT: `<base>/<charger>/mode/set`, `min_current/set`, `max_current/set`,
`boost/set` and `plan/set`, collected in a thread-safe inbox and applied by the control loop.

The MQTT thread only queues (and kicks the loop); the loop drains the inbox at the start of a
cycle, under its lock, validates each command against the charger and either applies it or
publishes why not on `<base>/<charger>/error` and changes nothing. A command changes the
controller's settings only (mode, current range): the relay guard still decides every start
and stop, and a site limit still applies.

Precedence, the last to speak wins: the config's `[policy] mode` and `[[chargers]]` range,
then a `[[schedule]]` entry when it fires, then a command. A command's change is kept in the
state file until a schedule entry sets the same thing (an entry with a `mode` ends a mode
command and a boost; every entry sets the cap, so it ends a `max_current` command) or the
config changes it (a different `[policy] mode` ends mode commands and boosts, a different
charger range ends its current commands). A boost runs fast mode for its minutes, then the
mode in force before it comes back; a mode command ends a boost. A plan (a JSON object with
the keys of a `[[plan]]` entry, e.g. `{"energy_kwh": 20, "by": "07:00"}`) stands for its
next deadline instead of the charger's `[[plan]]` entries, then ends; `off` ends it sooner.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from divert.config import PlanConfig, ScheduleEntry, Settings
from divert.core.capabilities import Capabilities
from divert.core.controller import Controller
from divert.core.modes import Mode
from divert.core.plan import PlanSpec
from divert.daemon.feeds import PayloadError, parse_number
from divert.daemon.metrics import Metrics

log = logging.getLogger(__name__)

COMMANDS = ("mode", "min_current", "max_current", "boost", "plan")
PLAN_OFF = ("off", "none", "cancel")
MAX_BOOST_MIN = 1440.0


class CommandError(ValueError):
    """A command refused: the text goes to `<base>/<charger>/error`."""


@dataclass
class Overrides:
    """What commands changed on one charger; None: not changed by a command."""

    mode: Mode | None = None
    min_current_a: float | None = None
    max_current_a: float | None = None
    boost_until_s: float | None = None  # wall clock
    plan: dict[str, Any] | None = None  # a [[plan]] entry's keys, for one deadline …
    plan_by_s: float | None = None  # … this one (wall clock)


@dataclass(frozen=True)
class Effective:
    """One charger's settings in force after precedence."""

    mode: Mode
    min_current_a: float | None  # None: the charger's own minimum
    limit_a: float | None  # the current cap; None: none
    boost_until_s: float | None


@dataclass(frozen=True)
class _Queued:
    charger: str
    command: str
    payload: bytes
    retained: bool


class Commands:
    """The command inbox and each charger's overrides. `offer` is for the MQTT thread,
    everything else for the control loop (under its lock)."""

    def __init__(self, settings: Settings, publish: Callable[[str, str], None],
                 metrics: Metrics, on_command: Callable[[], None]) -> None:
        self.base = settings.mqtt.base_topic
        self._tz = ZoneInfo(settings.timezone)
        self._config_mode = settings.policy.mode
        self._ranges = {c.name: (c.min_current_a, c.max_current_a) for c in settings.chargers}
        self._publish = publish
        self._metrics = metrics
        self._on_command = on_command
        self.overrides = {name: Overrides() for name in self._ranges}
        self._inbox: list[_Queued] = []
        self._inbox_lock = threading.Lock()
        self._base_caps: dict[str, tuple[Controller, Capabilities]] = {}

    @property
    def topic_filter(self) -> str:
        return f"{self.base}/+/+/set"

    # --- MQTT thread -------------------------------------------------------------------

    def offer(self, topic: str, payload: bytes, retained: bool) -> None:
        """Queue a message from `<base>/<charger>/<command>/set` and kick the loop."""
        charger, _, command = topic.removeprefix(f"{self.base}/").removesuffix("/set") \
            .partition("/")
        with self._inbox_lock:
            self._inbox.append(_Queued(charger, command, payload, retained))
        self._on_command()

    # --- control loop ------------------------------------------------------------------

    def drain(self, now_s: float, controllers: Mapping[str, Controller], mode: Mode,
              limit_a: float | None) -> bool:
        """Apply the queued commands, then settle every controller; True if a command
        changed something (the caller saves the state)."""
        with self._inbox_lock:
            queued, self._inbox = self._inbox, []
        changed = False
        for q in queued:
            try:
                if q.charger not in self.overrides:
                    raise CommandError(f"no charger {q.charger!r} (chargers: "
                                       f"{', '.join(self.overrides) or 'none'})")
                if q.command not in COMMANDS:
                    raise CommandError(f"unknown command {q.command!r} (commands: "
                                       f"{', '.join(COMMANDS)})")
                if q.retained:
                    raise CommandError("retained command ignored (its age is unknown); "
                                       "publish commands without the retain flag")
                self._apply(q, now_s, controllers[q.charger], mode, limit_a)
            except CommandError as exc:
                self._refuse(q, str(exc))
                continue
            self._metrics.commands.labels(q.command, "accepted").inc()
            changed = True
        for name, controller in controllers.items():
            self.settle(name, controller, mode, limit_a, now_s)
        return changed

    def _refuse(self, q: _Queued, why: str) -> None:
        command = q.command if q.command in COMMANDS else "unknown"
        self._metrics.commands.labels(command, "refused").inc()
        where = q.charger if q.charger in self.overrides else None
        log.warning("command %s/%s/set refused: %s", q.charger, q.command, why)
        self._publish(f"{self.base}/{where}/error" if where else f"{self.base}/error",
                      f"{q.command}/set: {why}")

    def _apply(self, q: _Queued, now_s: float, controller: Controller, mode: Mode,
               limit_a: float | None) -> None:
        try:
            text = q.payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CommandError("payload is not UTF-8 text") from None
        o = self.overrides[q.charger]
        if q.command == "plan":
            self._apply_plan(q.charger, o, text, now_s)
            return
        if q.command == "mode":
            try:
                o.mode = Mode(text.lower())
            except ValueError:
                raise CommandError(f"{text!r} is not a mode (one of "
                                   f"{', '.join(m.value for m in Mode)})") from None
            o.boost_until_s = None
            log.info("command: charger %s mode %s", q.charger, o.mode)
            return
        try:
            number = parse_number(q.payload)
        except PayloadError as exc:
            raise CommandError(str(exc)) from None
        if q.command == "boost":
            if not 0 <= number <= MAX_BOOST_MIN:
                raise CommandError(f"boost takes minutes from 0 (cancel) to "
                                   f"{MAX_BOOST_MIN:g}, got {text!r}")
            o.boost_until_s = now_s + number * 60 if number > 0 else None
            log.info("command: charger %s boost %s", q.charger,
                     f"for {number:g} min" if number > 0 else "cancelled")
            return
        caps = self._base(q.charger, controller)
        lo, hi = caps.min_current_a, caps.max_current_a
        if not lo <= number <= hi:
            raise CommandError(f"{number:g} A is outside {q.charger}'s range "
                               f"{lo:g}–{hi:g} A")
        eff = self.effective(q.charger, mode, limit_a, now_s)
        if q.command == "min_current":
            cap = hi if eff.limit_a is None else eff.limit_a
            if number > cap:
                raise CommandError(f"minimum {number:g} A is above the maximum in force "
                                   f"({cap:g} A)")
            o.min_current_a = number
        else:
            floor = lo if eff.min_current_a is None else eff.min_current_a
            if number < floor:
                raise CommandError(f"maximum {number:g} A is below the minimum in force "
                                   f"({floor:g} A)")
            o.max_current_a = number
        log.info("command: charger %s %s %g A", q.charger, q.command, number)

    def _apply_plan(self, name: str, o: Overrides, text: str, now_s: float) -> None:
        if text.lower() in PLAN_OFF:
            o.plan = o.plan_by_s = None
            log.info("command: charger %s plan cancelled", name)
            return
        try:
            entry = json.loads(text)
        except ValueError:
            raise CommandError(f"a plan is a JSON object like {{\"energy_kwh\": 20, \"by\": "
                               f"\"07:00\"}} or off, got {text[:60]!r}") from None
        spec = _plan_spec(entry)
        o.plan, o.plan_by_s = entry, spec.next_deadline(now_s, self._tz)
        log.info("command: charger %s plan %s", name, text)

    def plans(self, name: str, now_s: float) -> list[PlanSpec] | None:
        """The plan a command set for `name`'s next deadline; None: the config's plans. A
        command's plan ends at its deadline."""
        o = self.overrides.get(name)
        if o is None or o.plan is None or o.plan_by_s is None:
            return None
        if now_s >= o.plan_by_s:
            log.info("charger %s: the plan set by command is over", name)
            o.plan = o.plan_by_s = None
            return None
        return [_plan_spec(o.plan)]

    def _base(self, name: str, controller: Controller) -> Capabilities:
        """The controller's capabilities before any command narrowed them. A controller not
        seen before (a new one at connect) still has them as built."""
        seen = self._base_caps.get(name)
        if seen is None or seen[0] is not controller:
            seen = self._base_caps[name] = (controller, controller.caps)
        return seen[1]

    def effective(self, name: str, mode: Mode, limit_a: float | None,
                  now_s: float) -> Effective:
        """`name`'s settings given the daemon's mode and cap (config or schedule); an
        expired boost ends here."""
        o = self.overrides.get(name) or Overrides()
        if o.boost_until_s is not None and now_s >= o.boost_until_s:
            log.info("charger %s: boost over", name)
            o.boost_until_s = None
        in_force = o.mode or mode
        return Effective(Mode.FAST if o.boost_until_s is not None else in_force,
                         o.min_current_a,
                         o.max_current_a if o.max_current_a is not None else limit_a,
                         o.boost_until_s)

    def settle(self, name: str, controller: Controller, mode: Mode, limit_a: float | None,
               now_s: float) -> None:
        """Put `name`'s settings in force on its controller."""
        eff = self.effective(name, mode, limit_a, now_s)
        caps = self._base(name, controller)
        controller.mode = eff.mode
        controller.set_limit(eff.limit_a)
        controller.caps = caps if eff.min_current_a is None else caps.limited(
            min_current_a=eff.min_current_a)

    def schedule_fired(self, entry: ScheduleEntry) -> None:
        """A schedule entry speaks after the commands: it ends what it sets."""
        for name, o in self.overrides.items():
            ended = [what for what, value in (("max_current", o.max_current_a),
                                              ("mode", o.mode if entry.mode else None),
                                              ("boost", o.boost_until_s if entry.mode
                                               else None)) if value is not None]
            if ended:
                log.info("schedule %r ends charger %s's %s command", entry.cron, name,
                         ", ".join(ended))
            o.max_current_a = None
            if entry.mode is not None:
                o.mode = o.boost_until_s = None

    # --- state file --------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The overrides, with the config they were given under (to see it change)."""
        return {"config_mode": str(self._config_mode),
                "chargers": {name: {**{k: v for k, v in asdict(o).items() if v is not None},
                                    "config_range_a": list(self._ranges[name])}
                             for name, o in self.overrides.items() if o != Overrides()}}

    def restore(self, saved: Any) -> None:
        """Take saved overrides the config has not changed since; an unusable entry is
        dropped (logged), never fatal."""
        if saved is None:
            return
        try:
            same_mode = saved["config_mode"] == str(self._config_mode)
            entries = dict(saved["chargers"])
        except (KeyError, TypeError, ValueError) as exc:
            log.error("state file: commands section unusable (%r); commands dropped", exc)
            return
        for name, entry in entries.items():
            if name not in self.overrides:
                continue
            try:
                self.overrides[name] = self._restored(name, dict(entry), same_mode)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("state file: charger %s's commands unusable (%r); dropped", name,
                          exc)

    def _restored(self, name: str, entry: dict[str, Any], same_mode: bool) -> Overrides:
        o = Overrides()
        if same_mode:
            o.mode = None if entry.get("mode") is None else Mode(entry["mode"])
            until = entry.get("boost_until_s")
            o.boost_until_s = None if until is None else _finite(until)
        lo, hi = self._ranges[name]
        if [_finite(x) for x in entry["config_range_a"]] == [lo, hi]:
            for key in ("min_current_a", "max_current_a"):
                if entry.get(key) is not None:
                    value = _finite(entry[key])
                    if not lo <= value <= hi:
                        raise ValueError(f"{key} {value} outside {lo}–{hi} A")
                    setattr(o, key, value)
        if entry.get("plan") is not None:
            o.plan, o.plan_by_s = dict(entry["plan"]), _finite(entry["plan_by_s"])
            _plan_spec(o.plan)
        kept = [k for k, v in asdict(o).items() if v is not None]
        if kept:
            log.info("charger %s: commands kept from before the restart: %s", name,
                     ", ".join(kept))
        return o


def _plan_spec(entry: Any) -> PlanSpec:
    """A command's plan: the keys of a [[plan]] entry (charger aside)."""
    if not isinstance(entry, dict) or "charger" in entry:
        raise CommandError("a plan is a JSON object with the keys of a [[plan]] entry "
                           "(by, energy_kwh or soc_pct and battery_kwh, days)")
    try:
        return PlanConfig(**entry).spec()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise CommandError(f"plan: {where + ': ' if where else ''}"
                           f"{str(first['msg']).removeprefix('Value error, ')}") from None


def _finite(value: Any) -> float:
    try:
        out = float(value)
    except OverflowError:  # an integer beyond a float, from a damaged state file
        out = math.inf
    if not math.isfinite(out):
        raise ValueError(f"not a finite number: {value!r}")
    return out
