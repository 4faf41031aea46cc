"""Home Assistant discovery against a real mosquitto: valid JSON with the keys Home Assistant
requires for each component type, one device per charger and one for the site, every entity
on the availability topic, controls that work, and configs of removed chargers cleared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon_support import Publisher, retained_all, settings, wait_for

from chargers.simulated import SimulatedCharger
from divert.core.modes import Mode
from divert.daemon.service import Daemon

# What Home Assistant's MQTT platforms refuse a config without (its schemas), and what
# divert promises on top: a unique id and a device (needed for the device registry), and
# availability.
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
            "select": {"command_topic", "options"}, "number": {"command_topic"},
            "button": {"command_topic"}}
EVERY = {"name", "unique_id", "device", "availability_topic", "payload_available",
         "payload_not_available"}
TWO = [{"name": "garage", "type": "simulated"},
       {"name": "carport", "type": "simulated", "phases": 3, "max_current_a": 32}]


def _configs(broker: Any, count: int) -> dict[str, dict[str, Any]]:
    found: dict[str, str] = {}

    def enough() -> bool:
        found.clear()
        found.update(retained_all(broker, "homeassistant/#", 0.1))
        return len(found) == count

    wait_for(enough, what=f"{count} discovery configs")
    return {topic: json.loads(payload) for topic, payload in found.items()}


def test_discovery_configs_are_what_home_assistant_needs(tmp_path: Path, mosquitto: Any,
                                                         publisher: Publisher) -> None:
    daemon = Daemon(settings(tmp_path, mosquitto, chargers=TWO))
    daemon.start()
    try:
        expected = len(daemon.publishers.discovery.configs)  # type: ignore[union-attr]
        configs = _configs(mosquitto, expected)
        devices: dict[str, set[str]] = {}
        for topic, config in configs.items():
            prefix, component, node, _, leaf = topic.split("/")
            assert (prefix, node, leaf) == ("homeassistant", "divert", "config")
            assert REQUIRED[component] | EVERY <= config.keys(), topic
            assert config["availability_topic"] == "divert/status"
            (identifier,) = config["device"]["identifiers"]
            devices.setdefault(identifier, set()).add(config["unique_id"])
            if "state_topic" in config:
                assert config["state_topic"].startswith("divert/")
            if component == "sensor" and config.get("device_class") == "energy":
                assert (config["unit_of_measurement"], config["state_class"]) == \
                    ("kWh", "total_increasing")
        assert set(devices) == {"divert_site", "divert_garage", "divert_carport"}
        assert len({c["unique_id"] for c in configs.values()}) == len(configs)
        garage = {topic.split("/")[3]: c for topic, c in configs.items()
                  if c["device"]["identifiers"] == ["divert_garage"]}
        assert garage["garage_mode"]["options"] == [m.value for m in Mode]
        assert garage["garage_power_w"]["device_class"] == "power"
        assert garage["garage_power_w"]["unit_of_measurement"] == "W"
        assert garage["garage_setpoint_a"]["device_class"] == "current"
        assert garage["garage_charging"]["payload_on"] == "true"
        assert garage["garage_starts_left_hour"]["state_class"] == "measurement"
        assert (garage["garage_max_current_a"]["min"], garage["garage_max_current_a"]["max"]) \
            == (6, 16)
        carport = {topic.split("/")[3]: c for topic, c in configs.items()
                   if c["device"]["identifiers"] == ["divert_carport"]}
        assert carport["carport_max_current_a"]["max"] == 32
        # Every state topic a config names is published (retained), and the controls work.
        states = retained_all(mosquitto, "divert/#", 0.1)
        missing = {c["state_topic"] for c in configs.values() if "state_topic" in c} - \
            set(states)
        assert not missing
        sim = daemon.chargers["garage"]
        assert isinstance(sim, SimulatedCharger)
        button = garage["garage_boost"]
        publisher.until(button["command_topic"], button["payload_press"], lambda: sim.enabled,
                        what="the boost button to start a boost")
        select = garage["garage_mode"]
        publisher.publish(select["command_topic"], "off")
        wait_for(lambda: not sim.enabled, what="the mode select to stop it")
    finally:
        daemon.stop()

    # Without the carport, and without commands: its configs go, controls become sensors.
    mqtt = {"host": mosquitto.host, "port": mosquitto.port, "allow_commands": False}
    daemon = Daemon(settings(tmp_path, mosquitto, chargers=TWO[:1], mqtt=mqtt))
    daemon.start()
    try:
        left = _configs(mosquitto, len(daemon.publishers.discovery.configs))  # type: ignore
        assert not [t for t in left if "carport" in t]
        assert {t.split("/")[1] for t in left} == {"sensor", "binary_sensor"}
        assert left["homeassistant/sensor/divert/garage_mode/config"]["state_topic"] == \
            "divert/garage/mode"
        # The removed charger's retained state goes with its configs.
        wait_for(lambda: not [t for t in retained_all(mosquitto, "divert/#", 0.1)
                              if t.startswith("divert/carport/")], what="carport's state gone")
        # Home Assistant restarting (its birth message) gets the configs again.
        publisher.publish("homeassistant/sensor/divert/garage_mode/config", "", retain=True)
        publisher.publish("homeassistant/status", "online")
        _configs(mosquitto, len(left))
    finally:
        daemon.stop()
