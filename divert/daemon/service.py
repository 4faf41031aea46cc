"""The daemon: feeds in, one controller per charger, commands out, on a scheduler.

Threads: paho's network thread stores feed values and kicks the control job; apscheduler's
worker runs the control cycle (every `interval_s`, and right after a fresh grid value) and
the `[[schedule]]` entries. One lock serialises everything that touches controllers or
drivers, so drivers are only ever called from one thread at a time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from chargers.base import Charger, ChargerError, ChargerReading
from chargers.registry import create
from divert.config import ScheduleEntry, Settings
from divert.core.capabilities import Capabilities
from divert.core.controller import Controller, Decision, Inputs, SiteParams
from divert.core.modes import Mode
from divert.core.plan import target_now
from divert.core.surplus import surplus_w
from divert.daemon import schedule
from divert.daemon.actuator import Actuator
from divert.daemon.commands import Commands
from divert.daemon.feeds import Feeds, PayloadError, parse_json
from divert.daemon.metrics import Metrics, blocked_label
from divert.daemon.mqtt import MqttLink
from divert.daemon.publish import Publishers
from divert.daemon.sdnotify import Notifier
from divert.daemon.snapshot import ChargerFacts, Snapshot, SnapshotBuilder
from divert.daemon.state import StateFile
from divert.daemon.throttle import LogThrottle
from divert.policies.forecast import feed_points
from divert.policies.presets import load_preset

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.05  # fresh values closer together than this share one control cycle
CONNECT_RETRY_S = 30.0  # an unreachable charger is tried again this often
SAVE_EVERY_S = 600.0  # energy counters are saved this often (relay changes at once)
STOP_WAIT_S = 3.0  # how long stop() waits for a running cycle before going ahead
KICK_FEEDS = frozenset({"grid", "solar", "load"})  # a fresh value of these runs the loop


class _SkippedRunFilter(logging.Filter):
    """A kick that lands while a cycle runs is skipped by apscheduler (max one instance);
    that is by design (the running cycle queues a rerun), so its warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_SkippedRunFilter())
logging.getLogger("apscheduler").setLevel(logging.WARNING)  # INFO logs every job run


@dataclass
class _ChargerRun:
    """Per-charger bookkeeping of the shell (not the controller's business)."""

    connect_tried_s: float | None = None
    last_cycle_s: float | None = None
    blocked: str | None = None
    ev_from_surplus_wh: float = 0.0
    ev_from_grid_wh: float = 0.0


