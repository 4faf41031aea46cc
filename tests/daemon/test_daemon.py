"""The daemon end to end: real mosquitto, the simulated charger, real clocks (with deadlines)."""

from __future__ import annotations

import json
import math
import platform
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from daemon_support import Publisher, retained, settings, simulated, wait_for
from prometheus_client.parser import text_string_to_metric_families

from chargers.simulated import Command
from divert import __version__
from divert.daemon.service import Daemon


def _after(commands: list[Command], n: int) -> list[tuple[str, float]]:
    return [(c.kind, c.value) for c in commands[n:]]


def _count_of(family: Any) -> float:
    return float(next(s.value for s in family.samples if s.name.endswith("_count")))


def _count(daemon: Daemon) -> float:
    """Control cycles run so far."""
    return _count_of(daemon.metrics.loop_s.collect()[0])


def test_grid_values_become_setpoints(tmp_path: Path, mosquitto: Any,
                                      publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    try:
        sim = simulated(daemon)
        # No command before the feeds had their chance (a first value, or max_age_s).
        wait_for(lambda: _count(daemon) >= 2, what="two cycles")
        assert sim.commands == []
        # 3000 W export, nothing charging: 13 A at 230 V; the current goes before the enable.
        publisher.until("home/grid", "-3000", lambda: sim.enabled, what="a start")
        assert _after(sim.commands, 0) == [("current", 13.0), ("enable", 1.0)]
        assert daemon.last_decisions["garage"].current_a == 13.0
        # 1990 W: 8 A, and no second enable.
        n = len(sim.commands)
        publisher.until("home/grid", "-1990", lambda: sim.current_a == 8.0, what="8 A")
        assert _after(sim.commands, n) == [("current", 8.0)]
        # The same decision again sends nothing (re-assert is 60 s away).
        n = len(sim.commands)
        cycles = daemon.metrics.loop_s.collect()[0]
        for _ in range(3):
            publisher.publish("home/grid", "-1990")
        wait_for(lambda: _count(daemon) >= _count_of(cycles) + 3, what="three more cycles")
        assert _after(sim.commands, n) == []
        # Too little surplus for 6 A: pause.
        publisher.until("home/grid", "-500", lambda: not sim.enabled, what="a pause")
        assert _after(sim.commands, n) == [("enable", 0.0)]
    finally:
        daemon.stop()
    assert not sim.enabled  # shutdown state "pause"


def test_broker_outage_reconnects_and_control_continues(tmp_path: Path, mosquitto: Any,
                                                        publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.current_a == 13.0 and sim.enabled)
        assert retained(mosquitto, "divert/status") == "online"
        mosquitto.stop()
        wait_for(lambda: not daemon.mqtt.connected, what="the daemon to notice")
        cycles = _count(daemon)
        wait_for(lambda: _count(daemon) >= cycles + 2, what="cycles while the broker is away")
        mosquitto.start()
        # The broker lost its subscriptions and retained messages: both come back.
        publisher.until("home/grid", "-1990", lambda: sim.current_a == 8.0, timeout_s=20,
                        what="control after the reconnect")
        assert daemon.mqtt.connected
        assert retained(mosquitto, "divert/status") == "online"
    finally:
        daemon.stop()
    assert retained(mosquitto, "divert/status") == "offline"


def test_stale_feed_fail_safe_then_recovery(tmp_path: Path, mosquitto: Any,
                                            publisher: Publisher) -> None:
    feeds = {"grid": {"topic": "tele/meter/SENSOR", "json_path": "ENERGY.Power",
                      "max_age_s": 1.0, "includes_ev": False}}
    daemon = Daemon(settings(tmp_path, mosquitto, feeds=feeds, stale_pause_s=1.5))
    daemon.start()
    try:
        sim = simulated(daemon)
        tasmota = '{"Time": "2024-06-01T12:00:00", "ENERGY": {"Power": -3000}}'
        publisher.until("tele/meter/SENSOR", tasmota, lambda: sim.enabled)
        assert sim.current_a == 13.0
        # The meter falls silent: minimum current at once (after max_age_s) ...
        n = len(sim.commands)
        wait_for(lambda: sim.current_a == 6.0, what="the fail-safe minimum")
        assert "fail-safe: no fresh surplus data, minimum current" in \
            daemon.last_decisions["garage"].reason
        # ... and a pause once stale for longer than stale_pause_s.
        wait_for(lambda: not sim.enabled, what="the fail-safe pause")
        assert "pausing" in daemon.last_decisions["garage"].reason
        assert _after(sim.commands, n) == [("current", 6.0), ("enable", 0.0)]
        # Fresh data: normal control again (the guard allows this start).
        publisher.until("tele/meter/SENSOR", tasmota, lambda: sim.enabled)
        assert sim.current_a == 13.0
    finally:
        daemon.stop()


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_garbage_is_counted_and_ignored_and_metrics_are_served(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    port = free_port()
    daemon = Daemon(settings(tmp_path, mosquitto, metrics={"listen": f"127.0.0.1:{port}"}))
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.enabled)
        garbage = [b"nan", b"", b"ON", b"\xff\xfe", b"inf", b"1e400", b'{"Power": 5}']
        for payload in garbage:
            publisher.publish("home/grid", payload)
        grid_errors = ("divert_feed_payload_errors_total", (("feed", "grid"),))
        wait_for(lambda: _scrape(port)[grid_errors] == len(garbage), what="errors counted")
        wait_for(lambda: _scrape(port)[("divert_ev_energy_from_surplus_watt_hours_total",
                                         (("charger", "garage"),))] > 0, what="energy")
        # Nothing of it was read as a number: still charging at 13 A on the last good value.
        assert sim.enabled and sim.current_a == 13.0
        assert daemon.last_decisions["garage"].current_a == 13.0
        m = _scrape(port)
        garage = (("charger", "garage"),)
        assert m[("divert_grid_power_watts", ())] == -3000.0
        assert m[("divert_surplus_power_watts", ())] == 3000.0
        assert math.isnan(m[("divert_solar_power_watts", ())])  # no solar feed
        assert m[("divert_charger_setpoint_amperes", garage)] == 13.0
        assert m[("divert_charger_power_watts", garage)] == 13.0 * 230
        assert m[("divert_charger_charging", garage)] == 1.0
        assert m[("divert_charger_relay_starts_total", garage)] == 1.0
        assert m[("divert_charger_command_errors_total", (("charger", "garage"),
                                                          ("command", "setpoint")))] == 0.0
        assert m[("divert_ev_energy_from_grid_watt_hours_total", garage)] == 0.0
        assert 0 <= m[("divert_feed_age_seconds", (("feed", "grid"),))] < 30
        assert m[("divert_control_loop_duration_seconds_count", ())] >= 2
        assert m[("divert_mode", (("charger", "garage"), ("divert_mode", "solar")))] == 1.0
        assert m[("divert_mqtt_connected", ())] == 1.0
        assert ("divert_build_info", (("python", platform.python_version()),
                                      ("version", __version__))) in m
    finally:
        daemon.stop()
    with pytest.raises(OSError):  # the exporter is closed
        _scrape(port)


def test_starts_used_before_a_restart_still_count(tmp_path: Path, mosquitto: Any,
                                                  publisher: Publisher) -> None:
    relay = {"min_on_s": 0, "min_off_s": 0, "max_starts_per_hour": 2}
    config = settings(tmp_path, mosquitto, relay=relay)
    daemon = Daemon(config)
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.enabled)
        publisher.until("home/grid", "-500", lambda: not sim.enabled)
        publisher.until("home/grid", "-3000", lambda: sim.enabled)
    finally:
        daemon.stop()
    saved = json.loads((tmp_path / "state.json").read_text())["chargers"]["garage"]
    assert len(saved["controller"]["guard"]["starts_s"]) == 2
    assert saved["ev_from_surplus_wh"] > 0

    daemon = Daemon(config)
    daemon.start()
    try:
        sim = simulated(daemon)
        # The energy counters carry on from the saved totals.
        assert daemon.metrics.registry.get_sample_value(
            "divert_ev_energy_from_surplus_watt_hours_total",
            {"charger": "garage"}) >= saved["ev_from_surplus_wh"]
        publisher.until("home/grid", "-3000", lambda: "blocked" in getattr(
            daemon.last_decisions.get("garage"), "reason", ""), what="a blocked start")
        assert daemon.last_decisions["garage"].reason == \
            "blocked: 2 starts in the last hour, limit 2"
        assert not sim.enabled
        assert daemon.metrics.registry.get_sample_value(
            "divert_charger_starts_blocked_total",
            {"charger": "garage", "reason": "hourly_budget"}) == 1
    finally:
        daemon.stop()


