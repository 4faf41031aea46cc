"""The daemon's MQTT connection (paho-mqtt 2.x): feed subscriptions, routed topics (commands,
Home Assistant) and availability.

paho's network thread connects, and reconnects with exponential backoff (1 s doubling to
30 s) whenever the broker goes away; every (re)connect subscribes the topics again, publishes
`online` to `<base_topic>/status` and runs the connect callbacks (which publish the retained
state). The broker publishes the retained last will `offline` when the connection dies
without a goodbye.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from divert.daemon.throttle import LogThrottle
from divert.netconf import MqttConfig, configure, new_client

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


MessageHandler = Callable[[str, bytes, bool], None]  # topic, payload, retained


class MqttLink:
    def __init__(self, config: MqttConfig, topics: list[str], on_message: MessageHandler,
                 on_connected: Callable[[bool], None] | None = None) -> None:
        self.config = config
        self.topics = topics
        self.status_topic = f"{config.base_topic}/status"
        self.connected = False
        self._on_message = on_message
        self._on_connected = on_connected
        self._connect_callbacks: list[Callable[[], None]] = []
        self._stopping = False
        self._warn = LogThrottle(log)
        self._tls: ssl.SSLContext | None = None
        self.client = new_client(config, config.client_id)
        self.client.on_connect = self._connected
        self.client.on_connect_fail = self._connect_failed
        self.client.on_disconnect = self._disconnected
        self.client.on_message = self._message
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)

    def _configure(self) -> None:
        """The settings that read files; done at start, so errors surface there."""
        self._tls = configure(self.client, self.config)

    def start(self) -> None:
        """Start connecting in the background; returns at once. Raises MqttError."""
        self._configure()
        cfg = self.config
        self._stopping = False
        self.client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        self.client.loop_start()

    def stop(self, publish_offline: bool = True, timeout_s: float = 1.0) -> None:
        """Say `offline` (if asked and connected), disconnect and stop the network thread."""
        self._stopping = True
        if publish_offline and self.connected:
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("mqtt: could not publish offline: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()
        self._set_connected(False)

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> None:
        """Send now; a QoS 0 message is dropped while disconnected (connect callbacks
        publish the current state again)."""
        self.client.publish(topic, payload, qos=qos, retain=retain)

    def route(self, topic_filter: str, handler: MessageHandler) -> None:
        """Messages matching `topic_filter` go to `handler` instead of the feed handler;
        subscribed at every connect. Call before start()."""
        self.topics.append(topic_filter)
        self.client.message_callback_add(
            topic_filter, lambda client, userdata, msg: self._dispatch(handler, msg))

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Run `callback` (on paho's thread) after every (re)connect."""
        self._connect_callbacks.append(callback)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        if self._on_connected is not None:
            self._on_connected(connected)

    def _connected(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                   reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            self._warn.warning(time.monotonic(), "mqtt: broker %s:%s refused the connection: "
                               "%s", self.config.host, self.config.port, reason)
            return
        log.info("mqtt: connected to %s:%s", self.config.host, self.config.port)
        self._warn.reset()
        if self.topics:
            client.subscribe([(topic, 0) for topic in self.topics])
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self._set_connected(True)
        for callback in self._connect_callbacks:
            try:
                callback()
            except Exception:
                log.exception("mqtt: error in a connect callback")

    def _connect_failed(self, client: mqtt.Client, userdata: Any) -> None:
        now_s = time.monotonic()
        # paho does not say why; when the warning is due, find out with a probe of our own.
        why = self._probe() if self._warn.due(now_s) else ""
        self._warn.warning(now_s, "mqtt: cannot connect to %s:%s (%s), retrying",
                           self.config.host, self.config.port, why)

    def _probe(self) -> str:
        """Why a connection to the broker fails: TCP, then the TLS handshake."""
        cfg = self.config
        try:
            with socket.create_connection((cfg.host, cfg.port), timeout=3) as sock:
                if self._tls is not None:
                    with self._tls.wrap_socket(sock, server_hostname=cfg.host):
                        pass
        except OSError as exc:
            return str(exc)
        return "it answers now"

    def _disconnected(self, client: mqtt.Client, userdata: Any,
                      flags: mqtt.DisconnectFlags, reason: ReasonCode, properties: Any) -> None:
        was_connected = self.connected
        self._set_connected(False)
        if not self._stopping and was_connected:
            log.warning("mqtt: connection to %s:%s lost (%s), reconnecting", self.config.host,
                        self.config.port, reason)

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._dispatch(self._on_message, msg)

    def _dispatch(self, handler: MessageHandler, msg: mqtt.MQTTMessage) -> None:
        # paho's thread dies on an exception from a callback; a bad message must not do that.
        try:
            handler(msg.topic, bytes(msg.payload), bool(msg.retain))
        except Exception:
            log.exception("mqtt: error handling a message on %s", msg.topic)
