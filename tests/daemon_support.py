"""Helpers for end-to-end tests of the daemon (also for driver tests): a config for the
mosquitto fixture, a publishing client, reading a retained topic, waiting on a condition
with a deadline, and a loopback HTTP server that answers every request alike."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chargers.simulated import SimulatedCharger
from divert.config import Settings, validate

T = TypeVar("T")

# Tracks the surplus at once and lets the relay cycle freely: tests see each decision at once.
FAST_PRESET = """\
[policy]
kind = "surplus"
import_weight = 1000.0
level_tau_s = 0.0
slow_tau_s = 0.0
start_hold_s = 0.0
bridge_s = 0.0
[relay]
min_on_s = 0
min_off_s = 0
max_starts_per_hour = 60
max_starts_per_day = 1000
min_phase_switch_s = 0
phase_tau_s = 0
"""


def config(tmp_path: Path, broker: Any, **overrides: Any) -> dict[str, Any]:
    """A config dict: broker, grid feed `home/grid` (not seeing the EV, so a fixed value
    means a fixed surplus: −grid), a fast preset, one simulated charger `garage` (6–16 A,
    230 V, 1 phase), state in tmp_path, no metrics server. Top-level keys in `overrides`
    replace the defaults."""
    preset = tmp_path / "fast.toml"
    preset.write_text(FAST_PRESET)
    data: dict[str, Any] = {
        "interval_s": 0.5,
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "divert-test",
                 "keepalive_s": 5},
        "feeds": {"grid": {"topic": "home/grid", "max_age_s": 30, "includes_ev": False}},
        "policy": {"preset": str(preset), "mode": "solar"},
        "chargers": [{"name": "garage", "type": "simulated"}],
        "metrics": {"listen": ""},
        "state": {"path": str(tmp_path / "state.json")},
    }
    data.update(overrides)
    return data


def toml_text(data: dict[str, Any]) -> str:
    """Just enough TOML for the test configs (tables, arrays of tables, scalars)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)

    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        for k, v in body.items():
            if not isinstance(v, dict | list):
                lines.append(f"{k} = {value(v)}")
        for k, v in body.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                lines.append(f"[{name}]")
                table(name, v)
            elif isinstance(v, list):
                for item in v:
                    lines.append(f"[[{name}]]")
                    table(name, item)

    table("", data)
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == data
    return text


def settings(tmp_path: Path, broker: Any, **overrides: Any) -> Settings:
    return validate(config(tmp_path, broker, **overrides), Path("test.toml"))


def simulated(daemon: Any, name: str = "garage") -> SimulatedCharger:
    """The daemon's simulated charger `name`."""
    charger = daemon.chargers[name]
    assert isinstance(charger, SimulatedCharger)
    return charger


def wait_for(condition: Callable[[], T], timeout_s: float = 10.0, what: str = "") -> T:
    """Poll until `condition()` is truthy; its value, or AssertionError at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


class Publisher:
    """A plain MQTT client on the test broker."""

    def __init__(self, broker: Any) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def until(self, topic: str, payload: str | bytes, condition: Callable[[], T],
              timeout_s: float = 10.0, what: str = "") -> T:
        """Publish every 0.2 s until `condition()` holds (covers a subscription that is not
        active yet, or a broker that is coming back)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.client.publish(topic, payload, qos=0)  # dropped while disconnected
            try:
                return wait_for(condition, 0.2)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what or condition}") from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker: Any, topic: str, timeout_s: float = 5.0) -> str:
    """The retained payload on `topic`, read by a fresh client."""
    got: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-reader")
    client.on_message = lambda c, u, msg: got.append(msg.payload.decode())
    client.connect(broker.host, broker.port)
    client.subscribe(topic)
    client.loop_start()
    try:
        return wait_for(lambda: got and got[-1], timeout_s, f"a retained message on {topic}")
    finally:
        client.disconnect()
        client.loop_stop()


@contextmanager
def http_answering(status: int, headers: dict[str, str], body: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 that answers every GET and POST with this reply; its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Listener:
    """A client subscribed to `topic_filter`, keeping every message (newest last)."""

    def __init__(self, broker: Any, topic_filter: str) -> None:
        self.messages: list[tuple[str, str, bool]] = []  # topic, payload, retained
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload.decode(errors="replace"),
                                  bool(msg.retain)))

    def on(self, topic: str) -> list[str]:
        """The payloads seen on `topic`, oldest first."""
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def latest(self) -> dict[str, str]:
        """Each topic's last payload."""
        with self._lock:
            return {t: p for t, p, _ in self.messages}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_all(broker: Any, topic_filter: str, quiet_s: float = 0.3) -> dict[str, str]:
    """Every retained message under `topic_filter`, read by a fresh client once none has
    come for `quiet_s`."""
    listener = Listener(broker, topic_filter)
    try:
        seen = -1
        while seen != len(listener.messages):
            seen = len(listener.messages)
            time.sleep(quiet_s)
        return {t: p for t, p, kept in listener.messages if kept and p}
    finally:
        listener.close()
