"""What the surplus will do next: the forecaster of the predictive policy.

Three sources, each optional but the first:

* **The recent past.** The surplus is kept as one mean per minute. Its *clear level* is the
  highest minute of the last `CLEAR_WINDOW_MIN` minutes; a minute is *sunny* when it reaches
  `SUNNY_FRACTION` of that level, else *cloudy*. How long sunny and cloudy spells last is
  counted by their age: a spell one minute old ends far more often than one ten minutes old
  (on the public days about a third of one-minute spells end in the next minute, 3 % of
  spells older than ten). These counts, from the last `memory_min` minutes on top of what
  the site has seen on earlier days, give the chance that the current spell goes on.
* **The site's own days.** A daily envelope: per ten minutes of the (UTC) day, the highest
  clear level seen, fading by `ENVELOPE_FADE_PER_DAY` a day so that it follows the seasons.
  It says how the clear level moves over the next hour (up in the morning, down in the
  evening). With the site's latitude and longitude the sun's elevation gives that shape
  from the first day on; before either, only a falling clear level is extrapolated.
* **A forecast feed** (`[feeds.forecast]`: W at future times, e.g. Home Assistant's solar
  forecast): while fresh, its shape replaces the envelope's, scaled to the clear level now.

Powers in W, times in s (unix time for the time of day), energies in Wh.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MINUTE_S = 60.0
CLEAR_WINDOW_MIN = 40  # the clear level: the highest minute of the last this many
SUNNY_FRACTION = 0.6  # a minute at this fraction of the clear level or more is sunny
AGE_EDGES_MIN = (1, 3, 9)  # spell ages 1, 2–3, 4–9 and 10+ minutes are counted apart
# Chance per minute that a spell goes on, by age bucket (cloudy, sunny): broken cloud as on
# the public days, the starting point before a site has counted its own.
PRIOR_GOES_ON = ((0.70, 0.78, 0.87, 0.92), (0.67, 0.80, 0.88, 0.97))
PRIOR_WEIGHT = 10.0  # the prior counts as this many minutes per bucket
SITE_WEIGHT_MAX = 200.0  # a site's own counts from earlier days, at most this many a bucket
SLOT_S = 600.0  # the envelope's resolution
SLOTS = 144  # ten-minute slots of a day
ENVELOPE_FADE_PER_DAY = 0.97
DAY_S = 86400.0
FEED_MAX_AGE_S = 6 * 3600.0  # a forecast older than this is ignored
TREND_WINDOW_MIN = 30  # without envelope or feed: the clear level's fall over this long …
TREND_DAMPING_MIN = 15.0  # … extrapolated, damped with this time constant


BUCKETS = len(AGE_EDGES_MIN) + 1
_BUCKET_OF = [next((i for i, edge in enumerate(AGE_EDGES_MIN) if age <= edge), BUCKETS - 1)
              for age in range(AGE_EDGES_MIN[-1] + 2)]


def bucket(age_min: int) -> int:
    """The age bucket of a spell `age_min` minutes old."""
    return _BUCKET_OF[min(age_min, len(_BUCKET_OF) - 1)]


@dataclass(frozen=True)
class Outlook:
    """The forecast for the next blocks of `block_min` minutes.

    `goes_on[w][b]`: chance per minute that a spell of weather w (0 cloudy, 1 sunny) in age
    bucket b goes on. `sunny_w[i]`, `cloudy_w[i]`: the surplus expected in block i if it
    is sunny or cloudy. The current spell: `sunny`, `age_min` old."""

    sunny: bool
    age_min: int
    goes_on: tuple[tuple[float, ...], tuple[float, ...]]
    sunny_w: tuple[float, ...]
    cloudy_w: tuple[float, ...]
    source: str  # what shapes the clear level ahead: "feed", "envelope", "sun", "trend"


class Envelope:
    """The site's clear level by time of day, learned from its own days."""

    def __init__(self) -> None:
        self.level_w: list[float] = [0.0] * SLOTS
        self.days = 0  # days merged in
        self._today: list[float] = [0.0] * SLOTS
        self._day: int | None = None

    def observe(self, time_s: float, clear_w: float) -> None:
        day = math.floor(time_s / DAY_S)
        if self._day is not None and day != self._day:
            self._merge(day - self._day)
        self._day = day
        slot = int((time_s % DAY_S) // SLOT_S)
        self._today[slot] = max(self._today[slot], clear_w)

    def _merge(self, days: int) -> None:
        fade = ENVELOPE_FADE_PER_DAY ** max(1, days)
        if any(self._today):
            self.level_w = [max(old * fade, new) for old, new in
                            zip(self.level_w, self._today, strict=True)]
            self.days += 1
        self._today = [0.0] * SLOTS

    def at(self, time_s: float) -> float:
        """The envelope at `time_s`, the highest of its slot and the two beside it, W."""
        slot = int((time_s % DAY_S) // SLOT_S)
        return max(self.level_w[(slot + k) % SLOTS] for k in (-1, 0, 1))

    def to_state(self) -> dict[str, Any]:
        return {"level_w": [round(x, 1) for x in self.level_w], "days": self.days,
                "today_w": [round(x, 1) for x in self._today], "day": self._day}

    def restore(self, state: dict[str, Any]) -> None:
        """Take a saved envelope; anything unusable in it is left as it is."""
        level, today = _slots(state.get("level_w")), _slots(state.get("today_w"))
        days, day = state.get("days", 0), state.get("day")
        if level is not None and isinstance(days, int):
            self.level_w, self.days = level, days
        if today is not None and (day is None or isinstance(day, int)):
            self._today, self._day = today, day


def _slots(value: Any) -> list[float] | None:
    """A saved envelope: SLOTS finite powers >= 0, or None."""
    if not isinstance(value, list) or len(value) != SLOTS:
        return None
    if not all(isinstance(x, int | float) and math.isfinite(x) and x >= 0 for x in value):
        return None
    return [float(x) for x in value]


def sun_elevation_sin(time_s: float, latitude_deg: float, longitude_deg: float) -> float:
    """Sine of the sun's elevation at unix time `time_s` (NOAA's low-precision formulas,
    good to about a degree)."""
    days = time_s / DAY_S - 10957.5  # since 2000-01-01 12:00 UTC
    mean_long = math.radians((280.460 + 0.9856474 * days) % 360)
    anomaly = math.radians((357.528 + 0.9856003 * days) % 360)
    ecl_long = mean_long + math.radians(1.915 * math.sin(anomaly)
                                        + 0.020 * math.sin(2 * anomaly))
    obliquity = math.radians(23.439 - 0.0000004 * days)
    declination = math.asin(math.sin(obliquity) * math.sin(ecl_long))
    right_asc = math.atan2(math.cos(obliquity) * math.sin(ecl_long), math.cos(ecl_long))
    sidereal = math.radians((280.46061837 + 360.98564736629 * days) % 360)
    hour_angle = sidereal + math.radians(longitude_deg) - right_asc
    lat = math.radians(latitude_deg)
    return (math.sin(lat) * math.sin(declination)
            + math.cos(lat) * math.cos(declination) * math.cos(hour_angle))


class Forecaster:
    """The recent surplus, the site's weather statistics and envelope; `outlook()` turns
    them into the planner's forecast."""

    def __init__(self, memory_min: int, location: tuple[float, float] | None = None) -> None:
        self.memory_min = max(CLEAR_WINDOW_MIN, memory_min)
        self.location = location
        self.floor_w = 0.0  # minutes whose clear level is below this (dusk, night) say nothing
        self.envelope = Envelope()
        self.minutes_w: list[float] = []  # one mean per minute, newest last
        self.clear_w: list[float] = []  # the clear level at each of those minutes
        # the site's counts from earlier days: [weather][bucket] -> (went on, seen)
        self.site_counts = [[[0.0, 0.0] for _ in range(BUCKETS)] for _ in range(2)]
        self._minute_start_s: float | None = None
        self._sum_ws = 0.0
        self._sum_s = 0.0
        self._feed: list[tuple[float, float]] = []
        self._feed_at_s: float | None = None
        self._stats: tuple[Any, ...] | None = None  # cached per completed minute

    # --- observing ------------------------------------------------------------------

    def observe(self, time_s: float, dt_s: float, surplus_w: float) -> bool:
        """Add a reading held over the `dt_s` before `time_s`; True if a minute completed."""
        if self._minute_start_s is None or time_s - self._minute_start_s > 6 * 3600:
            self._new_day_gap(time_s)
            self._minute_start_s = math.floor(time_s / MINUTE_S) * MINUTE_S
            self._sum_ws = self._sum_s = 0.0
            return False
        completed = False
        start_s = time_s - dt_s
        while True:
            end_s = self._minute_start_s + MINUTE_S
            held_s = min(time_s, end_s) - max(start_s, self._minute_start_s)
            if held_s > 0:
                self._sum_ws += surplus_w * held_s
                self._sum_s += held_s
            if time_s < end_s:
                break
            self._push(self._sum_ws / self._sum_s if self._sum_s > 0 else surplus_w,
                       end_s)
            completed = True
            self._minute_start_s = end_s
            self._sum_ws = self._sum_s = 0.0
        return completed

    def recent_w(self, fallback_w: float) -> float:
        """The mean surplus over the last minute: this minute so far and the rest from the
        one before (`fallback_w` before the first), W."""
        if not self.minutes_w:
            return max(0.0, fallback_w)
        rest_s = max(0.0, MINUTE_S - self._sum_s)
        return max(0.0, (self._sum_ws + self.minutes_w[-1] * rest_s) / MINUTE_S)

    def _new_day_gap(self, time_s: float) -> None:
        """A gap of hours (a night without readings, a restart): today's spells are over."""
        if self.minutes_w:
            self._learn_spells()
        self.minutes_w.clear()
        self.clear_w.clear()
        self._stats = None

    def _push(self, minute_w: float, end_s: float) -> None:
        positive_w = max(0.0, minute_w)
        self.minutes_w.append(positive_w)
        self.clear_w.append(max(self.minutes_w[-CLEAR_WINDOW_MIN:]))
        self.envelope.observe(end_s - MINUTE_S / 2, self.clear_w[-1])
        keep = self.memory_min + TREND_WINDOW_MIN
        if len(self.minutes_w) > 2 * keep:  # trim now and then, not every minute
            self._learn_spells(len(self.minutes_w) - keep)
            del self.minutes_w[:-keep]
            del self.clear_w[:-keep]
        self._stats = None

    def _learn_spells(self, upto: int | None = None) -> None:
        """Fold the spells of the oldest minutes (all, or those before `upto`) into the
        site's counts, which fade so that the last few days weigh most."""
        counts = self._spell_counts(0, len(self.minutes_w) if upto is None else upto)
        for w in (0, 1):
            for b in range(BUCKETS):
                went_on, seen = counts[w][b]
                site = self.site_counts[w][b]
                site[0] += went_on
                site[1] += seen
                if site[1] > SITE_WEIGHT_MAX:
                    scale = SITE_WEIGHT_MAX / site[1]
                    site[0] *= scale
                    site[1] *= scale

    def _sunny(self, i: int) -> bool:
        return self.minutes_w[i] >= SUNNY_FRACTION * self.clear_w[i]

    def _spell_counts(self, lo: int, hi: int) -> list[list[list[float]]]:
        """(went on, seen) per weather and age bucket over minutes lo … hi − 1 (a spell
        that began before `lo` counts from `lo`)."""
        counts = [[[0.0, 0.0] for _ in range(BUCKETS)] for _ in range(2)]
        age, prev = 0, False
        for i in range(lo, hi):
            if self.clear_w[i] < self.floor_w:
                age = 0  # too dim to tell sun from cloud
                continue
            now = self._sunny(i)
            if age:
                cell = counts[prev][bucket(age)]
                cell[1] += 1
                if now == prev:
                    cell[0] += 1
            age = age + 1 if age and now == prev else 1
            prev = now
        return counts

    def set_feed(self, points: Iterable[tuple[float, float]], now_s: float) -> None:
        """A forecast: (unix time s, W) points; replaces the one before."""
        self._feed = sorted((float(t), max(0.0, float(w))) for t, w in points
                            if math.isfinite(t) and math.isfinite(w))
        self._feed_at_s = now_s

    # --- forecasting ----------------------------------------------------------------

    def _statistics(self) -> tuple[Any, ...]:
        """Per completed minute: the chance each spell goes on, the sunny clearness and the
        cloudy surplus (means over the memory), and the current spell's age."""
        if self._stats is not None:
            return self._stats
        n = len(self.minutes_w)
        lo = max(0, n - self.memory_min)
        recent = self._spell_counts(lo, n)
        goes_on = tuple(tuple(
            (PRIOR_WEIGHT * PRIOR_GOES_ON[w][b] + self.site_counts[w][b][0]
             + recent[w][b][0])
            / (PRIOR_WEIGHT + self.site_counts[w][b][1] + recent[w][b][1])
            for b in range(BUCKETS)) for w in (0, 1))
        clear_sum, clear_n, cloud_sum, cloud_n = 0.9 * 2, 2.0, 0.0, 0.0
        for i in range(lo, n):
            if self.clear_w[i] < self.floor_w:
                continue
            if self._sunny(i):
                clear_sum += self.minutes_w[i] / max(1.0, self.clear_w[i])
                clear_n += 1
            else:
                cloud_sum += self.minutes_w[i]
                cloud_n += 1
        age = 0
        if n:
            age = 1
            while age < n and self._sunny(n - 1 - age) == self._sunny(n - 1):
                age += 1
        cloudy_w = cloud_sum / cloud_n if cloud_n else None
        self._stats = (goes_on, clear_sum / clear_n, cloudy_w, age)
        return self._stats

    def _clear_ahead(self, now_s: float, clear_now_w: float, offsets_s: Sequence[float],
                     ) -> tuple[list[float], str]:
        """The clear level at now + each offset, and what shaped it."""
        if self._feed and self._feed_at_s is not None and \
                now_s - self._feed_at_s <= FEED_MAX_AGE_S and \
                self._feed[0][0] <= now_s <= self._feed[-1][0]:
            feed_now = _interp(self._feed, now_s)
            if feed_now > 0.1 * clear_now_w:
                scale = clear_now_w / feed_now
                return [scale * _interp(self._feed, now_s + o) for o in offsets_s], "feed"
        env_now = self.envelope.at(now_s)
        if self.envelope.days and env_now > 0.2 * clear_now_w:
            return [clear_now_w * min(1.5, self.envelope.at(now_s + o) / env_now)
                    for o in offsets_s], "envelope"
        if self.location is not None:
            lat, lon = self.location
            sun_now = sun_elevation_sin(now_s, lat, lon)
            if sun_now > 0.1:
                return [clear_now_w * max(0.0, min(1.5, sun_elevation_sin(now_s + o, lat, lon)
                                                   / sun_now)) for o in offsets_s], "sun"
        fall_w = 0.0
        if len(self.clear_w) > TREND_WINDOW_MIN:
            fall_w = min(0.0, self.clear_w[-1] - self.clear_w[-1 - TREND_WINDOW_MIN])
        per_min = fall_w / TREND_WINDOW_MIN
        return [max(0.0, clear_now_w + per_min * TREND_DAMPING_MIN
                    * (1 - math.exp(-o / MINUTE_S / TREND_DAMPING_MIN)))
                for o in offsets_s], "trend"

    def outlook(self, now_s: float, surplus_w: float, blocks: int,
                block_min: int) -> Outlook:
        """The forecast for `blocks` blocks of `block_min` minutes after `now_s`, given the
        surplus now."""
        goes_on, clearness, cloudy_mean_w, age = self._statistics()
        now_w = max(0.0, surplus_w)
        clear_now_w = max(self.clear_w[-1] if self.clear_w else 0.0, now_w, 1.0)
        sunny = now_w >= SUNNY_FRACTION * clear_now_w
        last_sunny = bool(self.minutes_w) and self._sunny(len(self.minutes_w) - 1)
        age_min = age + 1 if self.minutes_w and sunny == last_sunny else 1
        if cloudy_mean_w is None:
            cloudy_mean_w = 0.3 * clear_now_w
        offsets = [(i + 0.5) * block_min * MINUTE_S for i in range(blocks)]
        clear_w, source = self._clear_ahead(now_s, clear_now_w, offsets)
        cloud_ratio = min(cloudy_mean_w / clear_now_w, SUNNY_FRACTION)
        return Outlook(sunny, age_min, goes_on, tuple(c * clearness for c in clear_w),
                       tuple(c * cloud_ratio for c in clear_w), source)

    # --- state ----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """What the site has learned (envelope, spell counts); the last hour is not kept."""
        return {"envelope": self.envelope.to_state(),
                "spells": [[[round(x, 2) for x in cell] for cell in row]
                           for row in self.site_counts]}

    def restore(self, state: dict[str, Any]) -> None:
        """Take what was learned; a part that cannot be used is ignored."""
        envelope = state.get("envelope")
        if isinstance(envelope, dict):
            self.envelope.restore(envelope)
        try:
            counts = [[[float(x) for x in cell] for cell in row]
                      for row in state.get("spells") or []]
        except (TypeError, ValueError):
            return
        if len(counts) == 2 and all(len(row) == BUCKETS and all(
                len(c) == 2 and 0 <= c[0] <= c[1] <= SITE_WEIGHT_MAX for c in row)
                for row in counts):
            self.site_counts = counts


def _interp(points: Sequence[tuple[float, float]], t_s: float) -> float:
    """Linear interpolation in sorted (time, value) points, held flat beyond the ends."""
    times = [p[0] for p in points]
    i = bisect_left(times, t_s)
    if i <= 0:
        return points[0][1]
    if i >= len(points):
        return points[-1][1]
    (t0, w0), (t1, w1) = points[i - 1], points[i]
    return w0 if t1 <= t0 else w0 + (w1 - w0) * (t_s - t0) / (t1 - t0)


TIME_KEYS = ("time", "t", "period_start", "datetime", "start")
VALUE_KEYS = ("w", "watts", "value", "power", "pv_estimate")


def feed_points(payload: Any, scale: float = 1.0) -> list[tuple[float, float]]:
    """The points of a forecast feed's (decoded JSON) payload: an object {time: value}, a
    list of [time, value] pairs, or a list of objects with a time (one of `TIME_KEYS`) and
    a value (one of `VALUE_KEYS`). Times are unix seconds or ISO 8601 (UTC unless it says);
    values × `scale` are W. Raises ValueError for anything else."""
    if isinstance(payload, dict):
        pairs: list[tuple[Any, Any]] = list(payload.items())
    elif isinstance(payload, list):
        pairs = [_pair(item) for item in payload]
    else:
        raise ValueError("a forecast must be an object or a list")
    points = [(_unix_s(t), _number(_number(v) * scale)) for t, v in pairs]
    if not points:
        raise ValueError("a forecast without points")
    return sorted(points)


def _pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, list | tuple) and len(item) == 2:
        return item[0], item[1]
    if isinstance(item, dict):
        t = next((item[k] for k in TIME_KEYS if k in item), None)
        v = next((item[k] for k in VALUE_KEYS if k in item), None)
        if t is not None and v is not None:
            return t, v
    raise ValueError(f"not a forecast point: {str(item)[:60]!r}")


def _number(value: Any) -> float:
    """A finite number: a JSON number, or ASCII text of one (as the feeds take them: no
    "１２", no "1_000", no "nan")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) \
            or (isinstance(value, str) and not (value.isascii() and "_" not in value)):
        raise ValueError(f"not a number: {str(value)[:60]!r}")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond a float
        x = math.inf
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {str(value)[:60]!r}")
    return x


def _unix_s(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value)
    if isinstance(value, str):
        try:
            return _number(value)
        except ValueError:
            pass
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
            return stamp.timestamp()
        except (ValueError, OverflowError):  # OverflowError: year 1 east of UTC
            raise ValueError(f"not a time: {value[:60]!r}") from None
    raise ValueError(f"not a time: {str(value)[:60]!r}")