class Daemon:
    """See DAEMON_API.md. Construct (no I/O), `start()`, later `stop()`."""

    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.preset = load_preset(settings.policy.preset)
        self.relay = settings.relay.model_dump()
        battery = settings.feeds.battery
        grid = settings.feeds.grid
        self.site = SiteParams(
            grid_includes_ev=True if grid is None else grid.includes_ev,
            battery_first_below_soc_pct=None if battery is None else battery.first_below_soc_pct,
            stale_pause_s=settings.stale_pause_s)
        self.tz = ZoneInfo(settings.timezone)
        self.mode: Mode = settings.policy.mode
        self.limit_a: float | None = None
        self._configs = {c.name: c for c in settings.chargers}
        self.chargers: dict[str, Charger] = {c.name: create(c, settings.driver_env())
                                             for c in settings.chargers}
        self.plans = {c.name: settings.plans_for(c.name) for c in settings.chargers}
        self._forecast: list[tuple[float, float]] | None = None  # the feed's last points
        self.controllers = {c.name: self._controller(c.capabilities())
                            for c in settings.chargers}
        self.actuators: dict[str, Actuator] = {}
        self.last_decisions: dict[str, Decision] = {}
        self.readings: dict[str, ChargerReading | None] = {}
        self._runs = {name: _ChargerRun() for name in self.chargers}
        self._warn = {name: LogThrottle(log) for name in self.chargers}
        self.feeds = Feeds(settings.feeds, self._feed_error)
        self.metrics = Metrics(self.chargers, self.feeds.feeds)
        self.mqtt = MqttLink(settings.mqtt, self.feeds.topics(), self._on_message,
                             lambda up: self.metrics.mqtt_connected.set(float(up)))
        # --- see and steer (issue 15, LOOP.md): a command inbox in, Snapshots out -------
        self.commands = Commands(settings, self.mqtt.publish, self.metrics, self.kick)
        if settings.mqtt.allow_commands:
            self.mqtt.route(self.commands.topic_filter, self.commands.offer)
        if settings.feeds.forecast is not None:
            self.mqtt.route(settings.feeds.forecast.topic, self._on_forecast)
        self.publishers = Publishers(settings, self.mqtt, self.metrics)
        self.snapshots = SnapshotBuilder(self.tz)
        # ---
        self.state_file = StateFile(settings.state.path)
        self.scheduler = BackgroundScheduler(timezone=self.tz)
        self._lock = threading.Lock()  # controllers, drivers, state
        self._kick_lock = threading.Lock()
        self._running = self._rerun = self._kick_pending = self._stopped = False
        self._last_run_s = -math.inf
        self._saved_s = -math.inf
        self._saved_guards: dict[str, Any] = {}

    def _controller(self, caps: Capabilities) -> Controller:
        controller = self.preset.controller(caps, self.mode, self.relay, self.site,
                                            self.settings.policy.location())
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
            for controller in self.controllers.values():
                self._give_forecast(controller)

    def _give_forecast(self, controller: Controller) -> None:
        set_forecast = getattr(controller.policy, "set_forecast", None)
        if self._forecast is not None and set_forecast is not None:
            set_forecast(self._forecast, time.time())

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Restore state, open /metrics and MQTT, start the loop. Returns at once.

        Raises OSError (metrics address taken) or MqttError (unreadable password or TLS
        files); chargers that do not answer are retried by the loop."""
        with self._lock:
            self._restore(self.state_file.load())
        if self.settings.metrics.listen:
            self.metrics.serve(self.settings.metrics.listen, self.publishers.pages())
        try:
            self.mqtt.start()
        except Exception:
            self.metrics.close()
            raise
        self.scheduler.add_job(self._control_job, IntervalTrigger(
            seconds=self.settings.interval_s, timezone=self.tz), id="control",
            name="control loop", coalesce=True, max_instances=1, misfire_grace_time=None,
            next_run_time=datetime.now(self.tz))
        schedule.add_jobs(self.scheduler, self.settings.schedule, self.tz, self._apply_entry)
        self.scheduler.start()
        log.info("divert running: preset %s, mode %s, %d charger(s), loop every %g s",
                 self.preset.name, self.mode, len(self.chargers), self.settings.interval_s)

    def stop(self, handover: bool = False) -> None:
        """Stop the loop, put chargers in their shutdown state, save, publish `offline`.

        `handover` (a config reload): leave chargers as they are and do not say offline;
        the next Daemon picks up from the saved state. Returns within about 5 s."""
        with self._kick_lock:
            if self._stopped:
                return
            self._stopped = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        got_lock = self._lock.acquire(timeout=STOP_WAIT_S)
        if not got_lock:
            log.warning("stop: a control cycle is still running after %g s; going ahead",
                        STOP_WAIT_S)
        try:
            if not handover:
                self._shutdown_chargers()
            self._save()
            for name, charger in self.chargers.items():
                try:
                    charger.close()
                except Exception as exc:
                    log.warning("charger %s: close failed: %s", name, exc)
        finally:
            if got_lock:
                self._lock.release()
        self.publishers.close()  # issue 15: the last state out before the link goes
        self.mqtt.stop(publish_offline=not handover)
        self.metrics.close()
        log.info("divert stopped")

    def _shutdown_chargers(self) -> None:
        state = self.settings.shutdown
        now_s = time.time()
        for name, actuator in self.actuators.items():
            if actuator.shutdown(state):
                controller = self.controllers[name]
                if controller.charging:
                    # The relay opened now, whatever the minimum on-time said: record it so
                    # the minimum off-time runs from here after a restart.
                    saved = controller.to_state()
                    saved["guard"].update(on=False, changed_s=now_s)
                    controller.restore(saved)
            log.info("charger %s: left in shutdown state %r", name, state)

    # --- persistence -------------------------------------------------------------------

    def _restore(self, saved: dict[str, Any] | None) -> None:
        now = datetime.now(self.tz)
        since = now - timedelta(days=7)  # no state: catch up on the last week's schedule
        if saved is not None:
            try:
                self._restore_from(saved)
                since = datetime.fromtimestamp(_amount(saved["saved_at"]), self.tz)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                self.state_file.set_aside(f"unexpected content: {exc!r}")
                self.mode, self.limit_a = self.settings.policy.mode, None
                self.controllers = {name: self._controller(c.capabilities())
                                    for name, c in self._configs.items()}
                self._runs = {name: _ChargerRun() for name in self.chargers}
        missed = schedule.latest(self.settings.schedule, self.tz, min(since, now), now)
        if missed is not None:
            log.info("schedule %r fired while divert was down: applying it", missed.cron)
            self._set_schedule(missed)
        for name, run in self._runs.items():
            self.metrics.ev_surplus_wh.labels(name).inc(run.ev_from_surplus_wh)
            self.metrics.ev_grid_wh.labels(name).inc(run.ev_from_grid_wh)
        self._remember_guards()

    def _restore_from(self, saved: dict[str, Any]) -> None:
        # A mode changed in the config since the save wins over the saved (scheduled) one.
        if saved["config_mode"] == self.settings.policy.mode:
            self.mode = Mode(saved["mode"])
        limit = saved["limit_a"]
        self.limit_a = None if limit is None else _amount(limit)
        chargers: dict[str, Any] = saved["chargers"]
        for name, controller in self.controllers.items():
            entry = chargers.get(name)
            if entry is None:
                continue
            controller.restore(entry["controller"])
            run = self._runs[name]
            run.ev_from_surplus_wh = _amount(entry["ev_from_surplus_wh"])
            run.ev_from_grid_wh = _amount(entry["ev_from_grid_wh"])
        for controller in self.controllers.values():
            controller.mode = self.mode
            controller.set_limit(self.limit_a)
        self.commands.restore(saved.get("commands"))  # issue 15
        self.snapshots.restore(saved.get("energy_today"))  # issue 15
        log.info("state restored from %s", self.state_file.path)

    def _snapshot(self) -> dict[str, Any]:
        return {"saved_at": time.time(), "config_mode": str(self.settings.policy.mode),
                "mode": str(self.mode), "limit_a": self.limit_a,
                "chargers": {name: {"controller": c.to_state(),
                                    "ev_from_surplus_wh": self._runs[name].ev_from_surplus_wh,
                                    "ev_from_grid_wh": self._runs[name].ev_from_grid_wh}
                             for name, c in self.controllers.items()},
                "commands": self.commands.to_state(),  # issue 15
                "energy_today": self.snapshots.to_state()}  # issue 15

    def _remember_guards(self) -> None:
        self._saved_guards = {n: c.guard.to_state() for n, c in self.controllers.items()}

    def _save(self) -> None:
        if self.state_file.save(self._snapshot()):
            self._saved_s = time.monotonic()
            self._remember_guards()

    def _save_if_due(self) -> None:
        """Relay history at once (the starts budget must survive a crash); energy now and
        then (an SD card wears with every write)."""
        guards = {n: c.guard.to_state() for n, c in self.controllers.items()}
        if guards != self._saved_guards or time.monotonic() - self._saved_s >= SAVE_EVERY_S:
            self._save()

    # --- schedules ---------------------------------------------------------------------

    def _apply_entry(self, entry: ScheduleEntry) -> None:
        with self._lock:
            if self._stopped:
                return
            log.info("schedule %r: mode %s, current cap %s", entry.cron, entry.mode or self.mode,
                     "none" if entry.max_current_a is None else f"{entry.max_current_a:g} A")
            self._set_schedule(entry)
            self._save()
        self.kick()

    def _set_schedule(self, entry: ScheduleEntry) -> None:
        self.commands.schedule_fired(entry)  # issue 15: a schedule ends what it sets
        if entry.mode is not None:
            self.mode = entry.mode
        self.limit_a = entry.max_current_a
        for controller in self.controllers.values():
            controller.mode = self.mode
            controller.set_limit(self.limit_a)

    # --- the control loop --------------------------------------------------------------

    def _feed_error(self, feed: str) -> None:
        self.metrics.feed_errors.labels(feed).inc()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not KICK_FEEDS.isdisjoint(self.feeds.handle(topic, payload, retained)):
            self.kick()

    def kick(self) -> None:
        """Run the control cycle soon: now, or DEBOUNCE_S after the previous one began."""
        with self._kick_lock:
            if self._stopped:
                return
            if self._running:
                self._rerun = True
                return
            if self._kick_pending:
                return
            self._kick_pending = True
            delay_s = max(0.0, self._last_run_s + DEBOUNCE_S - time.monotonic())
        try:
            self.scheduler.modify_job("control", next_run_time=datetime.now(self.tz)
                                      + timedelta(seconds=delay_s))
        except JobLookupError:  # not started yet, or stopping: the interval run will do
            with self._kick_lock:
                self._kick_pending = False

    def _control_job(self) -> None:
        with self._kick_lock:
            self._running, self._kick_pending = True, False
        try:
            while True:
                with self._kick_lock:
                    self._rerun = False
                    self._last_run_s = time.monotonic()
                self.cycle()
                with self._kick_lock:
                    if not self._rerun or self._stopped:
                        break
        finally:
            with self._kick_lock:
                self._running = False

    def cycle(self) -> None:
        """One control cycle over all chargers."""
        with self._lock:
            if self._stopped:
                return
            started_s = time.perf_counter()
            now_s = time.time()
            # issue 15: the command inbox, before anything decides (settings only)
            if self.commands.drain(now_s, self.controllers, self.mode, self.limit_a):
                self._save()
            values = self.feeds.values()
            for name in self.chargers:
                try:
                    self._cycle_charger(name, now_s, values)
                except Exception:
                    log.exception("charger %s: control cycle failed", name)
            self._site_metrics(values)
            self.publishers.offer(self._view(now_s, values))  # issue 15: the Snapshot
            self._save_if_due()
            self.metrics.loop_s.observe(time.perf_counter() - started_s)
            self.notifier.status(self.status_line())
            self.notifier.watchdog()

    def _connect(self, name: str, mono_s: float) -> Actuator | None:
        run = self._runs[name]
        if run.connect_tried_s is not None and mono_s - run.connect_tried_s < CONNECT_RETRY_S:
            return None
        run.connect_tried_s = mono_s
        charger = self.chargers[name]
        try:
            caps = charger.connect()
            actuator = Actuator(charger, caps, self.settings.reassert_s,
                                lambda cmd: self.metrics.command_errors.labels(name, cmd).inc())
        except Exception as exc:  # a driver bug must not stop the other chargers
            self.metrics.command_errors.labels(name, "connect").inc()
            self._warn[name].warning(mono_s, "charger %s: cannot connect: %s (retrying every "
                                     "%g s)", name, exc, CONNECT_RETRY_S)
            return None
        old = self.controllers[name]
        controller = self._controller(caps)
        controller.restore(old.to_state())
        self.commands.settle(name, controller, self.mode, self.limit_a, time.time())  # 15
        self.controllers[name] = controller
        self.actuators[name] = actuator
        self._warn[name].reset()
        log.info("charger %s: connected, %s control, %g–%g A, %d phase(s)", name,
                 caps.control, caps.min_current_a, caps.max_current_a, caps.phases)
        return actuator

    def _read(self, name: str, mono_s: float) -> ChargerReading | None:
        try:
            return self.chargers[name].read()
        except (ChargerError, OSError) as exc:
            self.metrics.command_errors.labels(name, "read").inc()
            self._warn[name].warning(mono_s, "charger %s: read failed: %s", name, exc)
            return None

    def _cycle_charger(self, name: str, now_s: float, values: dict[str, float | None]) -> None:
        mono_s = time.monotonic()
        m = self.metrics
        actuator = self.actuators.get(name) or self._connect(name, mono_s)
        if actuator is None:
            m.connected.labels(name).set(0.0)
            return
        reading = self.readings[name] = self._read(name, mono_s)
        m.connected.labels(name).set(float(reading is not None))
        ev_w = self._ev_w(name, reading, values)
        voltage_v = values.get("voltage") or (None if reading is None else reading.voltage_v)
        inputs = Inputs(time_s=now_s, grid_w=values.get("grid"), solar_w=values.get("solar"),
                        load_w=values.get("load"), ev_w=ev_w, voltage_v=voltage_v,
                        battery_w=values.get("battery"),
                        battery_soc_pct=values.get("battery_soc"),
                        ev_soc_pct=values.get("ev_soc"))
        controller = self.controllers[name]
        plans = self.commands.plans(name, now_s)
        controller.set_target(target_now(self.plans[name] if plans is None else plans, now_s,
                                         now_s, self.tz))
        was_on = controller.charging
        decision = controller.step(inputs)
        actuator.apply(decision)
        self.last_decisions[name] = decision
        if decision.charging and not was_on:
            m.starts.labels(name).inc()
            log.info("charger %s: start at %g A (%s)", name, decision.current_a,
                     decision.reason)
        elif was_on and not decision.charging:
            log.info("charger %s: pause (%s)", name, decision.reason)
        run = self._runs[name]
        blocked = blocked_label(decision.code)
        if blocked is not None and blocked != run.blocked:
            m.blocked.labels(name, blocked).inc()
        run.blocked = blocked
        self._count_energy(name, run, mono_s, ev_w, inputs)
        m.setpoint_a.labels(name).set(decision.current_a)
        m.charging.labels(name).set(float(decision.charging))
        m.power_w.labels(name).set(math.nan if ev_w is None else ev_w)
        m.mode.labels(name).state(str(controller.mode))

    def _ev_w(self, name: str, reading: ChargerReading | None,
              values: dict[str, float | None]) -> float | None:
        """The EV's draw: the `ev_power` feed for the first charger, else its own reading."""
        if "ev_power" in self.feeds.feeds and next(iter(self.chargers)) == name:
            return values.get("ev_power")
        return None if reading is None else reading.power_w

    def _count_energy(self, name: str, run: _ChargerRun, mono_s: float, ev_w: float | None,
                      inp: Inputs) -> None:
        """Integrate the EV's power since the last cycle, split into surplus and grid.

        A gap longer than two intervals (charger silent, process paused) is not counted."""
        last_s, run.last_cycle_s = run.last_cycle_s, mono_s
        if last_s is None or ev_w is None or ev_w <= 0:
            return
        dt_s = mono_s - last_s
        if dt_s > 2 * self.settings.interval_s:
            return
        available_w = surplus_w(inp.grid_w, inp.solar_w, inp.load_w, ev_w,
                                self.site.grid_includes_ev, inp.battery_w)
        from_surplus_w = 0.0 if available_w is None else min(ev_w, max(0.0, available_w))
        surplus_wh = from_surplus_w * dt_s / 3600
        grid_wh = (ev_w - from_surplus_w) * dt_s / 3600
        run.ev_from_surplus_wh += surplus_wh
        run.ev_from_grid_wh += grid_wh
        self.metrics.ev_surplus_wh.labels(name).inc(surplus_wh)
        self.metrics.ev_grid_wh.labels(name).inc(grid_wh)

    def _site_metrics(self, values: dict[str, float | None]) -> None:
        m = self.metrics

        def nan(v: float | None) -> float:
            return math.nan if v is None else v

        m.grid_w.set(nan(values.get("grid")))
        m.solar_w.set(nan(values.get("solar")))
        m.surplus_w.set(nan(self._surplus_w(values)))
        for feed, age_s in self.feeds.ages_s().items():
            m.feed_age_s.labels(feed).set(nan(age_s))

    def _surplus_w(self, values: dict[str, float | None]) -> float | None:
        """The site's surplus: what all EVs could draw without import."""
        evs_w = [r.power_w for r in self.readings.values()
                 if r is not None and r.power_w is not None]
        return surplus_w(values.get("grid"), values.get("solar"), values.get("load"),
                         sum(evs_w), self.site.grid_includes_ev, values.get("battery"))

    def _view(self, now_s: float, values: dict[str, float | None]) -> Snapshot:
        """This cycle's Snapshot (issue 15; LOOP.md "report")."""
        facts = {}
        for name, controller in self.controllers.items():
            run, reading = self._runs[name], self.readings.get(name)
            eff = self.commands.effective(name, self.mode, self.limit_a, now_s)
            facts[name] = ChargerFacts(
                controller, self.last_decisions.get(name),
                name in self.actuators and reading is not None,
                self._ev_w(name, reading, values), run.ev_from_surplus_wh, run.ev_from_grid_wh,
                eff.limit_a, eff.boost_until_s)
        # wall clock, then the clock the guards run on (the same one here, for now)
        return self.snapshots.build(now_s, now_s, self.mode, values, self.feeds.ages_s(),
                                    self._surplus_w(values), facts)

    def status_line(self) -> str:
        """One line for `systemctl status`: the mode and each charger's current reason."""
        parts = [f"mode {self.mode}"]
        for name in self.chargers:
            decision = self.last_decisions.get(name)
            parts.append(f"{name}: " + ("not connected" if decision is None
                                        else decision.reason))
        return "; ".join(parts)


def _amount(value: Any) -> float:
    """A finite, non-negative number from the state file, else ValueError."""
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"expected a finite amount >= 0, got {value!r}")
    return out
