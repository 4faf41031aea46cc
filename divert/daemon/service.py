"""The daemon: its parts wired together, its lifecycle, the schedules, and the Snapshot each
cycle hands to the publishers (MQTT state, the status page, `/api/state`).

Threads: paho's network thread stores feed values and kicks the loop; the loop's thread runs
the control cycle (`cycle.py`, paced by `loop.py`); each charger's calls run on a worker of
their own (`worker.py`), so a silent charger holds up nobody; apscheduler's thread fires the
`[[schedule]]` entries (only when there are some: apscheduler is not even imported
otherwise). One lock serialises everything that touches controllers or the state: a cycle, a
schedule entry, `stop`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from concurrent.futures import Future
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from chargers.base import Charger, ChargerReading
from chargers.registry import create
from divert.config import ScheduleEntry, Settings
from divert.core.capabilities import Capabilities
from divert.core.controller import Controller, Decision
from divert.core.modes import Mode
from divert.daemon.clock import Clock, SystemClock
from divert.daemon.commands import Commands
from divert.daemon.cycle import KICK_FEEDS, Cycle
from divert.daemon.feeds import Feeds, PayloadError, parse_json
from divert.daemon.loop import Loop
from divert.daemon.metrics import Metrics
from divert.daemon.mqtt import MqttLink
from divert.daemon.persistence import (
    POLICY_FRESH_S,
    RETIRED_KEEP_S,
    ChargerRecord,
    Persistence,
    Saved,
)
from divert.daemon.publish import Publishers
from divert.daemon.sdnotify import Notifier
from divert.daemon.snapshot import ChargerFacts, Snapshot, SnapshotBuilder
from divert.daemon.worker import wait_all
from divert.policies.forecast import feed_points
from divert.policies.presets import load_preset

log = logging.getLogger(__name__)

LOOP_STOP_S = 1.0  # stop waits this long for the loop before taking the lock anyway
SHUTDOWN_S = 2.0  # each charger's shutdown command, all in parallel
CLOSE_S = 0.5  # closing the drivers
MQTT_STOP_S = 0.5  # publishing `offline`


class Daemon:
    """Construct (no I/O), `start()`, later `stop()`."""

    def __init__(self, settings: Settings, notifier: Notifier | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.preset = load_preset(settings.policy.preset)
        self.relay = settings.relay.model_dump()
        self.site_params = settings.site_params()
        self.tz = ZoneInfo(settings.timezone)
        chargers: dict[str, Charger] = {c.name: create(c, settings.driver_env())
                                        for c in settings.chargers}
        self.feeds = Feeds(settings.feeds, self._feed_error, self.clock.control_s,
                           settings.ev_meters())
        self.metrics = Metrics(chargers, self.feeds.feeds)
        self.mqtt = MqttLink(settings.mqtt, self.feeds.topics(), self._on_message,
                             lambda up: self.metrics.mqtt_connected.set(float(up)))
        self.loop = Loop(self.run_cycle, settings.interval_s)
        # See and steer (LOOP.md): a command inbox in, Snapshots out.
        self.commands = Commands(settings, self.mqtt.publish, self.metrics, self.loop.kick)
        if settings.mqtt.allow_commands:
            self.mqtt.route(self.commands.topic_filter, self.commands.offer)
        if settings.feeds.forecast is not None:
            self.mqtt.route(settings.feeds.forecast.topic, self._on_forecast)
        self._forecast: list[tuple[float, float]] | None = None  # the feed's last points
        self.publishers = Publishers(settings, self.mqtt, self.metrics)
        self.snapshots = SnapshotBuilder(self.tz)
        self.persistence = Persistence(settings.state.path, self.clock, self.metrics.save_errors)
        self.cycle = Cycle(settings, self.clock, chargers,
                           {c.name: c.capabilities() for c in settings.chargers},
                           self._controller, self.feeds, self.metrics, self.commands,
                           self.persistence, self.save, self._hand_over)
        self.retired: dict[str, ChargerRecord] = {}  # removed from the config, kept 24 h
        self.scheduler: Any = None  # apscheduler's, with [[schedule]] entries
        self._lock = threading.Lock()  # controllers, drivers, state
        self._stop_lock = threading.Lock()
        self._stopped = False

    def _controller(self, caps: Capabilities) -> Controller:
        """A controller for `caps` (the cycle sets its mode and cap), with the forecast."""
        controller = self.preset.controller(caps, relay=self.relay, site=self.site_params,
                                            location=self.settings.policy.location())
        self._give_forecast(controller)
        return controller

    def _on_forecast(self, topic: str, payload: bytes, retained: bool) -> None:
        """A forecast (W at future times; retained is fine: its times say how old it is)
        goes to every policy that plans ahead."""
        feed = self.settings.feeds.forecast
        assert feed is not None
        try:
            points = feed_points(parse_json(payload, feed.json_path), feed.scale)
        except (PayloadError, ValueError) as exc:
            self._feed_error("forecast")
            log.warning("feed forecast (%s): payload ignored, %s", topic, exc)
            return
        with self._lock:
            self._forecast = points
            for controller in self.cycle.controllers.values():
                self._give_forecast(controller)

    def _give_forecast(self, controller: Controller) -> None:
        set_forecast = getattr(controller.policy, "set_forecast", None)
        if self._forecast is not None and set_forecast is not None:
            set_forecast(self._forecast, self.clock.wall_s())

    # --- what tests and the status line look at -----------------------------------------

    @property
    def mode(self) -> Mode:
        return self.cycle.mode

    @property
    def chargers(self) -> dict[str, Charger]:
        return {name: s.charger for name, s in self.cycle.stations.items()}

    @property
    def controllers(self) -> dict[str, Controller]:
        return self.cycle.controllers

    @property
    def last_decisions(self) -> dict[str, Decision]:
        return self.cycle.last_decisions

    @property
    def readings(self) -> dict[str, ChargerReading | None]:
        return {name: s.reading for name, s in self.cycle.stations.items()}

    def status_line(self) -> str:
        return self.cycle.status_line()

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, loop: bool = True) -> None:
        """Restore state, open /metrics and MQTT, start the loop (unless `loop` is False:
        then the caller runs `run_cycle`). Returns at once.

        Raises OSError (metrics address taken) or MqttError (unreadable password or TLS
        files); chargers that do not answer are retried by the loop."""
        for warning in self.settings.warnings():
            log.warning("config: %s", warning)
        with self._lock:
            self._restore(self.persistence.load())
            self.cycle.started_s = self.clock.control_s()
        if self.settings.metrics.listen:
            self.metrics.serve(self.settings.metrics.listen, self.publishers.pages())
        try:
            self.mqtt.start()
        except Exception:
            self.metrics.close()
            raise
        if self.settings.schedule:
            from apscheduler.schedulers.background import BackgroundScheduler

            from divert.daemon import schedule

            self.scheduler = BackgroundScheduler(timezone=self.tz)
            schedule.add_jobs(self.scheduler, self.settings.schedule, self.tz,
                              self._apply_entry)
            self.scheduler.start()
        if loop:
            self.loop.start()
        log.info("divert running: preset %s, mode %s, %d charger(s), loop every %g s",
                 self.preset.name, self.mode, len(self.cycle.stations),
                 self.settings.interval_s)

    def stop(self, handover: Collection[str] | None = None) -> None:
        """Stop the loop, put chargers in their shutdown state, save, publish `offline`.

        A running cycle stops waiting for chargers at once. `handover` (a reload): the
        chargers named stay as they are for the next daemon, which picks up from the saved
        state; the others (removed from the config) get their shutdown state; no `offline`.
        Returns within about 4 s whatever the chargers do."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        started = time.monotonic()
        self.cycle.abort.set_result(None)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self.loop.stop(LOOP_STOP_S)
        keep = set(handover or ())
        with self._lock:
            self._shutdown_chargers([n for n in self.cycle.stations if n not in keep])
            self.save()
            self._close_chargers()
        self.publishers.close()  # the last state out before the link goes
        self.mqtt.stop(publish_offline=handover is None, timeout_s=MQTT_STOP_S)
        self.metrics.close()
        log.info("divert stopped (%.1f s)", time.monotonic() - started)

    def _shutdown_chargers(self, names: list[str]) -> None:
        """Each charger named to the shutdown state, in parallel, bounded; a pause is a relay
        opening the guard records (the minimum off-time runs from here after a restart)."""
        state = self.settings.shutdown
        calls = {}
        for name in names:
            station = self.cycle.stations[name]
            if station.actuator is not None:
                calls[name] = station.worker.submit(partial(station.actuator.shutdown, state))
        wait_all(calls.values(), SHUTDOWN_S, Future())
        now_s = self.clock.control_s()
        for name, future in calls.items():
            if not future.done():
                log.warning("charger %s: no answer to the shutdown command within %g s", name,
                            SHUTDOWN_S)
            elif future.exception() is None and future.result():
                self.controllers[name].guard.opened(now_s)
                log.info("charger %s: left in shutdown state %r", name, state)

    def _close_chargers(self) -> None:
        stations = self.cycle.stations.values()
        calls = {s.name: s.worker.submit(s.charger.close) for s in stations}
        wait_all(calls.values(), CLOSE_S, Future())
        for name, future in calls.items():
            error = future.exception() if future.done() else TimeoutError(f"{CLOSE_S} s")
            if error is not None:
                log.warning("charger %s: close failed: %s", name, error)
        for station in stations:
            station.worker.close()

    # --- persistence -------------------------------------------------------------------

    def _restore(self, saved: Saved | None) -> None:
        now = datetime.fromtimestamp(self.clock.wall_s(), self.tz)
        since = now - timedelta(days=7)  # no state: catch up on the last week's schedule
        if saved is not None:
            try:
                self._restore_from(saved)
                since = datetime.fromtimestamp(saved.wall_s, self.tz)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                self.persistence.file.set_aside(f"unexpected content: {exc!r}")
                self._afresh()
        if self.settings.schedule:
            from divert.daemon import schedule

            missed = schedule.latest(self.settings.schedule, self.tz, min(since, now), now)
            if missed is not None:
                log.info("schedule %r fired while divert was down: applying it", missed.cron)
                self._set_schedule(missed)
        for name, station in self.cycle.stations.items():
            self.metrics.ev_surplus_wh.labels(name).inc(station.ev_from_surplus_wh)
            self.metrics.ev_grid_wh.labels(name).inc(station.ev_from_grid_wh)
            self.metrics.starts.labels(name).inc(station.relay_starts)

    def _restore_from(self, saved: Saved) -> None:
        # A mode changed in the config since the save wins over the saved (scheduled) one.
        mode = saved.mode if saved.config_mode == self.settings.policy.mode else self.mode
        warm = saved.age_s is not None and saved.age_s <= POLICY_FRESH_S
        now_s = self.clock.control_s()
        for name, record in saved.chargers.items():
            controller = self.controllers.get(name)
            if controller is None:
                if record.retired_s is None:
                    record.retired_s = now_s
                    log.info("charger %s: no longer configured; its relay history is kept "
                             "for %g h", name, RETIRED_KEEP_S / 3600)
                self.retired[name] = record
                continue
            controller.restore(record.controller, warm=False)
            if warm and record.controller.get("policy") is not None:
                self._warm(name, controller, record.controller["policy"])
            station = self.cycle.stations[name]
            station.ev_from_surplus_wh = record.ev_from_surplus_wh
            station.ev_from_grid_wh = record.ev_from_grid_wh
            station.relay_starts = record.relay_starts
        self.commands.restore(saved.sections.get("commands"))
        self.snapshots.restore(saved.sections.get("energy_today"))
        self.cycle.set_mode(mode, saved.limit_a)
        log.info("state restored from %s%s", self.persistence.file.path,
                 " (with the policy's memory)" if warm else "")

    def _warm(self, name: str, controller: Controller, state: dict[str, Any]) -> None:
        try:
            controller.policy.restore(state)
        except (KeyError, TypeError, ValueError) as exc:  # e.g. the preset changed its kind
            controller.policy = self.preset.make_policy()
            log.info("charger %s: the saved policy memory does not fit (%r); starting it "
                     "afresh", name, exc)

    def _afresh(self) -> None:
        self.retired = {}
        self.cycle.set_mode(self.settings.policy.mode, None)
        for c in self.settings.chargers:
            self.controllers[c.name] = self.cycle.new_controller(c.name, c.capabilities())
            station = self.cycle.stations[c.name]
            station.ev_from_surplus_wh = station.ev_from_grid_wh = station.relay_starts = 0.0

    def saved(self) -> Saved:
        """What the state file is to hold now."""
        stations = self.cycle.stations
        chargers = {name: ChargerRecord(c.to_state(), stations[name].ev_from_surplus_wh,
                                        stations[name].ev_from_grid_wh,
                                        stations[name].relay_starts)
                    for name, c in self.controllers.items()}
        now_s = self.clock.control_s()
        for name, record in self.retired.items():
            assert record.retired_s is not None
            if name not in chargers and now_s - record.retired_s <= RETIRED_KEEP_S:
                chargers[name] = record
        return Saved(self.settings.policy.mode, self.mode, self.cycle.limit_a, chargers,
                     {"commands": self.commands.to_state(),
                      "energy_today": self.snapshots.to_state()})

    def save(self) -> bool:
        """Save the state now; False if it could not be written."""
        return self.persistence.save(self.saved())

    # --- schedules ---------------------------------------------------------------------

    def _apply_entry(self, entry: ScheduleEntry) -> None:
        with self._lock:
            if self._stopped:
                return
            log.info("schedule %r: mode %s, current cap %s", entry.cron, entry.mode or self.mode,
                     "none" if entry.max_current_a is None else f"{entry.max_current_a:g} A")
            self._set_schedule(entry)
            self.save()
        self.loop.kick()

    def _set_schedule(self, entry: ScheduleEntry) -> None:
        self.commands.schedule_fired(entry)  # a schedule ends what it sets
        self.cycle.set_mode(entry.mode or self.mode, entry.max_current_a)

    # --- the loop ----------------------------------------------------------------------

    def _feed_error(self, feed: str) -> None:
        self.metrics.feed_errors.labels(feed).inc()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not KICK_FEEDS.isdisjoint(self.feeds.handle(topic, payload, retained)):
            self.loop.kick()

    def _hand_over(self, values: dict[str, float | None]) -> None:
        """The end of a cycle's report: the Snapshot to its publishers, the status line and
        the watchdog to systemd."""
        self.publishers.offer(self._view(values))
        self.notifier.status(self.status_line())
        self.notifier.watchdog()

    def _view(self, values: dict[str, float | None]) -> Snapshot:
        """This cycle's Snapshot: wall clock for display and the day, the control clock for
        the guards' windows."""
        wall_s, control_s = self.clock.wall_s(), self.clock.control_s()
        facts = {}
        for name, controller in self.controllers.items():
            station = self.cycle.stations[name]
            eff = self.commands.effective(name, self.mode, self.cycle.limit_a, wall_s)
            facts[name] = ChargerFacts(
                controller, self.last_decisions.get(name),
                station.actuator is not None and station.reading is not None,
                self.cycle.ev_w(name, values), station.ev_from_surplus_wh,
                station.ev_from_grid_wh, eff.limit_a, eff.boost_until_s,
                self.cycle.site.status.shares_w.get(name))
        return self.snapshots.build(wall_s, control_s, self.mode, values, self.feeds.ages_s(),
                                    self.cycle.site, facts)

    def run_cycle(self) -> None:
        """One control cycle (the loop calls this; tests with a hand-moved clock too)."""
        with self._lock:
            if not self._stopped:
                self.cycle.run()
