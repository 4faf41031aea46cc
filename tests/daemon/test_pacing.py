"""Pacing: a flood of feed values gets at most one cycle per 50 ms and a charger read at most
once per its driver's period; the policy's memory survives a restart while it is recent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from daemon_support import Publisher, settings

from chargers.openevse.emulator import HttpEmulator
from chargers.openevse.rapi import EvseState
from divert.daemon.loop import DEBOUNCE_S
from divert.daemon.persistence import POLICY_FRESH_S
from divert.daemon.service import Daemon

from .harness import Evse, rig


def test_a_flood_of_feed_values_is_debounced(tmp_path: Path, mosquitto: Any,
                                             publisher: Publisher) -> None:
    evse = Evse()
    evse.plug_in(requesting=True)
    front = HttpEmulator(evse)
    daemon = Daemon(settings(tmp_path, mosquitto, interval_s=300, chargers=[
        {"name": "garage", "type": "openevse", "transport": "http", "url": front.url}]))
    daemon.start()
    try:
        publisher.until("home/grid", "-3000", lambda: evse.current_a == 13, what="13 A")
        loop = daemon.metrics.loop_s.collect()[0]
        cycles0 = next(s.value for s in loop.samples if s.name.endswith("_count"))
        reads0 = sum(f.command == "GS" for f in evse.commands)
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 1.0:  # about 1000 values a second
            publisher.client.publish("home/grid", str(-3000 - sent % 7), qos=0)
            sent += 1
            time.sleep(0.001)
        time.sleep(0.2)  # the last ones arrive
        elapsed_s = time.monotonic() - started
        loop = daemon.metrics.loop_s.collect()[0]
        cycles = next(s.value for s in loop.samples if s.name.endswith("_count")) - cycles0
        reads = sum(f.command == "GS" for f in evse.commands) - reads0
    finally:
        daemon.stop()
        front.stop()
    assert sent >= 300
    assert 5 <= cycles <= elapsed_s / DEBOUNCE_S + 1
    assert reads <= elapsed_s / 1.0 + 1  # OpenEVSE: read at most once a second


def test_a_restart_in_sunshine_does_not_wait_again(tmp_path: Path, mosquitto: Any,
                                                   publisher: Publisher) -> None:
    # The balanced preset; starts free enough for three in the test's hour, and no minimum
    # off-time, so that the pause at each stop does not hold the next start.
    relay = {"min_off_s": 0, "max_starts_per_hour": 10, "max_starts_per_day": 10}
    with rig(tmp_path, mosquitto, publisher, relay=relay,
             policy={"preset": "balanced", "mode": "solar"}) as r:
        r.start()
        evse = r.evses["garage"]
        r.grid(-4000)
        cold_s = r.until(lambda: evse.state == EvseState.CHARGING, 10)
        assert cold_s >= 180  # a cold policy waits: the sun must prove it lasts
        r.tick(10, times=30)
        r.stop()
        assert evse.state == EvseState.SLEEPING
        # Restarted at once: the policy remembers the sunshine and starts in the first cycle.
        r.start()
        r.grid(-4000)
        assert r.until(lambda: evse.state == EvseState.CHARGING, 10) <= 10
        r.stop()
        # Down for longer than POLICY_FRESH_S: its memory is stale, it waits again.
        r.clock.advance(POLICY_FRESH_S + 1)
        r.start()
        r.grid(-4000)
        assert r.until(lambda: evse.state == EvseState.CHARGING, 10) >= 180
