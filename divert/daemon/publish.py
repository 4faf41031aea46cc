"""The publishers: everything that shows a Snapshot.

At the end of each cycle the daemon hands its Snapshot to `Publishers.offer`: the retained MQTT
state topics, the in-memory history behind the status page's chart, the snapshot-derived
metrics, and the latest snapshot that `/api/state` serves.

MQTT state, retained under `<base_topic>/`: per charger `<charger>/<field>` and per site
`site/<field>` (see `state_topics`). A topic is published when its value changes, at most once
per `MIN_INTERVAL_S` (a change inside that second goes out when it is over), and all of them
at every connect. Unknown values are `None` (what Home Assistant reads as unknown), booleans
`true`/`false`, times ISO 8601 in UTC.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from divert.config import Settings
from divert.daemon.discovery import Discovery
from divert.daemon.metrics import Metrics, Page
from divert.daemon.mqtt import MqttLink
from divert.daemon.page import History, pages
from divert.daemon.snapshot import Snapshot

MIN_INTERVAL_S = 1.0


def _num(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "None"
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _flag(value: bool | None) -> str:
    return "None" if value is None else ("true" if value else "false")


def _when(time_s: float | None) -> str:
    if time_s is None:
        return "None"
    return datetime.fromtimestamp(time_s, UTC).isoformat(timespec="seconds")


def state_topics(base: str, snap: Snapshot) -> dict[str, str]:
    """Topic → payload for everything a Snapshot says."""
    site = snap.site
    out = {f"{base}/site/mode": str(snap.mode),
           f"{base}/site/surplus_w": _num(site.surplus_w, 0),
           f"{base}/site/grid_w": _num(site.grid_w, 0),
           f"{base}/site/solar_w": _num(site.solar_w, 0),
           f"{base}/site/limited": _flag(site.limited),
           f"{base}/site/limit_w": _num(site.limit_w, 0)}
    out.update({f"{base}/site/feed_{f.name}": f.health for f in site.feeds})
    for c in snap.chargers:
        t = f"{base}/{c.name}"
        out.update({
            f"{t}/mode": str(c.mode), f"{t}/setpoint_a": _num(c.setpoint_a, 1),
            f"{t}/power_w": _num(c.power_w, 0), f"{t}/charging": _flag(c.charging),
            f"{t}/connected": _flag(c.connected), f"{t}/reason": c.reason,
            f"{t}/reason_code": "None" if c.code is None else str(c.code),
            f"{t}/phases": str(c.phases), f"{t}/min_current_a": _num(c.min_current_a, 1),
            f"{t}/max_current_a": _num(c.max_current_a, 1),
            f"{t}/boost_until": _when(c.boost_until_s),
            f"{t}/starts_today": str(c.starts_today),
            f"{t}/starts_left_hour": str(c.starts_left_hour),
            f"{t}/starts_left_day": str(c.starts_left_day),
            f"{t}/energy_from_surplus_today_kwh": _num(c.energy_from_surplus_today_kwh, 3),
            f"{t}/energy_from_grid_today_kwh": _num(c.energy_from_grid_today_kwh, 3),
            f"{t}/energy_from_surplus_total_kwh": _num(c.energy_from_surplus_total_kwh, 3),
            f"{t}/energy_from_grid_total_kwh": _num(c.energy_from_grid_total_kwh, 3),
            f"{t}/share_w": _num(c.share_w, 0)})
    return out


class StatePublisher:
    """Publishes changed topics, each at most once per `min_interval_s`; thread-safe (the
    control loop offers, paho's thread republishes on connect, a timer sends late ones)."""

    def __init__(self, publish: Callable[[str, str], None],
                 clock: Callable[[], float] = time.monotonic,
                 min_interval_s: float = MIN_INTERVAL_S) -> None:
        self._publish = publish
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._wanted: dict[str, str] = {}
        self._sent: dict[str, tuple[str, float]] = {}  # topic → payload, when
        self._timer: threading.Timer | None = None
        self._closed = False

    def offer(self, topics: dict[str, str]) -> None:
        with self._lock:
            self._wanted = topics
            self._send_due()

    def republish(self) -> None:
        """Everything again (a new connection: the broker may have lost retained ones)."""
        with self._lock:
            now_s = self._clock()
            for topic, payload in self._wanted.items():
                self._publish(topic, payload)
                self._sent[topic] = (payload, now_s)

    def close(self) -> None:
        """Send what is still held back by the rate limit, then stop."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            now_s = self._clock()
            for topic, payload in self._wanted.items():
                if self._sent.get(topic, ("",))[0] != payload:
                    self._publish(topic, payload)
                    self._sent[topic] = (payload, now_s)

    def _send_due(self) -> None:
        now_s = self._clock()
        wait_s = math.inf
        for topic, payload in self._wanted.items():
            sent = self._sent.get(topic)
            if sent is not None and sent[0] == payload:
                continue
            if sent is not None and now_s - sent[1] < self._min_interval_s:
                wait_s = min(wait_s, sent[1] + self._min_interval_s - now_s)
                continue
            self._publish(topic, payload)
            self._sent[topic] = (payload, now_s)
        if wait_s < math.inf and self._timer is None and not self._closed:
            self._timer = threading.Timer(wait_s, self._late)
            self._timer.daemon = True
            self._timer.start()

    def _late(self) -> None:
        with self._lock:
            self._timer = None
            if not self._closed:
                self._send_due()


class Publishers:
    """Everything that shows the daemon's Snapshots."""

    def __init__(self, settings: Settings, mqtt: MqttLink, metrics: Metrics) -> None:
        self.base = settings.mqtt.base_topic
        self.latest: Snapshot | None = None
        self.history = History()
        self._metrics = metrics
        self.discovery = (Discovery(settings, mqtt) if settings.mqtt.discovery_prefix
                          else None)
        self.state = StatePublisher(lambda topic, payload: mqtt.publish(topic, payload,
                                                                        retain=True))
        mqtt.on_connect(self.state.republish)

    def offer(self, snap: Snapshot) -> None:
        self.latest = snap
        self.history.add(snap)
        for c in snap.chargers:
            self._metrics.starts_left.labels(c.name, "hour").set(c.starts_left_hour)
            self._metrics.starts_left.labels(c.name, "day").set(c.starts_left_day)
        self.state.offer(state_topics(self.base, snap))

    def pages(self) -> dict[str, Page]:
        return pages(lambda: self.latest, self.history)

    def close(self) -> None:
        self.state.close()
