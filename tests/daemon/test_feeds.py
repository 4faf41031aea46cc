"""Feed payloads: numbers in, garbage counted and ignored (never read as 0), stale means None."""

from __future__ import annotations

import contextlib
import json
import logging
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from divert.config import FeedsConfig
from divert.daemon.feeds import Feed, Feeds, FeedSpec, PayloadError, parse_number


@pytest.mark.parametrize(("payload", "path", "value"), [
    (b"1234", None, 1234.0),
    (b" -12.5\n", None, -12.5),
    (b"1e3", None, 1000.0),
    (b'{"ENERGY": {"Power": 412, "Voltage": 231}}', "ENERGY.Power", 412.0),
    (b'{"value": "17.5"}', "value", 17.5),  # a quoted number
    (b'{"power": {"total": -3.2}}', "power.total", -3.2),
    (b'{"phases": [100, 200, 300]}', "phases.1", 200.0),
    (b'[{"w": 1}, {"w": 2}]', "1.w", 2.0),
    (b"+5", None, 5.0), (b".5", None, 0.5), (b"5.", None, 5.0), (b"\t7\r\n", None, 7.0),
    (b'{"v": " 17 "}', "v", 17.0),
    (b'{"-1": 4}', "-1", 4.0),  # an object's key may look like a negative index
])
def test_numbers_are_read(payload: bytes, path: str | None, value: float) -> None:
    assert parse_number(payload, path) == value


@pytest.mark.parametrize(("payload", "path"), [
    (b"", None), (b"abc", None), (b"nan", None), (b"NaN", None), (b"inf", None),
    (b"-Infinity", None), (b"1e400", None), (b"\xff\xfe", None), (b"12 W", None),
    (b'{"ENERGY": {}}', "ENERGY.Power"), (b"not json", "value"), (b'{"value": null}', "value"),
    (b'{"value": true}', "value"), (b'{"value": "ON"}', "value"), (b'{"value": [1]}', "value"),
    (b'{"value": NaN}', "value"), (b'{"phases": [1]}', "phases.3"), (b'{"a": 1}', "a.b"),
    (b'{"phases": [1]}', "phases.x"),
    # Issue 14: only ASCII numbers; no negative list positions.
    ("１２".encode(), None), ("١٢".encode(), None), ("\xa012".encode(), None),
    (b"1_000", None), (b"1_0", None), (b"0x10", None), (b"1e", None), (b"--1", None),
    ('{"v": "１２"}'.encode(), "v"), ('{"v": "\xa012"}'.encode(), "v"),
    (b'{"v": "1_000"}', "v"), (b'{"v": "nan"}', "v"), (b'{"v": "Infinity"}', "v"),
    (b'{"phases": [100, 200, 300]}', "phases.-1"), (b'{"phases": [1]}', "phases.+0"),
    (b'{"phases": [1, 2]}', "phases.١"),
    # Issue 14: nested too deeply (RecursionError) and integers beyond a float (Overflow).
    (b"[" * 100_000 + b"]" * 100_000, "0"), (b'{"v": ' + b"[" * 5000 + b"]" * 5000 + b"}", "v"),
    (b'{"v": 1' + b"0" * 400 + b"}", "v"), (b'{"v": -1' + b"0" * 400 + b"}", "v"),
    (b'{"v": 1' + b"0" * 5000 + b"}", "v"), (b"1" + b"0" * 400, None),
])
def test_garbage_is_rejected(payload: bytes, path: str | None) -> None:
    with pytest.raises(PayloadError):
        parse_number(payload, path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_give_a_finite_number_or_payload_error(payload: bytes) -> None:
    for path in (None, "value", "a.0"):
        with contextlib.suppress(PayloadError):
            assert math.isfinite(parse_number(payload, path))


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_json_numbers_round_trip(value: float) -> None:
    assert parse_number(json.dumps({"v": [value]}).encode(), "v.0") == value


def test_scale_invert_and_staleness() -> None:
    feed = Feed(FeedSpec("grid", "t", scale=1000.0, invert=True, max_age_s=10.0))
    assert feed.value(0.0) is None and feed.age_s(0.0) is None
    assert feed.offer(b"1.5", 100.0)  # 1.5 kW export reported as positive
    assert feed.value(105.0) == -1500.0
    assert feed.age_s(105.0) == 5.0
    assert feed.value(110.0) == -1500.0
    assert feed.value(110.5) is None  # stale: older than max_age_s


def test_garbage_keeps_the_last_value_and_ages(caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []
    feed = Feed(FeedSpec("grid", "home/grid", max_age_s=60.0), errors.append)
    assert feed.offer(b"-2000", 0.0)
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            assert not feed.offer(b"nan", 1.0 + i)
        assert not feed.offer(b"garbage", 61.5)
    assert feed.errors == 11 and errors == ["grid"] * 11
    # Logged at most once a minute, the second line saying how many were held back.
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "payload ignored" in lines[0] and "'nan'" in lines[0]
    assert "(9 more since the last report)" in lines[1]
    assert feed.value(30.0) == -2000.0  # the last good value, never 0
    assert feed.age_s(30.0) == 30.0
    assert feed.value(60.5) is None


def test_feeds_share_topics_and_ignore_retained_power() -> None:
    now = [0.0]
    config = FeedsConfig.model_validate({
        "grid": {"topic": "tasmota/SENSOR", "json_path": "ENERGY.Power"},
        "voltage": {"topic": "tasmota/SENSOR", "json_path": "ENERGY.Voltage"},
        "battery": {"topic": "bat/+/power", "soc_topic": "bat/soc"},
    })
    feeds = Feeds(config, clock=lambda: now[0])
    assert feeds.topics() == ["bat/+/power", "bat/soc", "tasmota/SENSOR"]
    sensor = b'{"ENERGY": {"Power": 350, "Voltage": 229.5}}'
    # A retained power value is of unknown age: not taken. A retained voltage is.
    assert feeds.handle("tasmota/SENSOR", sensor, retained=True) == ["voltage"]
    assert feeds.handle("tasmota/SENSOR", sensor, retained=False) == ["grid", "voltage"]
    assert feeds.handle("bat/1/power", b"-800", retained=False) == ["battery"]
    assert feeds.handle("bat/soc", b"55", retained=False) == ["battery_soc"]
    assert feeds.handle("other", b"1", retained=False) == []
    assert feeds.values() == {"grid": 350.0, "voltage": 229.5, "battery": -800.0,
                              "battery_soc": 55.0}
    now[0] = 61.0
    assert set(feeds.values().values()) == {None}


def test_hostile_payloads_are_counted_and_logged_once_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    feed = Feed(FeedSpec("grid", "home/grid", json_path="v", max_age_s=600.0))
    assert feed.offer(b'{"v": 100}', 0.0)
    hostile = [b"[" * 100_000, b'{"v": 1' + b"0" * 400 + b"}", '{"v": "１２"}'.encode()]
    with caplog.at_level(logging.WARNING):
        for i, payload in enumerate(hostile * 10):
            assert not feed.offer(payload, 1.0 + i)
    assert feed.errors == 30
    assert len(caplog.records) == 1 and "nested too deeply" in caplog.records[0].getMessage()
    assert feed.value(40.0) == 100.0
