"""Home Assistant MQTT discovery: one device per charger and one for the site.

Configs are retained on `<prefix>/<component>/<node>/<object>/config`, where `<node>` is the
base topic made safe (`divert`). They are published at every connect and whenever Home
Assistant announces itself (`<prefix>/status` = `online`). divert subscribes to its own
node's configs: one it no longer has (a charger removed from the config, or a control gone
with `allow_commands = false`) is cleared with an empty retained message, and so is the
retained state topic it pointed at. Every entity follows `<base_topic>/status`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from divert import __version__
from divert.config import Settings
from divert.core.modes import Mode
from divert.daemon.feeds import specs
from divert.daemon.mqtt import MqttLink

log = logging.getLogger(__name__)

BOOST_PRESS_MIN = 60  # what the boost button asks for

Entity = tuple[str, str, str, dict[str, Any]]  # component, key, name, extra config

_POWER = {"device_class": "power", "unit_of_measurement": "W", "state_class": "measurement"}
_CURRENT = {"device_class": "current", "unit_of_measurement": "A",
            "state_class": "measurement"}
_ENERGY = {"device_class": "energy", "unit_of_measurement": "kWh",
           "state_class": "total_increasing"}
_BOOL = {"payload_on": "true", "payload_off": "false"}
_DIAGNOSTIC = {"entity_category": "diagnostic"}


def node_id(base_topic: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", base_topic)


def _charger_entities(settings: Settings, min_a: float, max_a: float,
                      step_a: float) -> list[Entity]:
    entities: list[Entity] = [
        ("sensor", "power_w", "Power", _POWER),
        ("sensor", "setpoint_a", "Setpoint", _CURRENT),
        ("binary_sensor", "charging", "Charging", {**_BOOL, "device_class": "battery_charging"}),
        ("binary_sensor", "connected", "Connected",
         {**_BOOL, "device_class": "connectivity", **_DIAGNOSTIC}),
        ("sensor", "reason", "Reason", {"icon": "mdi:message-text-outline"}),
        ("sensor", "reason_code", "Reason code", _DIAGNOSTIC),
        ("sensor", "phases", "Phases", _DIAGNOSTIC),
        ("sensor", "starts_today", "Starts today",
         {"state_class": "total_increasing", "icon": "mdi:counter"}),
        ("sensor", "starts_left_hour", "Starts left this hour",
         {"state_class": "measurement", "icon": "mdi:counter"}),
        ("sensor", "starts_left_day", "Starts left in 24 h",
         {"state_class": "measurement", "icon": "mdi:counter"}),
        ("sensor", "energy_from_surplus_today_kwh", "Energy from surplus today", _ENERGY),
        ("sensor", "energy_from_grid_today_kwh", "Energy from grid today", _ENERGY),
        ("sensor", "energy_from_surplus_total_kwh", "Energy from surplus", _ENERGY),
        ("sensor", "energy_from_grid_total_kwh", "Energy from grid", _ENERGY),
        ("sensor", "boost_until", "Boost until", {"device_class": "timestamp"}),
        ("sensor", "share_w", "Surplus share", _POWER),
    ]
    if not settings.mqtt.allow_commands:
        return [*entities, ("sensor", "mode", "Mode", {}),
                ("sensor", "min_current_a", "Minimum current", _CURRENT),
                ("sensor", "max_current_a", "Maximum current", _CURRENT)]
    number = {"device_class": "current", "unit_of_measurement": "A", "min": min_a,
              "max": max_a, "step": step_a, "mode": "box"}
    return [*entities,
            ("select", "mode", "Mode", {"options": [m.value for m in Mode]}),
            ("number", "min_current_a", "Minimum current", number),
            ("number", "max_current_a", "Maximum current", number),
            ("button", "boost", f"Boost {BOOST_PRESS_MIN} min",
             {"payload_press": str(BOOST_PRESS_MIN), "icon": "mdi:rocket-launch"})]


_COMMAND_OF = {"mode": "mode", "min_current_a": "min_current", "max_current_a": "max_current",
               "boost": "boost"}


def configs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every discovery config: topic → payload."""
    mqtt = settings.mqtt
    base, node = mqtt.base_topic, node_id(mqtt.base_topic)
    common = {"availability_topic": f"{base}/status", "payload_available": "online",
              "payload_not_available": "offline"}
    site_id = f"{node}_site"
    out: dict[str, dict[str, Any]] = {}

    def add(device: dict[str, Any], obj: str, topic: str, entity: Entity) -> None:
        component, key, name, extra = entity
        config = {"name": name, "unique_id": f"{node}_{obj}_{key}", "device": device,
                  **common, **extra}
        if component == "button":
            config["command_topic"] = f"{topic}/{_COMMAND_OF[key]}/set"
        else:
            config["state_topic"] = f"{topic}/{key}"
        if component in ("select", "number"):
            config["command_topic"] = f"{topic}/{_COMMAND_OF[key]}/set"
        out[f"{mqtt.discovery_prefix}/{component}/{node}/{obj}_{key}/config"] = config

    site_device = {"identifiers": [site_id], "name": "divert site", "manufacturer": "divert",
                   "model": "solar surplus", "sw_version": __version__}
    site: list[Entity] = [
        ("sensor", "surplus_w", "Surplus", _POWER), ("sensor", "grid_w", "Grid", _POWER),
        ("sensor", "solar_w", "Solar", _POWER), ("sensor", "mode", "Mode", {}),
        ("binary_sensor", "limited", "Site limit reached", {**_BOOL, "device_class": "problem"}),
        ("sensor", "limit_w", "Site import limit", {**_POWER, "state_class": "measurement"})]
    site += [("sensor", f"feed_{spec.name}", f"Feed {spec.name}",
              {"device_class": "enum", "options": ["ok", "stale", "missing"], **_DIAGNOSTIC})
             for spec in specs(settings.feeds)]
    for entity in site:
        add(site_device, "site", f"{base}/site", entity)
    for charger in settings.chargers:
        caps = charger.capabilities()
        device = {"identifiers": [f"{node}_{charger.name}"], "name": f"divert {charger.name}",
                  "manufacturer": "divert", "model": charger.type, "sw_version": __version__,
                  "via_device": site_id}
        for entity in _charger_entities(settings, caps.min_current_a, caps.max_current_a,
                                        caps.step_a):
            add(device, charger.name, f"{base}/{charger.name}", entity)
    return out