_GOOD_STATE: dict[str, Any] = {
    "version": 1, "saved_at": 1.7e9, "config_mode": "solar", "mode": "solar", "limit_a": None,
    "chargers": {"garage": {
        "controller": {"guard": {"on": False, "changed_s": None, "starts_s": []},
                       "setpoint_a": 6.0, "mode": "solar"},
        "ev_from_surplus_wh": 1.0, "ev_from_grid_wh": 0.0}}}


@pytest.mark.parametrize("content", [
    '{"version": 1, "chargers": {"garage": {"controller": {"gua',  # truncated
    '{"version": 1}',
    json.dumps({**_GOOD_STATE, "mode": "turbo"}),
    json.dumps({**_GOOD_STATE, "saved_at": 1e18}),  # issue 14: `divert run` exited 1
    json.dumps({**_GOOD_STATE, "chargers": {"garage": {
        **_GOOD_STATE["chargers"]["garage"], "ev_from_grid_wh": -5}}}),
    json.dumps({**_GOOD_STATE, "chargers": {"garage": {
        **_GOOD_STATE["chargers"]["garage"],
        "controller": {"guard": {"starts_s": ["soon"]}}}}}),
])
def test_a_corrupt_state_file_is_set_aside(tmp_path: Path, mosquitto: Any,
                                           publisher: Publisher,
                                           caplog: pytest.LogCaptureFixture,
                                           content: str) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.enabled)
    finally:
        daemon.stop()
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == content
    assert "state file" in caplog.text and "unusable" in caplog.text
    assert json.loads(state.read_text())["version"] == 1  # a good one written since


