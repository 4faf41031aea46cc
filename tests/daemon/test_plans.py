"""Departure plans and the forecast feed in the daemon, against a real mosquitto: a plan from
the config or from `plan/set` charges at full power when it must, `off` ends it, a bad one
is refused with a message; the car's state of charge and a forecast reach the controller."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon_support import Listener, Publisher, settings, simulated, wait_for

from divert.daemon.service import Daemon
from divert.policies.predictive import PredictivePolicy


def _in_minutes(minutes: float) -> str:
    """A time of day (UTC) `minutes` from now, HH:MM."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%H:%M")


def test_a_plan_from_the_config_charges_from_the_grid_when_it_must(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    """5 kWh in 40 min takes 16 A (3.7 kW) for 82 min: full power at once, no surplus."""
    daemon = Daemon(settings(tmp_path, mosquitto,
                             plan=[{"energy_kwh": 5, "by": _in_minutes(40)}]))
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "500", lambda: sim.enabled and sim.current_a == 16,
                        what="full power for the plan")
        decision = daemon.last_decisions["garage"]
        assert str(decision.code) == "plan"
        assert decision.reason.startswith("plan: 0.0 of 5.0 kWh by ")
        assert decision.reason.endswith("at 16 A, short of time")
    finally:
        daemon.stop()


def test_plan_set_sets_refuses_and_cancels(tmp_path: Path, mosquitto: Any,
                                           publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    errors = Listener(mosquitto, "divert/garage/error")
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "500", lambda: daemon.last_decisions.get("garage"))
        assert not sim.enabled  # importing: nothing to charge from
        for payload, message in (("20 kWh", "a plan is a JSON object like"),
                                 ('{"energy_kwh": 5}', "plan: by: Field required"),
                                 ('{"by": "07:00", "energy_kwh": -1}', "plan: energy_kwh:"),
                                 ('{"by": "07:00", "soc_pct": 80}', "needs battery_kwh"),
                                 ('{"by": "07:00", "energy_kwh": 1, "charger": "x"}',
                                  "the keys of a [[plan]] entry")):
            publisher.publish("divert/garage/plan/set", payload)
            got = wait_for(lambda p=payload: [m for m in errors.on("divert/garage/error")
                                              if p[:3] in m or "plan/set" in m], what=payload)
            assert message in got[-1], (payload, got)
            errors.messages.clear()
        plan = {"energy_kwh": 5, "by": _in_minutes(40)}
        publisher.publish("divert/garage/plan/set", json.dumps(plan))
        publisher.until("home/grid", "500", lambda: sim.enabled and sim.current_a == 16,
                        what="full power for the plan")
        publisher.publish("divert/garage/plan/set", "off")
        publisher.until("home/grid", "500", lambda: not sim.enabled, what="the plan off")
        assert daemon.commands.overrides["garage"].plan is None
    finally:
        errors.close()
        daemon.stop()


def test_a_commanded_plan_survives_a_restart(tmp_path: Path, mosquitto: Any,
                                             publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    plan = {"energy_kwh": 5, "by": _in_minutes(40)}
    try:
        publisher.until("home/grid", "500", lambda: daemon.last_decisions.get("garage"))
        publisher.publish("divert/garage/plan/set", json.dumps(plan))
        wait_for(lambda: daemon.commands.overrides["garage"].plan == plan)
    finally:
        daemon.stop()
    saved = json.loads((tmp_path / "state.json").read_text())["commands"]
    assert saved["chargers"]["garage"]["plan"] == plan
    again = Daemon(settings(tmp_path, mosquitto))
    again.start()
    try:
        sim = simulated(again)
        publisher.until("home/grid", "500", lambda: sim.enabled and sim.current_a == 16,
                        what="the plan after the restart")
    finally:
        again.stop()


def test_the_cars_state_of_charge_drives_a_soc_plan(tmp_path: Path, mosquitto: Any,
                                                    publisher: Publisher) -> None:
    feeds = {"grid": {"topic": "home/grid", "max_age_s": 30, "includes_ev": False},
             "ev_soc": {"topic": "car/soc", "max_age_s": 3600}}
    plan = [{"soc_pct": 80, "battery_kwh": 50, "by": _in_minutes(120)}]
    daemon = Daemon(settings(tmp_path, mosquitto, feeds=feeds, plan=plan))
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "500", lambda: daemon.last_decisions.get("garage"))
        assert "plan: no state of charge from the car yet (target 80 % by" in \
            daemon.last_decisions["garage"].reason
        publisher.publish("car/soc", "20", retain=True)  # 30 kWh to go: 8 h at 16 A
        publisher.until("home/grid", "500", lambda: sim.enabled and sim.current_a == 16,
                        what="full power for 60 points of charge")
        assert daemon.last_decisions["garage"].reason.startswith("plan: 20 of 80 % by ")
    finally:
        daemon.stop()


def test_a_forecast_reaches_the_predictive_policy(tmp_path: Path, mosquitto: Any,
                                                  publisher: Publisher) -> None:
    now = time.time()
    feeds = {"grid": {"topic": "home/grid", "max_age_s": 30, "includes_ev": False},
             "forecast": {"topic": "solar/forecast", "json_path": "watts", "scale": 1000}}
    daemon = Daemon(settings(tmp_path, mosquitto, feeds=feeds,
                             policy={"preset": "predictive", "mode": "solar"}))
    daemon.start()
    try:
        publisher.until("home/grid", "500", lambda: daemon.last_decisions.get("garage"))
        publisher.publish("solar/forecast", "not json")
        wait_for(lambda: daemon.metrics.registry.get_sample_value(
            "divert_feed_payload_errors_total", {"feed": "forecast"}) == 1,
            what="a refused payload")
        points = {"watts": {str(int(now)): 2.0, str(int(now + 3600)): 0.5}}
        publisher.publish("solar/forecast", json.dumps(points), retain=True)

        def fed() -> list[tuple[float, float]]:
            policy = daemon.controllers["garage"].policy
            assert isinstance(policy, PredictivePolicy)
            return policy.forecaster._feed

        assert wait_for(fed, what="the forecast") == [(float(int(now)), 2000.0),
                                                      (float(int(now + 3600)), 500.0)]
        # A controller made anew at connect gets it too.
        publisher.until("home/grid", "-3000", lambda: daemon.readings.get("garage"))
        assert fed()
    finally:
        daemon.stop()
