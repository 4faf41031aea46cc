"""`[[schedule]]` entries: cron triggers that switch the mode or cap the current.

Each entry, when it fires, sets the mode (if it names one) and the current cap: its
`max_current_a`, or no cap when it has none. Times are in the configured time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from divert.config import ScheduleEntry

MAX_CATCH_UP_FIRES = 20_000  # a once-a-minute entry over two weeks


def trigger(entry: ScheduleEntry, tz: ZoneInfo) -> CronTrigger:
    # Day-of-week numbers are rejected by the config (apscheduler 3 counts from Monday).
    return CronTrigger.from_crontab(entry.cron, timezone=tz)


def add_jobs(scheduler: BaseScheduler, entries: Sequence[ScheduleEntry], tz: ZoneInfo,
             apply: Callable[[ScheduleEntry], None]) -> None:
    for i, entry in enumerate(entries):
        scheduler.add_job(apply, trigger(entry, tz), args=[entry], id=f"schedule-{i}",
                          name=f"schedule {entry.cron}", coalesce=True, max_instances=1,
                          misfire_grace_time=300)


def latest(entries: Sequence[ScheduleEntry], tz: ZoneInfo, since: datetime,
           now: datetime) -> ScheduleEntry | None:
    """The entry that fired last in (since, now], None if none did: the one to catch up on
    after the daemon was down while it fired."""
    best: tuple[datetime, int] | None = None
    for i, entry in enumerate(entries):
        trig = trigger(entry, tz)
        fire = trig.get_next_fire_time(None, since + timedelta(seconds=1))
        last = None
        for _ in range(MAX_CATCH_UP_FIRES):
            if fire is None or fire > now:
                break
            last = fire
            fire = trig.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if last is not None and (best is None or (last, i) > best):
            best = (last, i)
    return None if best is None else entries[best[1]]
