"""Clock steps: the relay promise runs on a monotonic clock; saved times are re-based on load.

The daemon drives an emulated OpenEVSE over HTTP, fed through a real mosquitto; the clock is
moved by hand (`ManualClock`): `step_wall` is what NTP or `date -s` does to the wall clock,
`reboot` what a Raspberry Pi without a real-time clock wakes up to.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from daemon_support import Publisher

from chargers.openevse.rapi import EvseState
from divert.config import ScheduleEntry

from .harness import rig

RELAY = {"min_on_s": 300, "min_off_s": 300, "max_starts_per_hour": 2, "max_starts_per_day": 6}
FREE_ON_OFF = {**RELAY, "min_on_s": 0, "min_off_s": 0}
YEAR_S = 365 * 86400.0
FUTURE = "lie after the clock's now"


@pytest.mark.parametrize("step_s", [-3600.0, -YEAR_S])
def test_a_wall_clock_set_back_moves_no_relay_timer(tmp_path: Path, mosquitto: Any,
                                                    publisher: Publisher,
                                                    step_s: float) -> None:
    feeds = {"grid": {"topic": "home/grid", "max_age_s": 30, "includes_ev": False}}
    with rig(tmp_path, mosquitto, publisher, relay=RELAY, feeds=feeds,
             stale_pause_s=300) as r:
        daemon = r.start()
        evse = r.evses["garage"]
        r.grid(-3000)
        r.tick()
        assert evse.state == EvseState.CHARGING and evse.closes == 1
        r.hold(-3000, 300)  # the minimum on-time is over
        r.clock.step_wall(step_s)
        # On the wall clock the start now lies an hour (a year) ahead: it holds nothing.
        daemon._apply_entry(ScheduleEntry(cron="0 0 * * *", mode="off"))
        r.tick()
        assert daemon.last_decisions["garage"].reason == "off: mode is off"
        assert evse.state == EvseState.SLEEPING
        daemon._apply_entry(ScheduleEntry(cron="0 6 * * *", mode="solar"))
        r.hold(-3000, 300)  # the minimum off-time
        assert evse.state == EvseState.CHARGING and evse.closes == 2
        # The stale-data pause: the meter falls silent and the clock is set back again.
        r.clock.step_wall(step_s)
        assert r.until(lambda: evse.state == EvseState.SLEEPING, 10) <= 30 + 300 + 10
        assert daemon.last_decisions["garage"].code == "fail_safe_pause"


def test_a_wall_clock_set_forward_forgets_no_start(tmp_path: Path, mosquitto: Any,
                                                   publisher: Publisher) -> None:
    with rig(tmp_path, mosquitto, publisher, relay=FREE_ON_OFF) as r:
        daemon = r.start()
        evse = r.evses["garage"]
        for _ in range(2):
            r.grid(-3000)
            r.tick()
            r.grid(500)
            r.tick()
            r.clock.step_wall(YEAR_S)  # the first NTP sync after a boot in 1970, and more
        assert evse.closes == 2 and evse.state == EvseState.SLEEPING
        r.grid(-3000)
        r.tick(60)
        assert daemon.last_decisions["garage"].reason == \
            "blocked: 2 starts in the last hour, limit 2"
        # A restart in the same boot reads the history back through the monotonic clock,
        # whatever the wall clock did.
        r.stop()
        r.clock.step_wall(-3 * YEAR_S)
        daemon = r.start()
        r.grid(-3000)
        r.tick()
        assert daemon.last_decisions["garage"].reason == \
            "blocked: 2 starts in the last hour, limit 2"
        # The budget frees up an hour after the starts, by the control clock.
        spent_s = r.until(lambda: evse.state == EvseState.CHARGING, 10)
        assert 3600 - 120 <= spent_s <= 3600
        assert evse.closes == 3


def test_a_boot_without_real_time_clock_blocks_no_longer_than_the_windows(
        tmp_path: Path, mosquitto: Any, publisher: Publisher,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with rig(tmp_path, mosquitto, publisher, relay=RELAY, shutdown="leave") as r:
        r.start()
        evse = r.evses["garage"]
        r.grid(-3000)
        r.tick()
        assert evse.state == EvseState.CHARGING
        r.stop()  # shutdown "leave": it charges on
        r.clock.reboot(wall_s=86400.0)  # 2 January 1970: no RTC, no network yet
        daemon = r.start()
        r.grid(500)  # no surplus: the policy wants to stop
        r.tick(times=2)
        # The saved start lies 56 years ahead: it counts as now, not as 29 million minutes.
        assert caplog.text.count(FUTURE) == 1
        assert daemon.last_decisions["garage"].reason == "holding: minimum on-time, 5 min left"
        assert r.until(lambda: evse.state == EvseState.SLEEPING, 10) <= 300
        r.grid(-3000)  # the minimum off-time from that pause; the hour's budget has room
        assert r.until(lambda: evse.state == EvseState.CHARGING, 10) <= 300
        # NTP sets the clock at last: nothing moves, and the next save is in real time.
        r.clock.step_wall(1.78e9)
        r.tick()
        assert evse.state == EvseState.CHARGING
        daemon.save()
        saved = json.loads((tmp_path / "state.json").read_text())
        starts = saved["chargers"]["garage"]["controller"]["guard"]["starts_s"]
        now = r.clock.wall_s()
        assert len(starts) == 2 and all(now - 3600 < t <= now for t in starts)
    assert caplog.text.count(FUTURE) == 1
