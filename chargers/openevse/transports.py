"""The ways RAPI lines reach an OpenEVSE controller. A transport only moves lines.

* serial: the controller's UART, 115200 8N1; lines end in CR. Sequence ids are usable.
* http: the WiFi module's `GET /r?json=1&rapi=<command>`; the reply comes in the response.
* mqtt: the WiFi module's `<base>/rapi/in/$XX` (payload: the parameters) → `<base>/rapi/out`.

Framing, checksums, retries and reply matching live in the driver, the same for all three.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import select
import termios
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import paho.mqtt.client as mqtt
import serial

from chargers.openevse.config import OpenEVSEConfig
from divert.netconf import MqttError, configure, new_client

if TYPE_CHECKING:
    from divert.netconf import MqttConfig

log = logging.getLogger(__name__)

BAUD_RATE = 115200
_MAX_BUFFER = 4096  # bytes kept while waiting for a CR; a longer run without one is noise


class TransportError(Exception):
    """The line could not be sent: port gone, HTTP error, broker not connected."""


class Transport(Protocol):
    """Moves RAPI lines (without the CR) to the controller and back."""

    description: str  # for log lines, e.g. "serial /dev/ttyUSB0"
    checksum: bool  # commands go out with our XOR checksum
    sequence_ids: bool  # commands may carry sequence ids (the controller sees our frame)

    def open(self) -> None: ...

    def send(self, line: str) -> None:
        """Send one command line; raises TransportError."""
        ...

    def receive(self, timeout_s: float) -> str | None:
        """The next line from the controller, or None after `timeout_s`."""
        ...

    def discard_pending(self) -> None:
        """Drop lines that arrived unasked (late replies, notifications) before a command."""
        ...

    def close(self) -> None: ...


class SerialTransport:
    """The controller's serial port. One command in flight is the driver's job (a lock)."""

    checksum = True
    sequence_ids = True

    def __init__(self, device: str) -> None:
        self.device = device
        self.description = f"serial {device}"
        self._port: serial.Serial | None = None
        self._buffer = b""

    def open(self) -> None:
        self.close()
        try:
            self._port = serial.Serial(self.device, BAUD_RATE, bytesize=serial.EIGHTBITS,
                                       parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_ONE,
                                       timeout=0, write_timeout=2.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.device}: {exc}") from None

    def send(self, line: str) -> None:
        if self._port is None:
            self.open()  # reopen after an unplugged adapter came back
        assert self._port is not None
        try:
            self._port.write(line.encode("ascii") + b"\r")
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise TransportError(f"{self.device}: write failed: {exc}") from None

    def receive(self, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        while b"\r" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._port is None:
                return None
            try:
                # The port is non-blocking (timeout=0): wait on its descriptor instead of
                # reconfiguring the tty with a new timeout for every read.
                readable, _, _ = select.select([self._port.fileno()], [], [], remaining)
                chunk = self._port.read(max(1, self._port.in_waiting)) if readable else b""
            except (serial.SerialException, OSError) as exc:
                log.warning("%s: read failed: %s", self.device, exc)
                self.close()
                return None
            if not chunk:
                continue
            self._buffer = (self._buffer + chunk)[-_MAX_BUFFER:]
        raw, _, self._buffer = self._buffer.partition(b"\r")
        return raw.decode("ascii", errors="replace")

    def discard_pending(self) -> None:
        self._buffer = b""
        if self._port is not None:
            try:
                self._port.reset_input_buffer()
            # termios.error: the flush of an adapter that was unplugged (EIO); not an OSError
            except (serial.SerialException, OSError, termios.error):
                self.close()

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            self._port = None
        self._buffer = b""


_REPLY_IN_HTML = re.compile(r"\$(?:OK|NK)[^<>\"\r\n]*")


def reply_from_body(body: str) -> tuple[str | None, str | None]:
    """The RAPI reply in a `/r` response body, or an error the WiFi module reported.

    With `json=1` current modules answer `{"cmd": …, "ret": "$OK …"}` or `{"cmd": …,
    "error": "RAPI_RESPONSE_TIMEOUT"}`; older ones ignore `json` and send an HTML page with
    the reply after `&gt;`."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        data = None
    if isinstance(data, dict):
        ret, error = data.get("ret"), data.get("error")
        if isinstance(ret, str):
            return ret, None
        return None, str(error) if error is not None else f"no reply in {body[:80]!r}"
    found = _REPLY_IN_HTML.findall(body)
    if found:
        return found[-1].strip(), None
    return None, f"no reply in {body[:80]!r}"


