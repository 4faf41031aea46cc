"""MQTT state and commands against a real mosquitto: the state topics carry the Snapshot, each
command changes behaviour, an invalid one is refused with a message and changes nothing, no
command starts a charger the relay guard holds back, and commands survive a restart until a
schedule or the config says otherwise."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from daemon_support import Listener, Publisher, retained, settings, simulated, wait_for

from divert.core.controller import Controller
from divert.core.modes import Mode
from divert.daemon.commands import Commands
from divert.daemon.metrics import Metrics
from divert.daemon.mqtt import MqttLink
from divert.daemon.publish import StatePublisher
from divert.daemon.service import Daemon
from divert.policies.presets import load_preset


def _refused(daemon: Daemon) -> float:
    return sum(daemon.metrics.registry.get_sample_value(
        "divert_mqtt_commands_total", {"command": c, "result": "refused"}) or 0
        for c in ("mode", "min_current", "max_current", "boost", "unknown"))


def test_state_topics_carry_the_snapshot_and_come_back_after_a_broker_restart(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    relay = {"max_starts_per_hour": 3, "max_starts_per_day": 5}
    daemon = Daemon(settings(tmp_path, mosquitto, relay=relay))
    daemon.start()
    state = Listener(mosquitto, "divert/#")
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.enabled, what="a start")
        t = "divert/garage"
        want = {f"{t}/mode": "solar", f"{t}/setpoint_a": "13", f"{t}/power_w": "2990",
                f"{t}/charging": "true", f"{t}/connected": "true", f"{t}/phases": "1",
                f"{t}/min_current_a": "6", f"{t}/max_current_a": "16",
                f"{t}/boost_until": "None", f"{t}/starts_today": "1",
                f"{t}/starts_left_hour": "2", f"{t}/starts_left_day": "4",
                f"{t}/energy_from_grid_today_kwh": "0", f"{t}/energy_from_grid_total_kwh": "0",
                "divert/site/mode": "solar", "divert/site/surplus_w": "3000",
                "divert/site/grid_w": "-3000", "divert/site/solar_w": "None",
                "divert/site/feed_grid": "ok"}
        wait_for(lambda: want.items() <= state.latest().items(), what="the state topics")
        # The reason moves on from "starting" (within a second: the topic's rate limit).
        wait_for(lambda: (state.latest()[f"{t}/reason"], state.latest()[f"{t}/reason_code"])
                 == (daemon.last_decisions["garage"].reason,
                     str(daemon.last_decisions["garage"].code)), what="the reason")
        wait_for(lambda: float(state.latest()[f"{t}/energy_from_surplus_total_kwh"]) > 0,
                 what="energy counted")
        latest = state.latest()
        assert latest[f"{t}/energy_from_surplus_today_kwh"] == \
            latest[f"{t}/energy_from_surplus_total_kwh"]  # a fresh state file: all today
        # Retained: a client that comes later gets them at once.
        assert retained(mosquitto, f"{t}/charging") == "true"
        # The broker forgets everything (no persistence); the reconnect publishes it again.
        mosquitto.stop()
        wait_for(lambda: not daemon.mqtt.connected, what="the daemon to notice")
        mosquitto.start()

        def mode_now() -> str | None:
            try:
                return retained(mosquitto, f"{t}/mode", 0.5)
            except AssertionError:  # not there (yet)
                return None

        assert wait_for(mode_now, 20, "the state again") == "solar"
        assert retained(mosquitto, "divert/site/surplus_w") == "3000"
    finally:
        state.close()
        daemon.stop()


def test_a_topic_goes_out_at_most_once_a_second_and_all_again_on_connect(
        tmp_path: Path, mosquitto: Any) -> None:
    now = [100.0]
    link = MqttLink(settings(tmp_path, mosquitto).mqtt, [], lambda *_: None)
    state = Listener(mosquitto, "t/#")
    publisher = StatePublisher(lambda topic, payload: link.publish(topic, payload, True),
                               lambda: now[0])
    link.start()
    try:
        wait_for(lambda: link.connected, what="a connection")
        publisher.offer({"t/a": "1", "t/b": "x"})
        wait_for(lambda: state.on("t/a") == ["1"] and state.on("t/b") == ["x"])
        now[0] = 100.5
        publisher.offer({"t/a": "2", "t/b": "x"})
        now[0] = 100.6
        publisher.offer({"t/a": "3", "t/b": "x"})
        time.sleep(0.6)  # the late-send timer has fired once: still inside the second
        assert state.on("t/a") == ["1"]
        now[0] = 101.0
        wait_for(lambda: state.on("t/a") == ["1", "3"], what="the latest value, late")
        publisher.republish()  # what a (re)connect does
        wait_for(lambda: state.on("t/a") == ["1", "3", "3"] and state.on("t/b") == ["x", "x"])
    finally:
        publisher.close()
        state.close()
        link.stop()


def test_each_command_changes_behaviour(tmp_path: Path, mosquitto: Any,
                                        publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    state = Listener(mosquitto, "divert/garage/#")
    try:
        sim = simulated(daemon)
        mode = lambda: str(daemon.controllers["garage"].mode)  # noqa: E731
        publisher.until("home/grid", "-3000", lambda: sim.enabled and sim.current_a == 13)
        publisher.publish("divert/garage/max_current/set", "10")
        wait_for(lambda: sim.current_a == 10.0, what="the cap")
        wait_for(lambda: state.latest().get("divert/garage/max_current_a") == "10")
        publisher.until("home/grid", "-1990", lambda: sim.current_a == 8.0, what="8 A")
        # A higher minimum: 1990 W no longer carries it, and the policy imports nothing.
        publisher.publish("divert/garage/min_current/set", "9")
        wait_for(lambda: not sim.enabled, what="a pause for the higher minimum")
        assert daemon.last_decisions["garage"].reason.startswith("stopping") or \
            daemon.last_decisions["garage"].reason.startswith("waiting")
        publisher.publish("divert/garage/mode/set", "fast")
        wait_for(lambda: sim.enabled and sim.current_a == 10.0, what="fast, under the cap")
        wait_for(lambda: mode() == "fast")
        publisher.publish("divert/garage/mode/set", "OFF")
        wait_for(lambda: not sim.enabled and mode() == "off", what="off")
        publisher.publish("divert/garage/boost/set", "30")
        wait_for(lambda: sim.enabled and mode() == "fast", what="a boost")
        # Published at the end of a cycle (at most once a second per topic): wait for it.
        until = wait_for(lambda: state.latest().get("divert/garage/boost_until") not in
                         (None, "None") and state.latest()["divert/garage/boost_until"],
                         what="the boost's end on MQTT")
        assert 29 * 60 < time.mktime(time.strptime(until, "%Y-%m-%dT%H:%M:%S+00:00")) \
            - time.mktime(time.gmtime()) <= 30 * 60
        publisher.publish("divert/garage/boost/set", "0")
        wait_for(lambda: not sim.enabled and mode() == "off", what="the mode before it")
        wait_for(lambda: state.latest().get("divert/garage/mode") == "off"
                 and state.latest().get("divert/garage/boost_until") == "None")
        assert _refused(daemon) == 0
        assert daemon.metrics.registry.get_sample_value(
            "divert_mqtt_commands_total", {"command": "boost", "result": "accepted"}) == 2
    finally:
        state.close()
        daemon.stop()
    saved = json.loads((tmp_path / "state.json").read_text())["commands"]
    assert saved["chargers"]["garage"] == {"mode": "off", "min_current_a": 9.0,
                                           "max_current_a": 10.0, "config_range_a": [6, 16]}


INVALID = [
    ("garage/mode/set", "turbo", "garage", "'turbo' is not a mode"),
    ("garage/mode/set", b"\xff\xfe", "garage", "not UTF-8"),
    ("garage/max_current/set", "17", "garage", "17 A is outside garage's range 6–16 A"),
    ("garage/min_current/set", "5.5", "garage", "outside"),
    ("garage/min_current/set", "ten", "garage", "not a number: 'ten'"),
    ("garage/min_current/set", "nan", "garage", "not a number: 'nan'"),  # ASCII digits only
    ("garage/min_current/set", "12", "garage", "above the maximum in force (10 A)"),
    ("garage/boost/set", "-5", "garage", "boost takes minutes from 0"),
    ("garage/boost/set", "", "garage", "not a number: ''"),
    ("garage/phases/set", "3", "garage", "unknown command 'phases'"),
    ("nosuch/mode/set", "fast", None, "no charger 'nosuch'"),
]


def test_an_invalid_command_is_refused_with_a_message_and_changes_nothing(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto))
    daemon.start()
    errors = Listener(mosquitto, "divert/#")
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.enabled)
        publisher.publish("divert/garage/max_current/set", "10")
        wait_for(lambda: sim.current_a == 10.0)
        commands, overrides = len(sim.commands), repr(daemon.commands.overrides)
        controller = daemon.controllers["garage"]
        before = (controller.mode, controller.caps)
        for n, (topic, payload, error_topic, message) in enumerate(INVALID, 1):
            publisher.publish(f"divert/{topic}", payload)
            where = f"divert/{error_topic}/error" if error_topic else "divert/error"
            got = wait_for(lambda n=n: [(t, m) for t, m, _ in errors.messages[:]
                                        if t.endswith("/error")][n - 1:], what="an error")
            assert len(got) == 1 and got[0][0] == where and message in got[0][1], (topic, got)
            assert _refused(daemon) == n
        assert repr(daemon.commands.overrides) == overrides
        assert (controller.mode, controller.caps) == before
        assert len(sim.commands) == commands and sim.enabled and sim.current_a == 10.0
    finally:
        errors.close()
        daemon.stop()


def test_a_retained_command_is_refused(tmp_path: Path, mosquitto: Any,
                                       publisher: Publisher) -> None:
    publisher.publish("divert/garage/mode/set", "off", retain=True)  # waiting for anyone
    daemon = Daemon(settings(tmp_path, mosquitto))
    errors = Listener(mosquitto, "divert/garage/error")
    daemon.start()
    try:
        sim = simulated(daemon)
        got = wait_for(lambda: errors.on("divert/garage/error"), what="the refusal")
        assert "retained command ignored" in got[0]
        publisher.until("home/grid", "-3000", lambda: sim.enabled, what="solar as before")
    finally:
        errors.close()
        daemon.stop()


def test_a_command_cannot_start_a_charger_the_guard_holds_back(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto, relay={"min_off_s": 600}))
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.enabled)
        publisher.until("home/grid", "-500", lambda: not sim.enabled)
        for topic, payload in (("mode/set", "fast"), ("boost/set", "60"),
                               ("min_current/set", "6")):
            publisher.publish(f"divert/garage/{topic}", payload)
        wait_for(lambda: daemon.controllers["garage"].mode is Mode.FAST)
        publisher.until("home/grid", "-3000", lambda: daemon.last_decisions[
            "garage"].reason.startswith("blocked"), what="a blocked start")
        assert daemon.last_decisions["garage"].reason.startswith("blocked: minimum off-time")
        assert not sim.enabled
        # (the pause went out at most a second after the start)
        wait_for(lambda: retained(mosquitto, "divert/garage/charging") == "false")
    finally:
        daemon.stop()


def test_commands_off_are_not_even_heard(tmp_path: Path, mosquitto: Any,
                                         publisher: Publisher) -> None:
    mqtt = {"host": mosquitto.host, "port": mosquitto.port, "allow_commands": False}
    daemon = Daemon(settings(tmp_path, mosquitto, mqtt=mqtt))
    daemon.start()
    try:
        sim = simulated(daemon)
        publisher.until("home/grid", "-3000", lambda: sim.enabled)
        publisher.publish("divert/garage/mode/set", "off")
        cycles = daemon.metrics.registry.get_sample_value(
            "divert_control_loop_duration_seconds_count")
        publisher.until("home/grid", "-3000", lambda: daemon.metrics.registry.get_sample_value(
            "divert_control_loop_duration_seconds_count") >= cycles + 3)
        assert sim.enabled and daemon.controllers["garage"].mode is Mode.SOLAR
        assert daemon.metrics.registry.get_sample_value(
            "divert_mqtt_commands_total", {"command": "mode", "result": "accepted"}) == 0
    finally:
        daemon.stop()


def test_commands_survive_a_restart_until_a_schedule_says_otherwise(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    config = settings(tmp_path, mosquitto, schedule=[{"cron": "0 22 * * *", "mode": "solar"}])
    daemon = Daemon(config)
    daemon.start()
    try:
        publisher.until("divert/garage/mode/set", "off",  # once the daemon has subscribed
                        lambda: daemon.commands.overrides["garage"].mode is Mode.OFF)
        for topic, payload in (("max_current/set", "10"), ("min_current/set", "7")):
            publisher.publish(f"divert/garage/{topic}", payload)
        wait_for(lambda: daemon.commands.overrides["garage"].min_current_a == 7.0)
    finally:
        daemon.stop()

    daemon = Daemon(config)
    daemon.start()
    try:
        sim = simulated(daemon)
        wait_for(lambda: daemon.last_decisions.get("garage"), what="the first cycle")
        controller = daemon.controllers["garage"]
        assert controller.mode is Mode.OFF and controller.caps.min_current_a == 7.0
        # The first daemon said "off" on its way out, inside its rate limit.
        assert retained(mosquitto, "divert/garage/mode") == "off"
        cycles = daemon.metrics.registry.get_sample_value(
            "divert_control_loop_duration_seconds_count")
        publisher.until("home/grid", "-3000", lambda: daemon.metrics.registry.get_sample_value(
            "divert_control_loop_duration_seconds_count") >= cycles + 2)
        assert not sim.enabled  # off survived: no start on the surplus
        daemon._apply_entry(config.schedule[0])  # 22:00: the schedule speaks last
        publisher.until("home/grid", "-3000", lambda: sim.enabled and sim.current_a == 13.0,
                        what="solar, no cap")
        assert daemon.controllers["garage"].caps.min_current_a == 7.0  # not the schedule's
    finally:
        daemon.stop()


def _commands(tmp_path: Path, broker: Any, **overrides: Any) -> tuple[Commands, Controller,
                                                                    list[tuple[str, str]]]:
    config = settings(tmp_path, broker, **overrides)
    sent: list[tuple[str, str]] = []
    commands = Commands(config, lambda t, p: sent.append((t, p)), Metrics(["garage"], []),
                        lambda: None)
    caps = config.chargers[0].capabilities()
    controller = load_preset(config.policy.preset).controller(caps, config.policy.mode)
    return commands, controller, sent


def test_a_boost_ends_by_itself_and_the_config_wins_over_saved_commands(
        tmp_path: Path) -> None:
    class NoBroker:
        host, port = "127.0.0.1", 1

    commands, controller, sent = _commands(tmp_path, NoBroker())
    now_s = 1_000_000.0
    commands.offer("divert/garage/boost/set", b"2", False)
    commands.offer("divert/garage/min_current/set", b"8", False)
    assert commands.drain(now_s, {"garage": controller}, Mode.SOLAR, None)
    assert controller.mode is Mode.FAST and controller.caps.min_current_a == 8.0
    commands.drain(now_s + 119, {"garage": controller}, Mode.SOLAR, None)
    assert controller.mode is Mode.FAST
    commands.drain(now_s + 120, {"garage": controller}, Mode.SOLAR, None)
    assert controller.mode is Mode.SOLAR  # back to the mode in force before
    assert sent == []
    commands.offer("divert/garage/mode/set", b"off", False)
    commands.drain(now_s, {"garage": controller}, Mode.SOLAR, None)
    saved = json.loads(json.dumps(commands.to_state()))

    same, controller, _ = _commands(tmp_path, NoBroker())
    same.restore(saved)
    same.settle("garage", controller, Mode.SOLAR, None, now_s)
    assert controller.mode is Mode.OFF and controller.caps.min_current_a == 8.0

    # [policy] mode changed in the config: it ends the mode command, not the current one.
    other_mode, controller, _ = _commands(tmp_path, NoBroker(),
                                          policy={"preset": "balanced", "mode": "min-solar"})
    other_mode.restore(saved)
    other_mode.settle("garage", controller, Mode.MIN_SOLAR, None, now_s)
    assert controller.mode is Mode.MIN_SOLAR and controller.caps.min_current_a == 8.0

    # The charger's range changed: it ends the current commands, not the mode.
    other_range, controller, _ = _commands(tmp_path, NoBroker(), chargers=[
        {"name": "garage", "type": "simulated", "min_current_a": 6, "max_current_a": 32}])
    other_range.restore(saved)
    other_range.settle("garage", controller, Mode.SOLAR, None, now_s)
    assert controller.mode is Mode.OFF and controller.caps.min_current_a == 6.0

    # Garbage in the section is dropped, never fatal.
    broken, controller, _ = _commands(tmp_path, NoBroker())
    broken.restore({"config_mode": "solar", "chargers": {"garage": {"mode": "turbo"}}})
    broken.restore({"chargers": 5})
    assert repr(broken.overrides["garage"]) == repr(_commands(tmp_path, NoBroker())[0]
                                                    .overrides["garage"])


def test_saved_commands_beyond_a_float_are_dropped(tmp_path: Path) -> None:
    # Found by the fuzz harness (issue 14): OverflowError out of restore stopped the start.
    class NoBroker:
        host, port = "127.0.0.1", 1

    for entry in ({"min_current_a": 10**400, "config_range_a": [6, 16]},
                  {"config_range_a": [10**400, 16]}):
        commands, _, _ = _commands(tmp_path, NoBroker())
        commands.restore({"config_mode": "solar", "chargers": {"garage": entry}})
        assert commands.to_state()["chargers"] == {}