class Discovery:
    """Publishes the configs and clears the ones divert no longer has."""

    def __init__(self, settings: Settings, mqtt: MqttLink) -> None:
        prefix = settings.mqtt.discovery_prefix
        self.base = settings.mqtt.base_topic
        wanted = configs(settings)
        self.configs = {topic: json.dumps(c, sort_keys=True) for topic, c in wanted.items()}
        self._states = {str(c["state_topic"]) for c in wanted.values() if "state_topic" in c}
        self._publish: Callable[..., None] = mqtt.publish
        mqtt.route(f"{prefix}/+/{node_id(self.base)}/+/config", self._seen)
        mqtt.route(f"{prefix}/status", self._home_assistant)
        mqtt.on_connect(self.publish)

    def publish(self) -> None:
        for topic, payload in self.configs.items():
            self._publish(topic, payload, retain=True, qos=1)

    def _home_assistant(self, topic: str, payload: bytes, retained: bool) -> None:
        if payload == b"online":  # Home Assistant (re)started: it may have lost them
            self.publish()

    def _seen(self, topic: str, payload: bytes, retained: bool) -> None:
        if not payload or topic in self.configs:
            return
        log.info("home assistant: clearing %s (no longer configured)", topic)
        self._publish(topic, "", retain=True, qos=1)
        try:
            state = json.loads(payload).get("state_topic")
        except (ValueError, AttributeError):
            return
        if isinstance(state, str) and state.startswith(f"{self.base}/") and \
                state not in self._states:
            self._publish(state, "", retain=True, qos=1)
