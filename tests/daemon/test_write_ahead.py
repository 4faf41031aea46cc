"""Write-ahead: a start is on disk before its command goes out, and a start that cannot be
recorded is not made. Save failures are counted and logged at most once a minute."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from daemon_support import Publisher, config, toml_text

from chargers.openevse.emulator import HttpEmulator
from chargers.openevse.rapi import EvseState
from divert.core.reasons import Reason

from .harness import Evse, rig
from .procs import NotifyListener, Run

BUDGET = {"min_on_s": 0, "min_off_s": 0, "max_starts_per_hour": 3, "max_starts_per_day": 100}


def _starts(state: Path) -> int:
    return len(json.loads(state.read_text())["chargers"]["garage"]["controller"]["guard"]
               ["starts_s"])


def test_a_daemon_killed_at_each_start_command_keeps_the_budget(
        tmp_path: Path, mosquitto: Any, publisher: Publisher, notify: NotifyListener) -> None:
    evse = Evse()
    evse.plug_in(requesting=True)
    front = HttpEmulator(evse)
    state = tmp_path / "state.json"
    cfg = tmp_path / "divert.toml"
    cfg.write_text(toml_text(config(
        tmp_path, mosquitto, relay=BUDGET,
        chargers=[{"name": "garage", "type": "openevse", "transport": "http", "url": front.url,
                   "timeout_s": 1.0, "retries": 0}])))
    on_disk_at_kill: list[int] = []
    try:
        for round_ in range(4):
            evse.mode = "sleeping"  # paused again, as by the car or by hand
            run = Run(cfg, notify)

            def kill(run: Run = run) -> None:  # at the start command, before it acts
                os.kill(run.proc.pid, signal.SIGKILL)
                on_disk_at_kill.append(_starts(state))

            evse.on_close = kill
            try:
                if round_ < 3:
                    publisher.until("home/grid", "-3000", run.proc.poll,
                                    timeout_s=20, what="the start command (and the kill)")
                else:  # the hour's budget is spent, across the three crashes
                    publisher.until("home/grid", "-3000", lambda: any(
                        "garage: blocked: 3 starts in the last hour, limit 3" in f
                        for f in notify.fields()), timeout_s=20, what="a blocked start")
            finally:
                run.finish()
    finally:
        front.stop()
    assert on_disk_at_kill == [1, 2, 3]
    assert evse.closes == 3


def test_a_start_that_cannot_be_recorded_is_not_made(tmp_path: Path, mosquitto: Any,
                                                     publisher: Publisher,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="divert.daemon.persistence")
    folder = tmp_path / "state"
    with rig(tmp_path, mosquitto, publisher, relay=BUDGET,
             state={"path": str(folder / "state.json")}) as r:
        daemon = r.start()
        evse = r.evses["garage"]
        r.grid(500)
        r.tick()
        shutil.rmtree(folder)
        folder.write_text("")  # the state cannot be written (as with a full disk)
        r.grid(-3000)
        r.tick(times=40)
        assert evse.closes == 0 and evse.state == EvseState.SLEEPING
        decision = daemon.last_decisions["garage"]
        assert decision.code is Reason.BLOCKED_UNSAVED and not decision.charging
        registry = daemon.metrics.registry
        assert registry.get_sample_value("divert_state_save_errors_total") == 40
        assert registry.get_sample_value("divert_charger_starts_blocked_total",
                                         {"charger": "garage", "reason": "unsaved"}) == 1
        assert caplog.text.count("cannot save state") == 1  # at most once a minute
        r.tick(30)
        assert caplog.text.count("cannot save state") == 2
        assert "(39 more since the last report)" in caplog.text
        folder.unlink()  # room again: the start is recorded, then made
        r.tick()
        assert evse.closes == 1 and evse.state == EvseState.CHARGING
        assert _starts(folder / "state.json") == 1


def test_a_start_whose_command_fails_still_counts(tmp_path: Path, mosquitto: Any,
                                                  publisher: Publisher) -> None:
    with rig(tmp_path, mosquitto, publisher, relay=BUDGET) as r:
        daemon = r.start()
        evse = r.evses["garage"]
        r.grid(-3000)
        r.fronts["garage"].blocked = ("FE",)  # the enable is refused
        r.tick()
        assert evse.state == EvseState.SLEEPING
        assert daemon.controllers["garage"].guard.starts_within(r.clock.control_s(), 3600) == 1
        assert _starts(r.tmp_path / "state.json") == 1
        r.fronts["garage"].blocked = ()
        r.tick()  # sent again in full; the same start, not a second one
        assert evse.state == EvseState.CHARGING
        assert daemon.controllers["garage"].guard.starts_within(r.clock.control_s(), 3600) == 1
