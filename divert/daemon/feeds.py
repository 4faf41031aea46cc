"""MQTT feeds: each payload becomes a finite number (W, V or %) stamped with its arrival time.

A payload that is not a finite number is counted, logged at most once a minute per feed and
ignored: the feed keeps its previous value and ages towards stale. It is never read as 0.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import topic_matches_sub

from divert.config import FeedsConfig
from divert.daemon.throttle import LogThrottle
from divert.netconf import FeedConfig

log = logging.getLogger(__name__)

ERROR_LOG_INTERVAL_S = 60.0
# Power feeds ignore retained messages: a retained value is of unknown age (it may be hours
# old after a restart) and would be taken as fresh. Voltage and SoC change slowly.
SLOW_FEEDS = frozenset({"voltage", "battery_soc", "ev_soc"})


class PayloadError(ValueError):
    """A payload that does not hold a finite number where the feed expects one."""


# The one number syntax feeds accept, in text and in quoted JSON strings: ASCII digits with
# an optional sign, decimal point and exponent ("-12", "0.5", "1e3"), ASCII blanks around.
# Python's float() would also take "１２", "١٢", "1_000", "\xa012" and "nan".
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BLANKS = " \t\r\n"


def parse_number(payload: bytes, json_path: str | None = None) -> float:
    """The number in `payload`: plain text, or the value at a dotted `json_path`.

    Path parts index objects by key and lists by position (`phases.0`, ASCII digits only).
    A numeric string at the path is accepted (some devices quote numbers); booleans and null
    are not. Raises PayloadError, nothing else.
    """
    node = parse_json(payload, json_path) if json_path is not None else _text(payload)
    if isinstance(node, str):
        if not _NUMBER.fullmatch(node.strip(_BLANKS)):
            raise PayloadError(f"not a number: {_preview(node)}")
    elif isinstance(node, bool) or not isinstance(node, int | float):
        raise PayloadError(f"not a number: {_kind(node)}")
    try:
        value = float(node)
    except OverflowError:  # a JSON integer beyond a float's range
        value = math.inf
    if not math.isfinite(value):
        raise PayloadError(f"not a finite number: {_preview(str(node))}")
    return value


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8").strip(_BLANKS)
    except UnicodeDecodeError:
        raise PayloadError("not UTF-8 text") from None


def parse_json(payload: bytes, json_path: str | None = None) -> Any:
    """The JSON value in `payload`, or the one at a dotted `json_path` in it. Raises
    PayloadError, nothing else."""
    text = _text(payload)
    try:
        node = json.loads(text)
    except ValueError:
        raise PayloadError(f"not JSON: {_preview(text)}") from None
    except RecursionError:
        raise PayloadError(f"JSON nested too deeply: {_preview(text)}") from None
    if json_path:
        for key in json_path.split("."):
            node = _index(node, key, json_path)
    return node


def _index(node: Any, key: str, path: str) -> Any:
    if isinstance(node, list):
        if not (key.isascii() and key.isdigit() and len(key) < 10 and int(key) < len(node)):
            raise PayloadError(f"{path}: no list index {_preview(key)}")
        return node[int(key)]
    if isinstance(node, dict):
        if key not in node:
            raise PayloadError(f"{path}: no key {_preview(key)}")
        return node[key]
    raise PayloadError(f"{path}: {_preview(key)} is not in an object or list")


def _kind(node: Any) -> str:
    """A JSON value that is not a number, in words (never the whole value: it may be huge)."""
    if node is None or isinstance(node, bool):
        return json.dumps(node)
    return "an object" if isinstance(node, dict) else "a list"


def _preview(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


@dataclass(frozen=True)
class FeedSpec:
    """Where one value comes from and how to read it."""

    name: str  # grid, solar, load, voltage, battery, battery_soc, grid_l1…3, ev_soc,
    # ev_power_<charger>
    topic: str
    json_path: str | None = None
    scale: float = 1.0
    invert: bool = False
    max_age_s: float = 60.0


class Feed:
    """The latest value of one feed and when it arrived (monotonic s)."""

    def __init__(self, spec: FeedSpec, on_error: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.errors = 0
        self._on_error = on_error
        self._value: float | None = None
        self._at_s: float | None = None
        self._warn = LogThrottle(log, ERROR_LOG_INTERVAL_S)

    def offer(self, payload: bytes, now_s: float) -> bool:
        """Take a payload; False (and counted) when it holds no finite number."""
        spec = self.spec
        try:
            value = parse_number(payload, spec.json_path) * spec.scale
            if not math.isfinite(value):
                raise PayloadError("not a finite number after scaling")
        except PayloadError as exc:
            self._reject(str(exc), now_s)
            return False
        self._value = -value if spec.invert else value
        self._at_s = now_s
        return True

    def _reject(self, why: str, now_s: float) -> None:
        self.errors += 1
        if self._on_error is not None:
            self._on_error(self.spec.name)
        self._warn.warning(now_s, "feed %s (%s): payload ignored, %s", self.spec.name,
                           self.spec.topic, why)

    def age_s(self, now_s: float) -> float | None:
        """Seconds since the last good value; None before the first."""
        return None if self._at_s is None else max(0.0, now_s - self._at_s)

    def value(self, now_s: float) -> float | None:
        """The latest good value, or None if there is none or it is older than max_age_s."""
        age_s = self.age_s(now_s)
        if age_s is None or age_s > self.spec.max_age_s:
            return None
        return self._value


def ev_feed(charger: str) -> str:
    """The name of a charger's own meter among the feeds."""
    return f"ev_power_{charger}"


