"""Rigs: an emulated OpenEVSE on each transport with a driver pointed at it.

Every controller a rig creates is checked after its test: each `$SC` the driver sent must
carry the flag its firmware documents as volatile (a current written to EEPROM on every
change would wear it out).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, free_port

from chargers.openevse import rapi
from chargers.openevse.config import OpenEVSEConfig
from chargers.openevse.driver import OpenEVSECharger
from chargers.openevse.emulator import EmulatedEvse, HttpEmulator, MqttEmulator, SerialEmulator
from chargers.openevse.transports import make_transport
from divert.config import MqttConfig

TRANSPORTS = ("serial", "http", "mqtt")


@dataclass
class Rig:
    """One emulated controller, the front end it speaks through, and a config for it."""

    controller: EmulatedEvse
    front: SerialEmulator | HttpEmulator | MqttEmulator
    config: OpenEVSEConfig
    mqtt: MqttConfig

    def charger(self, **changes: Any) -> OpenEVSECharger:
        config = self.config.model_copy(update=changes) if changes else self.config
        return OpenEVSECharger(config, make_transport(config, self.mqtt))

    @property
    def config_entry(self) -> dict[str, Any]:
        """The `[[chargers]]` table for this rig, as a config file would hold it."""
        return self.config.model_dump(exclude_none=True)


RigFactory = Callable[..., Rig]
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One mosquitto for the package's tests; rigs keep apart by topic and client id.

    Session-scoped so it outlives every rig: a paho client whose broker vanished first takes
    its reconnect back-off to stop. Tests that stop a broker use `mosquitto` instead."""
    conf = tmp_path_factory.mktemp("broker") / "mosquitto.conf"
    port = free_port()
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    running = Broker("127.0.0.1", port, Path(conf))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def driven() -> list[EmulatedEvse]:
    """Controllers a driver talks to in this test."""
    return []


@pytest.fixture(autouse=True)
def _every_set_current_is_volatile(driven: list[EmulatedEvse]) -> Iterator[None]:
    yield
    for controller in driven:
        sent = controller.set_current_commands()
        flag = rapi.volatile_flag(rapi.Version(controller.firmware, controller.protocol))
        assert all(len(p) == 2 and p[1] == flag for p in sent), f"$SC without {flag}: {sent}"
        assert controller.eeprom_writes == 0


@pytest.fixture
def make_rig(request: pytest.FixtureRequest, driven: list[EmulatedEvse]) -> Iterator[RigFactory]:
    """`make_rig(transport, controller=..., **config_keys)`; stops every front end it made.

    MQTT rigs use the session `broker` unless given `broker=`."""
    fronts: list[SerialEmulator | HttpEmulator | MqttEmulator] = []

    def make(transport: str, controller: EmulatedEvse | None = None, *,
             auth: tuple[str, str] | None = None, broker: Broker | None = None,
             **keys: Any) -> Rig:
        controller = controller or EmulatedEvse()
        driven.append(controller)
        number = next(_numbers)
        mqtt = MqttConfig()
        front: SerialEmulator | HttpEmulator | MqttEmulator
        entry: dict[str, Any] = {"name": f"evse-{transport}-{number}", "type": "openevse",
                                 "transport": transport, "max_current_a": 32,
                                 "timeout_s": 0.5, "retries": 2}
        if transport == "serial":
            front = SerialEmulator(controller)
            entry["device"] = front.path
        elif transport == "http":
            front = HttpEmulator(controller, *(auth or (None, None)))
            entry["url"] = front.url
            if auth:
                entry["username"], entry["password"] = auth
        else:
            broker = broker or request.getfixturevalue("broker")
            mqtt = MqttConfig(host=broker.host, port=broker.port, client_id=f"test{number}")
            topic = f"garage{number}/evse"
            front = MqttEmulator(controller, broker.host, broker.port, topic)
            entry["base_topic"] = topic
        fronts.append(front)
        entry.update(keys)
        return Rig(controller, front, OpenEVSEConfig(**entry), mqtt)

    yield make
    for front in fronts:
        front.stop()


@pytest.fixture(params=TRANSPORTS)
def rig(request: pytest.FixtureRequest, make_rig: RigFactory) -> Rig:
    """The same emulated controller behind each of the three transports in turn."""
    return make_rig(request.param)


@pytest.fixture
def charger(rig: Rig) -> Iterator[OpenEVSECharger]:
    """A driver connected to `rig`, closed afterwards."""
    driver = rig.charger()
    driver.connect()
    yield driver
    driver.close()
