"""What survives a crash, a restart, a reload and a reboot, and when it is written.

Content: per charger the controller's state (relay history, setpoint, phases, the policy's
memory), its energy counters and starts counter; the mode and the current cap; chargers
removed from the config, whose relay history is kept `RETIRED_KEEP_S`; and the sections other
parts keep for themselves (`commands`: settings changed by command; `energy_today`), stored
and handed back as they are.

Clocks: the file holds wall-clock times, plus the control clock's reading and boot id at the
save. A load in the same boot maps the times back through the control clock, exactly,
whatever the wall clock did since; a load after a reboot maps them through the wall clock,
and a time in its future (a Pi that booted without a real-time clock) counts as now, so it
holds for its window's full length and no longer; that is logged once.

When (the daemon decides, see `due`): whenever a relay history changed, a start before its
command is sent (write-ahead; a start that cannot be saved is not made), the energy counters
every `SAVE_EVERY_S`, and at stop. A failed save is counted in
`divert_state_save_errors_total` and logged at most once a minute.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from divert.core.guard import rebase
from divert.core.modes import Mode
from divert.daemon.clock import Clock
from divert.daemon.state import StateFile
from divert.daemon.throttle import LogThrottle

log = logging.getLogger(__name__)

SAVE_EVERY_S = 600.0  # energy counters are saved this often (an SD card wears with each write)
RETIRED_KEEP_S = 86400.0  # a charger removed from the config keeps its relay history this long
POLICY_FRESH_S = 900.0  # a policy's memory older than this is not restored
_OWN = frozenset({"version", "saved_at", "clock", "config_mode", "mode", "limit_a", "chargers"})


@dataclass
class ChargerRecord:
    """One charger's saved part; times on the control clock."""

    controller: dict[str, Any]  # Controller.to_state()
    ev_from_surplus_wh: float = 0.0
    ev_from_grid_wh: float = 0.0
    relay_starts: float = 0.0  # divert_charger_relay_starts_total
    retired_s: float | None = None  # when it left the config; None while configured


@dataclass
class Saved:
    """The state file's content, times on the control clock."""

    config_mode: str
    mode: Mode
    limit_a: float | None
    chargers: dict[str, ChargerRecord]
    sections: dict[str, Any] = field(default_factory=dict)  # other parts', as they are
    wall_s: float = 0.0  # when it was saved, wall clock (schedules missed since)
    age_s: float | None = None  # control-clock age when loaded; None: unknown


class Persistence:
    def __init__(self, path: Path, clock: Clock, errors: Counter) -> None:
        self.file = StateFile(path)
        self.clock = clock
        self._errors = errors
        self._warn = LogThrottle(log)
        self._saved_s = -math.inf
        self._saved_guards: dict[str, Any] = {}

    def load(self) -> Saved | None:
        """The saved state on the control clock; None if there is none or it is unusable
        (then it is set aside)."""
        data = self.file.load()
        if data is None:
            return None
        try:
            return self._decode(data)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            self.file.set_aside(f"unexpected content: {exc!r}")
            return None

    def _decode(self, data: dict[str, Any]) -> Saved:
        now_s, wall_s = self.clock.control_s(), self.clock.wall_s()
        saved_at = _amount(data["saved_at"])
        mark = data.get("clock")
        boot = self.clock.boot_id()
        if isinstance(mark, dict) and boot and mark.get("boot_id") == boot:
            at_s = float(mark["control_s"])
            shift_s, age_s = at_s - saved_at, now_s - at_s
        else:
            shift_s, age_s = now_s - wall_s, wall_s - saved_at
        moved = 0
        chargers: dict[str, ChargerRecord] = {}
        for name, entry in dict(data["chargers"]).items():
            controller = dict(entry["controller"])
            controller["guard"], n = rebase(dict(controller.get("guard", {})), shift_s, now_s)
            moved += n
            retired_s = entry.get("retired_at")
            if retired_s is not None:
                moved += _amount(retired_s) + shift_s > now_s
                retired_s = min(_amount(retired_s) + shift_s, now_s)
            chargers[str(name)] = ChargerRecord(
                controller, _amount(entry["ev_from_surplus_wh"]),
                _amount(entry["ev_from_grid_wh"]), _amount(entry.get("relay_starts", 0.0)),
                retired_s)
        if moved:
            log.warning("state file %s: %d saved time(s) lie after the clock's now (a clock "
                        "set back, or a boot without a real-time clock); each counts as now, "
                        "holding for its full window", self.file.path, moved)
        limit = data["limit_a"]
        sections = {k: v for k, v in data.items() if k not in _OWN}
        return Saved(str(data["config_mode"]), Mode(data["mode"]),
                     None if limit is None else _amount(limit), chargers, sections,
                     saved_at, age_s if age_s >= 0 else None)

    def _encode(self, saved: Saved) -> dict[str, Any]:
        now_s, wall_s = self.clock.control_s(), self.clock.wall_s()
        shift_s = wall_s - now_s
        chargers: dict[str, Any] = {}
        for name, rec in saved.chargers.items():
            controller = dict(rec.controller)
            controller["guard"], _ = rebase(controller["guard"], shift_s)
            entry: dict[str, Any] = {"controller": controller,
                                     "ev_from_surplus_wh": rec.ev_from_surplus_wh,
                                     "ev_from_grid_wh": rec.ev_from_grid_wh,
                                     "relay_starts": rec.relay_starts}
            if rec.retired_s is not None:
                entry["retired_at"] = rec.retired_s + shift_s
            chargers[name] = entry
        return {"saved_at": wall_s, "clock": {"boot_id": self.clock.boot_id(),
                                              "control_s": now_s},
                **saved.sections, "config_mode": saved.config_mode, "mode": str(saved.mode),
                "limit_a": saved.limit_a, "chargers": chargers}

    def save(self, saved: Saved) -> bool:
        """Write `saved` durably; False (counted, logged at most once a minute) if not."""
        now_s = self.clock.control_s()
        try:
            self.file.save(self._encode(saved))
        except OSError as exc:
            self._errors.inc()
            self._warn.warning(now_s, "cannot save state to %s: %s", self.file.path, exc)
            return False
        self._warn.reset()
        self._saved_s = now_s
        self._saved_guards = {n: r.controller["guard"] for n, r in saved.chargers.items()
                              if r.retired_s is None}
        return True

    def due(self, guards: dict[str, Any], now_s: float) -> bool:
        """A save is due: a relay history differs from the saved one, or the energy counters
        were last saved `SAVE_EVERY_S` ago."""
        return guards != self._saved_guards or now_s - self._saved_s >= SAVE_EVERY_S


def _amount(value: Any) -> float:
    """A finite, non-negative number from the state file, else ValueError."""
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"expected a finite amount >= 0, got {value!r}")
    return out