class HttpTransport:
    """`GET <url>/r?json=1&rapi=<command>` on the OpenEVSE WiFi module (httpx)."""

    checksum = True  # as the module's documentation recommends; the controller checks it
    sequence_ids = False  # the module adds its own sequence id on the serial side

    def __init__(self, url: str, username: str | None, password: str | None,
                 timeout_s: float) -> None:
        if logging.getLogger("httpx").level == logging.NOTSET:
            logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll
        self.url = url.rstrip("/")
        self.description = f"http {self.url}"
        self._auth = httpx.BasicAuth(username, password) if username and password else None
        self._timeout_s = timeout_s
        self._client: httpx.Client | None = None
        self._replies: deque[str] = deque()

    def open(self) -> None:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, auth=self._auth,
                                        timeout=self._timeout_s)

    def send(self, line: str) -> None:
        self.open()
        assert self._client is not None
        try:
            response = self._client.get("/r", params={"json": "1", "rapi": line})
        except httpx.HTTPError as exc:
            raise TransportError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 401:
            raise TransportError(f"{self.url}: HTTP 401 unauthorized: check username and "
                                 f"password")
        # Decoded here: httpx's `.text` raises for a charset such as utf-32 or idna.
        reply, error = reply_from_body(response.content.decode("utf-8", "replace"))
        if response.status_code == 400:  # WiFi firmware v4 refuses RAPI it arbitrates itself
            raise TransportError(f"{self.url}: the WiFi module blocked {line} ({error}): see "
                                 f"its claims/override API")
        if response.status_code not in (200, 500):  # 500 carries the module's RAPI error
            raise TransportError(f"{self.url}: HTTP {response.status_code} for /r")
        if reply is None:
            log.warning("%s: no RAPI reply to %s: %s", self.url, line, error)
        else:
            self._replies.append(reply)

    def receive(self, timeout_s: float) -> str | None:
        return self._replies.popleft() if self._replies else None

    def discard_pending(self) -> None:
        self._replies.clear()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._replies.clear()


class MqttTransport:
    """The WiFi module's RAPI over MQTT, through the broker in `[mqtt]`, with its own client.

    Replies on `<base>/rapi/out` carry no sequence id, so a reply is matched by order: one
    command in flight, and anything that arrived before a command is discarded."""

    checksum = False  # the topic names the command; the module frames and checks it
    sequence_ids = False

    def __init__(self, settings: MqttConfig, base_topic: str, client_name: str,
                 timeout_s: float) -> None:
        self._settings = settings
        self._base = base_topic
        self.description = f"mqtt {settings.host}:{settings.port} {base_topic}/rapi"
        self._client_id = f"{settings.client_id}-rapi-{client_name}"
        self._connect_timeout_s = max(timeout_s, 5.0)
        self._replies: queue.Queue[str] = queue.Queue()
        self._subscribed = threading.Event()
        self._client: mqtt.Client | None = None

    def _build(self) -> mqtt.Client:
        s = self._settings
        client = new_client(s, self._client_id)
        try:
            configure(client, s)
        except MqttError as exc:
            raise TransportError(str(exc)) from None
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.message_callback_add(f"{self._base}/rapi/out", self._on_reply)
        return client

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("%s: broker refused the connection: %s", self.description, reason)
            return
        client.subscribe(f"{self._base}/rapi/out", qos=0)  # again after every reconnect

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int,
                      _reasons: Any, _props: Any) -> None:
        self._subscribed.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       _reason: Any, _props: Any) -> None:
        self._subscribed.clear()

    def _on_reply(self, _client: mqtt.Client, _userdata: Any,
                  message: mqtt.MQTTMessage) -> None:
        self._replies.put(message.payload.decode("ascii", errors="replace"))

    def open(self) -> None:
        if self._client is None:
            self._client = self._build()
            self._client.connect_async(self._settings.host, self._settings.port,
                                       self._settings.keepalive_s)
            self._client.loop_start()  # paho's thread reconnects by itself from here on
        if not self._subscribed.wait(self._connect_timeout_s):
            raise TransportError(f"{self.description}: not connected to the broker")

    def send(self, line: str) -> None:
        if self._client is None or not self._subscribed.is_set():
            raise TransportError(f"{self.description}: not connected to the broker")
        command, _, params = line.partition(" ")
        info = self._client.publish(f"{self._base}/rapi/in/{command}", params, qos=0)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise TransportError(f"{self.description}: publish failed: "
                                 f"{mqtt.error_string(info.rc)}")

    def receive(self, timeout_s: float) -> str | None:
        try:
            return self._replies.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None

    def discard_pending(self) -> None:
        while True:
            try:
                self._replies.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._subscribed.clear()


def make_transport(config: OpenEVSEConfig, mqtt_settings: MqttConfig) -> Transport:
    """The transport a `[[chargers]]` entry asks for (not yet opened)."""
    if config.transport == "serial":
        assert config.device is not None  # the config model requires it
        return SerialTransport(config.device)
    if config.transport == "http":
        assert config.url is not None
        return HttpTransport(config.url, config.username, config.password, config.timeout_s)
    return MqttTransport(mqtt_settings, config.topic, config.name, config.timeout_s)