def test_schedule_entry_switches_mode_and_caps_current(tmp_path: Path, mosquitto: Any,
                                                       publisher: Publisher) -> None:
    entries = [{"cron": "0 22 * * mon-fri", "mode": "fast", "max_current_a": 10},
               {"cron": "0 6 * * *", "mode": "solar"}]
    daemon = Daemon(settings(tmp_path, mosquitto, schedule=entries, timezone="Europe/Berlin"))
    daemon.start()
    try:
        sim = simulated(daemon)
        jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
        assert jobs["schedule-0"].next_run_time.hour == 22
        assert str(jobs["schedule-0"].next_run_time.tzinfo) == "Europe/Berlin"
        publisher.until("home/grid", "-500", lambda: daemon.last_decisions.get("garage"),
                        what="a first decision")  # commands need a first feed value
        daemon._apply_entry(daemon.settings.schedule[0])  # what the cron trigger runs at 22:00
        wait_for(lambda: sim.enabled and sim.current_a == 10.0, what="fast, capped at 10 A")
        assert daemon.last_decisions["garage"].reason.startswith("fast")
        daemon._apply_entry(daemon.settings.schedule[1])
        publisher.until("home/grid", "-500", lambda: not sim.enabled, what="solar again")
    finally:
        daemon.stop()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["mode"] == "solar" and saved["limit_a"] is None


def test_a_fresh_grid_value_runs_the_loop_at_once_and_reassert_repeats(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    # With a 300 s interval only the kick on a fresh value can bring the start in time.
    daemon = Daemon(settings(tmp_path, mosquitto, interval_s=300, reassert_s=0.5))
    daemon.start()
    try:
        sim = simulated(daemon)
        wait_for(lambda: _count(daemon) >= 1, what="the first cycle")
        publisher.until("home/grid", "-3000", lambda: sim.enabled, what="a start on the kick")
        # Re-assert: the same decision is sent again in full once reassert_s has passed.
        n = len(sim.commands)
        publisher.until("home/grid", "-3000", lambda: len(sim.commands) >= n + 2,
                        what="a re-assert")
        assert _after(sim.commands, n)[:2] == [("current", 13.0), ("enable", 1.0)]
    finally:
        daemon.stop()
