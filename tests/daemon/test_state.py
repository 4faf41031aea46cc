"""The state file's content is checked before the daemon trusts it: anything implausible is
renamed aside with a log line and the daemon starts without it."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from divert.daemon.state import StateFile

GOOD: dict[str, Any] = {
    "version": 1, "saved_at": 1.7e9, "config_mode": "solar", "mode": "solar", "limit_a": None,
    "chargers": {"garage": {
        "controller": {"guard": {"on": True, "changed_s": 1.7e9 - 60, "switched_s": None,
                                 "starts_s": [1.7e9 - 600, 1.7e9 - 60],
                                 "switch_starts_s": []},
                       "setpoint_a": 6.0, "mode": "solar", "phases": 1},
        "ev_from_surplus_wh": 1.0, "ev_from_grid_wh": 0.0}}}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the value at a dotted path (list positions as numbers) replaced."""
    data = copy.deepcopy(GOOD)
    node: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


GUARD = "chargers.garage.controller.guard"


def test_a_plausible_state_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(GOOD))
    assert StateFile(path).load() == GOOD
    assert StateFile(tmp_path / "none.json").load() is None  # no file: a first start
    # Saved decades after the clock's now is no fault: a Pi without a real-time clock boots
    # in 1970; the loader counts such times as now.
    later = json.loads(json.dumps(GOOD).replace("1700000", "4000000"))
    path.write_text(json.dumps(later))
    assert StateFile(path).load() == later


@pytest.mark.parametrize(("content", "why"), [
    # Issue 14: each of these was accepted, or made `divert run` exit 1 on every restart.
    (_with("saved_at", 1e18), "saved_at: time 1000000000000000000 is not between 1970 and "
                              "2100"),
    (_with("saved_at", True), "saved_at: expected a number, got True"),
    (_with("saved_at", -5), "saved_at: time -5 is not between"),
    (_with(f"{GUARD}.starts_s.1", float("nan")), f"{GUARD}.starts_s[1]: expected a finite "
                                                  "number, got nan"),
    (_with(f"{GUARD}.starts_s.0", float("inf")), f"{GUARD}.starts_s[0]: expected a finite"),
    (_with(f"{GUARD}.changed_s", 1.7e9 + 30 * 86400),
     f"{GUARD}.changed_s: time 1702592000 is not between 1970 and a day after the save"),
    (_with(f"{GUARD}.switch_starts_s", [1e300]), f"{GUARD}.switch_starts_s[0]: time "),
    (_with(f"{GUARD}.starts_s", "soon"), f"{GUARD}.starts_s: expected a list"),
    (_with(f"{GUARD}.on", "yes"), f"{GUARD}.on: expected true or false, got 'yes'"),
    (_with("chargers.garage.controller.setpoint_a", -6),
     "chargers.garage.controller.setpoint_a: expected 0 to 100, got -6"),
    (_with("chargers.garage.controller.phases", 2.5),
     "chargers.garage.controller.phases: expected 1, 2 or 3, got 2.5"),
    (_with("chargers.garage.controller.mode", ["solar"]),
     "chargers.garage.controller.mode: expected one of off, fast, solar, min-solar"),
    (_with("chargers.garage.ev_from_grid_wh", 10 ** 400), "chargers.garage.ev_from_grid_wh: "
                                                          "expected a finite number"),
    (_with("limit_a", "10"), "limit_a: expected a number, got '10'"),
    (_with("chargers", []), "chargers: expected an object, got an array of 0"),
    (_with("version", True), "not a version 1 state object"),
])
def test_implausible_content_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                          content: dict[str, Any], why: str) -> None:
    _set_aside(tmp_path, caplog, json.dumps(content), f"implausible content: {why}")


@pytest.mark.parametrize(("text", "why"), [
    ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),  # issue 14: a traceback
    ('{"version": 1, "saved_at": 1' + "0" * 5000 + "}", "not valid JSON"),
    ("\xff", "cannot read: not UTF-8 text"),
])
def test_unreadable_content_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         text: str, why: str) -> None:
    _set_aside(tmp_path, caplog, text, why)


def _set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, why: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(text.encode("latin-1"))
    with caplog.at_level(logging.ERROR):
        assert StateFile(path).load() is None
    assert not path.exists()
    (aside,) = tmp_path.glob("state.json.corrupt-*")
    assert aside.read_bytes() == text.encode("latin-1")
    (record,) = caplog.records
    assert f"is unusable ({why}" in record.getMessage(), record.getMessage()
