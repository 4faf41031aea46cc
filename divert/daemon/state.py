"""The daemon's persistent state: one JSON file, written atomically, never trusted blindly.

A write goes to a temporary file beside the target, is fsynced, renamed over the target and
the directory fsynced: after a power cut the file is the old or the new version, never a mix.
A file that cannot be read or parsed, or whose content is implausible (wrong types, NaN,
times outside 1970–2100 or a day after the save, negative amounts), is reported, renamed aside
(kept for inspection) and the daemon starts afresh; the relay guard then errs on the side of
no history.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from divert.core.modes import Mode
from divert.textfile import MissingFile, UnreadableFile, read_text

log = logging.getLogger(__name__)

VERSION = 1
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_WALL_S = 4_102_444_800.0  # 2100-01-01: a save time beyond it is no clock's reading
NEAR_FUTURE_S = 86400.0  # a recorded time may lie this far after the save (clocks disagree)
MAX_CURRENT_A = 100.0  # per phase: more than any charger divert drives
MAX_AMOUNT = 1e12  # energy in Wh, relay starts, control-clock seconds
MAX_TIMES = 100_000  # relay times kept per charger (a day's starts are a handful)


class StateError(ValueError):
    """Why the content of a state file is unusable: the first bad key and what is wrong."""


def validate(data: Any) -> dict[str, Any]:
    """`data` if it is a plausible version-1 state, StateError otherwise.

    The keys divert reads are checked (types; finite numbers; amounts not negative; the save
    time from 1970 to 2100 and every other time from 1970 to a day after the save); other
    keys, and the sections other parts keep, are left to their readers. No clock is
    consulted: a save time after the clock's now is no fault (a Pi that booted without a
    real-time clock reads 1970), the loader counts such times as now."""
    top = _object(data, "(top level)")
    if type(top.get("version")) is not int or top["version"] != VERSION:
        raise StateError(f"not a version {VERSION} state object")
    latest_s = _time(top.get("saved_at"), "saved_at", MAX_WALL_S) + NEAR_FUTURE_S
    if "clock" in top:
        clock = _object(top["clock"], "clock")
        if not isinstance(clock.get("boot_id", ""), str):
            raise StateError(f"clock.boot_id: expected a string, got {_preview(clock['boot_id'])}")
        _amount(clock.get("control_s"), "clock.control_s", MAX_AMOUNT)
    _mode(top.get("config_mode"), "config_mode")
    _mode(top.get("mode"), "mode")
    if top.get("limit_a") is not None:
        _amount(top["limit_a"], "limit_a", MAX_CURRENT_A)
    for name, entry in _object(top.get("chargers"), "chargers").items():
        _charger(_object(entry, f"chargers.{name[:40]}"), f"chargers.{name[:40]}", latest_s)
    return top


def _charger(entry: dict[str, Any], where: str, latest_s: float) -> None:
    for key in ("ev_from_surplus_wh", "ev_from_grid_wh"):
        _amount(entry.get(key), f"{where}.{key}", MAX_AMOUNT)
    if "relay_starts" in entry:
        _amount(entry["relay_starts"], f"{where}.relay_starts", MAX_AMOUNT)
    if entry.get("retired_at") is not None:
        _time(entry["retired_at"], f"{where}.retired_at", latest_s)
    where += ".controller"
    controller = _object(entry.get("controller"), where)
    if "setpoint_a" in controller:
        _amount(controller["setpoint_a"], f"{where}.setpoint_a", MAX_CURRENT_A)
    if "mode" in controller:
        _mode(controller["mode"], f"{where}.mode")
    phases = controller.get("phases", 1)
    if type(phases) is not int or phases not in (1, 2, 3):
        raise StateError(f"{where}.phases: expected 1, 2 or 3, got {_preview(phases)}")
    where += ".guard"
    guard = _object(controller.get("guard", {}), where)
    if type(guard.get("on", False)) is not bool:
        raise StateError(f"{where}.on: expected true or false, got {_preview(guard['on'])}")
    for key in ("changed_s", "switched_s"):
        if guard.get(key) is not None:
            _time(guard[key], f"{where}.{key}", latest_s)
    for key in ("starts_s", "switch_starts_s"):
        times = guard.get(key, [])
        if not isinstance(times, list) or len(times) > MAX_TIMES:
            raise StateError(f"{where}.{key}: expected a list of at most {MAX_TIMES} times, "
                             f"got {_preview(times)}")
        for i, t in enumerate(times):
            _time(t, f"{where}.{key}[{i}]", latest_s)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateError(f"{where}: expected an object, got {_preview(value)}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StateError(f"{where}: expected a number, got {_preview(value)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise StateError(f"{where}: expected a finite number, got {_preview(value)}")
    return out


def _time(value: Any, where: str, latest_s: float) -> float:
    """A wall-clock time in unix s, from 1970 to `latest_s`."""
    t = _number(value, where)
    if not 0 <= t <= latest_s:
        raise StateError(f"{where}: time {t:.0f} is not between 1970 and "
                         f"{'2100' if latest_s >= MAX_WALL_S else 'a day after the save'}")
    return t


def _amount(value: Any, where: str, high: float) -> None:
    x = _number(value, where)
    if not 0 <= x <= high:
        raise StateError(f"{where}: expected 0 to {high:g}, got {x:g}")


def _mode(value: Any, where: str) -> None:
    if not isinstance(value, str) or value not in {m.value for m in Mode}:
        raise StateError(f"{where}: expected one of {', '.join(Mode)}, got {_preview(value)}")


def _preview(value: Any, limit: int = 40) -> str:
    if isinstance(value, dict | list):
        return f"an {'object' if isinstance(value, dict) else 'array'} of {len(value)}"
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python prints
        return "a huge integer"
    return text if len(text) <= limit else text[:limit] + "…"


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None if there is none or it is unusable (then set aside)."""
        try:
            text = read_text(self.path, MAX_STATE_BYTES)
        except MissingFile:
            return None
        except UnreadableFile as exc:
            self.set_aside(f"cannot read: {exc}")
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            self.set_aside(f"not valid JSON (truncated?): {exc}")
            return None
        except RecursionError:
            self.set_aside("JSON nested too deeply")
            return None
        try:
            return validate(data)
        except StateError as exc:
            self.set_aside(f"implausible content: {exc}")
            return None

    def set_aside(self, why: str) -> None:
        """Report an unusable state file and move it out of the way."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            self.path.replace(aside)
        except OSError as exc:
            log.error("state file %s is unusable (%s) and could not be moved aside: %s; "
                      "starting without saved state", self.path, why, exc)
            return
        log.error("state file %s is unusable (%s); moved to %s, starting without saved state",
                  self.path, why, aside)

    def save(self, data: dict[str, Any]) -> None:
        """Write `data` atomically and durably; OSError if the file system refused (the
        previous file is then left as it was)."""
        payload = json.dumps({"version": VERSION, **data}, indent=1, sort_keys=True)
        directory = self.path.parent
        tmp: str | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            tmp = None
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