def specs(config: FeedsConfig, meters: Mapping[str, FeedConfig] | None = None
          ) -> list[FeedSpec]:
    """One spec per configured value (the battery's SoC is a feed of its own), and one per
    charger's own meter (`meters`, by charger name)."""
    out: list[FeedSpec] = []
    named = [(name, getattr(config, name)) for name in ("grid", "solar", "load", "voltage",
                                                        "battery", "grid_l1", "grid_l2",
                                                        "grid_l3", "ev_soc")]
    for name, feed in [*named, *((ev_feed(c), m) for c, m in (meters or {}).items())]:
        if feed is None:
            continue
        out.append(FeedSpec(name, feed.topic, feed.json_path, feed.scale, feed.invert,
                            feed.max_age_s))
    battery = config.battery
    if battery is not None and battery.soc_topic is not None:
        out.append(FeedSpec("battery_soc", battery.soc_topic, battery.soc_json_path,
                            max_age_s=battery.max_age_s))
    return out


class Feeds:
    """All configured feeds; thread-safe (MQTT thread writes, control thread reads)."""

    def __init__(self, config: FeedsConfig, on_error: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 meters: Mapping[str, FeedConfig] | None = None) -> None:
        self.feeds = {s.name: Feed(s, on_error) for s in specs(config, meters)}
        self._clock = clock
        self._lock = threading.Lock()

    def topics(self) -> list[str]:
        return sorted({f.spec.topic for f in self.feeds.values()})

    def handle(self, topic: str, payload: bytes, retained: bool) -> list[str]:
        """Offer a message to every feed on `topic`; the names that took a fresh value."""
        now_s = self._clock()
        fresh: list[str] = []
        with self._lock:
            for name, feed in self.feeds.items():
                if not topic_matches_sub(feed.spec.topic, topic):
                    continue
                if retained and name not in SLOW_FEEDS:
                    log.debug("feed %s: retained value on %s ignored (age unknown)", name,
                              topic)
                    continue
                if feed.offer(payload, now_s):
                    fresh.append(name)
        return fresh

    def values(self) -> dict[str, float | None]:
        """Each feed's value now; None when missing or stale."""
        now_s = self._clock()
        with self._lock:
            return {name: feed.value(now_s) for name, feed in self.feeds.items()}

    def ages_s(self) -> dict[str, float | None]:
        now_s = self._clock()
        with self._lock:
            return {name: feed.age_s(now_s) for name, feed in self.feeds.items()}
