"""One control cycle over all chargers: commands → read → inputs → step → record → apply →
report.

commands  the inbox of MQTT commands is drained: controller settings only.
read    every charger (connecting those not yet connected when due), in parallel, each call
        bounded by `CALL_TIMEOUT_S`; a charger still busy with an earlier call is skipped.
        A charger's first reading is reconciled with its relay guard: found charging, it is
        adopted as on, never paused and restarted.
inputs  one `SiteInputs`: the feeds, and each charger that may be commanded: read at least
        once, not busy, and the feeds had their chance (a first fresh value, or their
        `max_age_s` since start) unless its mode needs none (fast, off). Before that no
        command goes out to it.
step    `decisions = self.site.step(inputs)`: the pure core, one call (divert.core.site):
        the surplus shared, the site limit, each charger's policy and guard.
record  write-ahead: when a relay history changed the state is saved before any command;
        a start that cannot be saved is undone and not sent.
apply   the actuators, in parallel and bounded like the reads; a fresh reading that
        contradicts what was sent makes the actuator send everything again.
report  metrics and energy; then `hand_over` (the daemon's: the Snapshot to its publishers,
        the status line and the watchdog to systemd).

All times are on the control clock. The daemon runs a cycle under its lock; `abort` (set
when the daemon stops) ends every wait for chargers at once and skips the apply.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from chargers.base import Charger
from divert.config import Settings
from divert.core.capabilities import Capabilities
from divert.core.controller import Controller, Decision
from divert.core.modes import Mode
from divert.core.plan import target_now
from divert.core.reasons import Reason
from divert.core.site import ChargerInputs, Site, SiteInputs
from divert.daemon.actuator import Actuator
from divert.daemon.clock import Clock
from divert.daemon.commands import Commands
from divert.daemon.feeds import Feeds, ev_feed
from divert.daemon.metrics import Metrics, blocked_label
from divert.daemon.persistence import Persistence
from divert.daemon.snapshot import charger_reason
from divert.daemon.station import CONNECT_RETRY_S, Polled, Station
from divert.daemon.worker import wait_all

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 5.0  # a charger call taking longer is given up on for this cycle
# A fresh value of these runs the loop (the line currents: the fuse limit acts at once).
KICK_FEEDS = frozenset({"grid", "solar", "load", "grid_l1", "grid_l2", "grid_l3"})
DATA_FREE = frozenset({Mode.FAST, Mode.OFF})  # modes that decide without the feeds


class Cycle:
    """The chargers as the loop drives them: their stations, controllers and decisions."""

    def __init__(self, settings: Settings, clock: Clock, chargers: dict[str, Charger],
                 caps: dict[str, Capabilities], make: Callable[[Capabilities], Controller],
                 feeds: Feeds, metrics: Metrics, commands: Commands, persistence: Persistence,
                 save: Callable[[], bool],
                 hand_over: Callable[[dict[str, float | None]], None]) -> None:
        self.settings = settings
        self.clock = clock
        self.feeds = feeds
        self.metrics = metrics
        self.commands = commands
        self.persistence = persistence
        self._save = save
        self._make = make
        self._hand_over = hand_over
        self.mode: Mode = settings.policy.mode
        self.limit_a: float | None = None
        self.stations = {name: Station(name, charger) for name, charger in chargers.items()}
        self.site = Site(settings.members(), {name: self.new_controller(name, c)
                                              for name, c in caps.items()},
                         settings.site_rules(), settings.site_params())
        self.controllers = self.site.controllers  # one dict: the controllers the site steps
        self._ev_feeds = {name: ev_feed(name) for name in settings.ev_meters()}
        self._plans = {c.name: settings.plans_for(c.name) for c in settings.chargers}
        self._tz = ZoneInfo(settings.timezone)
        self.last_decisions: dict[str, Decision] = {}
        self.abort: Future[None] = Future()
        self.started_s = clock.control_s()
        self._feeds_ready = False

    def new_controller(self, name: str, caps: Capabilities) -> Controller:
        controller = self._make(caps)
        self.settle(name, controller)
        return controller

    def settle(self, name: str, controller: Controller) -> None:
        """Put the settings in force on a controller: the mode and cap (config or schedule),
        with what commands changed on top."""
        self.commands.settle(name, controller, self.mode, self.limit_a, self.clock.wall_s())

    def set_mode(self, mode: Mode, limit_a: float | None) -> None:
        self.mode, self.limit_a = mode, limit_a
        for name, controller in self.controllers.items():
            self.settle(name, controller)

    def run(self) -> None:
        started = time.perf_counter()
        if self.commands.drain(self.clock.wall_s(), self.controllers, self.mode, self.limit_a):
            self._save()
        now_s = self.clock.control_s()
        self._read(now_s)
        values = self.feeds.values()
        inputs = self._inputs(now_s, values)
        self._targets(now_s, inputs.wall_s or now_s)
        before = {name: self.controllers[name].to_state() for name in inputs.chargers}
        decisions = self.site.step(inputs)
        held = self._record(now_s, decisions, before)
        self.last_decisions.update(decisions)
        if not self.abort.done():
            self._apply({n: d for n, d in decisions.items() if n not in held})
        self._report(now_s, decisions, before, values)
        self.metrics.loop_s.observe(time.perf_counter() - started)

    # --- read ----------------------------------------------------------------------------

    def _read(self, now_s: float) -> None:
        calls: dict[str, Future[Polled]] = {}
        for name, station in self.stations.items():
            station.fresh = False
            if station.worker.busy:
                station.warn.warning(now_s, "charger %s: still busy with an earlier call, "
                                     "skipped", name)
                continue
            call = station.poll(now_s)
            if call is not None:
                calls[name] = station.worker.submit(call)
        wait_all(calls.values(), CALL_TIMEOUT_S, self.abort)
        for name, future in calls.items():
            station = self.stations[name]
            if not future.done():
                station.reading = None
                self._timed_out(station, now_s)
                continue
            try:
                polled = future.result()
            except Exception:  # a driver bug must not stop the other chargers
                log.exception("charger %s: read failed", name)
                station.reading = None
                continue
            self._take(station, polled, now_s)

    def _timed_out(self, station: Station, now_s: float) -> None:
        self.metrics.command_errors.labels(station.name, "timeout").inc()
        station.warn.warning(now_s, "charger %s: no answer within %g s", station.name,
                             CALL_TIMEOUT_S)

    def _take(self, station: Station, polled: Polled, now_s: float) -> None:
        name = station.name
        if polled.caps is not None:
            self._connected(station, polled.caps, now_s)
        if polled.failed is not None:
            self.metrics.command_errors.labels(name, polled.failed).inc()
            if polled.failed == "connect":
                station.warn.warning(now_s, "charger %s: cannot connect: %s (retrying every "
                                     "%g s)", name, polled.error, CONNECT_RETRY_S)
            else:
                station.warn.warning(now_s, "charger %s: read failed: %s", name, polled.error)
            station.reading = None
            return
        station.reading, station.fresh = polled.reading, True
        if station.actuator is not None and not station.adopted:
            self._adopt(station, now_s)

    def _connected(self, station: Station, caps: Capabilities, now_s: float) -> None:
        name = station.name
        try:
            actuator = Actuator(station.charger, caps, self.settings.reassert_s,
                                lambda cmd: self.metrics.command_errors.labels(name, cmd).inc(),
                                self.clock.control_s)
        except TypeError as exc:  # a driver that lacks what its capabilities promise
            self.metrics.command_errors.labels(name, "connect").inc()
            station.warn.warning(now_s, "charger %s: cannot connect: %s", name, exc)
            return
        controller = self._make(caps)
        controller.restore(self.controllers[name].to_state())
        self.settle(name, controller)
        self.controllers[name] = controller
        station.actuator = actuator
        station.warn.reset()
        log.info("charger %s: connected, %s control, %g–%g A, %d phase(s)", name,
                 caps.control, caps.min_current_a, caps.max_current_a, caps.phases)

    def _adopt(self, station: Station, now_s: float) -> None:
        """Reconcile the relay guard with what the charger's first reading says it is doing."""
        guard = self.controllers[station.name].guard
        charging = None if station.reading is None else station.reading.charging
        if charging and not guard.on:
            guard.adopt(now_s)
            log.info("charger %s: found charging; adopted as on (a start from now for the "
                     "budget and the minimum on-time)", station.name)
        elif charging is False and guard.on:
            guard.opened(now_s)
            log.info("charger %s: found not charging although the saved state had it on; "
                     "taken as paused from now", station.name)
        station.adopted = True

    # --- inputs and step -----------------------------------------------------------------

    def _feeds_had_chance(self, now_s: float, values: dict[str, float | None]) -> bool:
        if not self._feeds_ready:
            kick = [f.spec for n, f in self.feeds.feeds.items() if n in KICK_FEEDS]
            fresh = any(values.get(spec.name) is not None for spec in kick)
            waited = not kick or now_s - self.started_s >= max(s.max_age_s for s in kick)
            if fresh or waited:
                self._feeds_ready = True
                if not fresh and kick:
                    log.info("feeds: no value within max_age_s; controlling without")
        return self._feeds_ready

    def _inputs(self, now_s: float, values: dict[str, float | None]) -> SiteInputs:
        feeds_ready = self._feeds_had_chance(now_s, values)
        chargers: dict[str, ChargerInputs] = {}
        for name, station in self.stations.items():
            if station.actuator is None or not station.adopted or station.worker.busy:
                continue
            if not feeds_ready and self.controllers[name].mode not in DATA_FREE:
                continue
            r = station.reading
            station.ev_w = self.ev_w(name, values)
            chargers[name] = ChargerInputs(
                station.ev_w, None if r is None else r.voltage_v, r is not None,
                None if r is None else r.vehicle_connected,
                r.state if r is not None and r.state.startswith("fault") else None,
                values.get("ev_soc"))
        return SiteInputs(now_s, values.get("grid"), values.get("solar"), values.get("load"),
                          values.get("voltage"), values.get("battery"),
                          values.get("battery_soc"), (values.get("grid_l1"),
                                                      values.get("grid_l2"),
                                                      values.get("grid_l3")), chargers,
                          self.clock.wall_s())

    def _targets(self, now_s: float, wall_s: float) -> None:
        """Each controller's departure-plan target: a plan set by command, else the
        config's (times of day on the wall clock, deadlines on the control clock)."""
        for name, controller in self.controllers.items():
            plans = self.commands.plans(name, wall_s)
            controller.set_target(target_now(self._plans.get(name, []) if plans is None
                                             else plans, wall_s, now_s, self._tz))

    def ev_w(self, name: str, values: dict[str, float | None]) -> float | None:
        """The EV's draw: the charger's own meter if it has one, else its own reading."""
        feed = self._ev_feeds.get(name)
        if feed is not None:
            return values.get(feed)
        reading = self.stations[name].reading
        return None if reading is None else reading.power_w

    # --- record --------------------------------------------------------------------------

    def _record(self, now_s: float, decisions: dict[str, Decision],
                before: dict[str, dict[str, Any]]) -> set[str]:
        """Save before any command when a relay history changed (or the energy is due). If
        the save fails, undo this step's starts; their chargers are left as they are."""
        guards = {name: c.guard.to_state() for name, c in self.controllers.items()}
        if not self.persistence.due(guards, now_s) or self._save():
            return set()
        started = {name for name in decisions
                   if guards[name]["starts_s"][-1:] != before[name]["guard"]["starts_s"][-1:]}
        for name in started:
            self.controllers[name].restore(before[name])
            was = self.last_decisions.get(name) or Decision(
                False, 0.0, 0.0, self.controllers[name].phases, "", Reason.WAITING)
            decisions[name] = replace(was, reason="blocked: the start could not be recorded "
                                      "(the state file cannot be written)",
                                      code=Reason.BLOCKED_UNSAVED)
        return started

    # --- apply ---------------------------------------------------------------------------

    def _apply(self, decisions: dict[str, Decision]) -> None:
        calls = {}
        for name, decision in decisions.items():
            station = self.stations[name]
            assert station.actuator is not None
            reading = station.reading if station.fresh else None
            calls[name] = station.worker.submit(partial(station.actuator.apply, decision,
                                                        reading))
        wait_all(calls.values(), CALL_TIMEOUT_S, self.abort)
        for name, future in calls.items():
            station = self.stations[name]
            if not future.done():
                self._timed_out(station, self.clock.control_s())
                continue
            try:
                applied = future.result()
            except Exception:  # a driver bug must not stop the other chargers
                log.exception("charger %s: command failed", name)
                continue
            if applied.contradiction is not None:
                self.metrics.resends.labels(name, applied.contradiction).inc()
                log.warning("charger %s: its reading (%s) contradicts the last command "
                            "(%s); sent everything again", name,
                            station.reading.state if station.reading else "?",
                            applied.contradiction.replace("_", " "))

    # --- report --------------------------------------------------------------------------

    def _report(self, now_s: float, decisions: dict[str, Decision],
                before: dict[str, dict[str, Any]], values: dict[str, float | None]) -> None:
        m = self.metrics
        shares = self.site.status.shares_w
        for name, station in self.stations.items():
            m.connected.labels(name).set(float(station.reading is not None))
            decision = decisions.get(name)
            if decision is None:
                continue
            was_on = bool(before[name]["guard"]["on"])
            if decision.charging and not was_on:
                station.relay_starts += 1
                m.starts.labels(name).inc()
                log.info("charger %s: start at %g A (%s)", name, decision.current_a,
                         decision.reason)
            elif was_on and not decision.charging:
                log.info("charger %s: pause (%s)", name, decision.reason)
            blocked = blocked_label(decision.code)
            if blocked is not None and blocked != station.blocked:
                m.blocked.labels(name, blocked).inc()
            station.blocked = blocked
            self._count_energy(station, now_s, shares.get(name))
            m.share_w.labels(name).set(_nan(shares.get(name)))
            m.setpoint_a.labels(name).set(decision.current_a)
            m.charging.labels(name).set(float(decision.charging))
            m.power_w.labels(name).set(math.nan if station.ev_w is None else station.ev_w)
            m.mode.labels(name).state(str(self.controllers[name].mode))
        self._site_metrics(values)
        self._hand_over(values)

    def _count_energy(self, station: Station, now_s: float, share_w: float | None) -> None:
        """Integrate the EV's power since the last cycle, split into surplus (its share of
        it) and grid.

        A gap longer than two intervals (charger silent, process paused) is not counted."""
        last_s, station.last_cycle_s = station.last_cycle_s, now_s
        ev_w = station.ev_w
        if last_s is None or ev_w is None or ev_w <= 0:
            return
        dt_s = now_s - last_s
        if dt_s > 2 * self.settings.interval_s:
            return
        from_surplus_w = 0.0 if share_w is None else min(ev_w, max(0.0, share_w))
        surplus_wh = from_surplus_w * dt_s / 3600
        grid_wh = (ev_w - from_surplus_w) * dt_s / 3600
        station.ev_from_surplus_wh += surplus_wh
        station.ev_from_grid_wh += grid_wh
        self.metrics.ev_surplus_wh.labels(station.name).inc(surplus_wh)
        self.metrics.ev_grid_wh.labels(station.name).inc(grid_wh)

    def _site_metrics(self, values: dict[str, float | None]) -> None:
        m, site = self.metrics, self.site.status
        m.grid_w.set(_nan(values.get("grid")))
        m.solar_w.set(_nan(values.get("solar")))
        m.surplus_w.set(_nan(site.surplus_w))
        m.site_limit_w.set(_nan(site.max_import_w))
        m.site_limited.set(float(site.limited))
        for feed, age_s in self.feeds.ages_s().items():
            m.feed_age_s.labels(feed).set(_nan(age_s))

    def status_line(self) -> str:
        """One line for `systemctl status`: the mode and each charger's current reason."""
        parts = [f"mode {self.mode}"]
        for name, station in self.stations.items():
            parts.append(f"{name}: " + charger_reason(self.last_decisions.get(name),
                                                      station.actuator is not None))
        return "; ".join(parts)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
