"""The PSP EVSE driver: a power-setpoint charger throttled through `EVSEPowerAvailable`.

The controller only follows `EVSEPowerAvailable` when its power optimisation is on and driven
remotely (`ControlStrategy` = 1, `Meter2Type` = 7). If it is not, `connect` raises
`ChargerError` whose one-line message names the settings to change (the daemon logs it): a
charger that would draw its full current whatever divert asks must not be started by divert
at all, and the daemon retries `connect`, so fixing the setting on the charger is enough.

Start and stop share one write, `ChargeStartToggle`, which flips the present state. `enable`
reads `ChargerStarted`, toggles only if it differs from the intent, and reads back; a toggle
whose reply was lost is never sent again for the same intent until `TOGGLE_SETTLE_S` passed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from chargers.base import ChargerError, ChargerReading
from chargers.psp.client import WebAPIClient
from chargers.psp.config import PSPConfig
from chargers.psp.webapi import (
    EVSE_CTRL,
    STATUS,
    SYSTEM_CONFIG,
    SYSTEM_INFO,
    Status,
    is_fault,
    parse_status,
    parse_system_config,
    parse_system_info,
)
from divert.core.capabilities import Capabilities

log = logging.getLogger(__name__)

TOGGLE_SETTLE_S = 30.0  # a toggle not yet seen in ChargerStarted is not repeated within this
CONFIRM_READS = 3  # Status reads after a toggle before giving up on seeing it
STEP_A = 0.1  # the setpoint is in W; 0.1 A per phase is finer than any pilot current
OVERSHOOT_READS = 3  # reads in a row drawing above the setpoint before saying so
OVERSHOOT_TOLERANCE_W = 100.0


class PSPCharger:
    """Implements Charger and PowerLimiter for one PSP EVSE controller."""

    def __init__(self, config: PSPConfig, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = config.name
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._client: WebAPIClient | None = None
        self._fault: str | None = None  # the fault last logged
        self._toggled: tuple[bool, float] | None = None  # unconfirmed toggle: intent, clock
        self._setpoint_w: float | None = None
        self._overshoot_reads = 0

    def connect(self) -> Capabilities:
        client = self._open()
        cfg = client.get(SYSTEM_CONFIG, parse_system_config)
        info = client.get(SYSTEM_INFO, parse_system_info)
        problems = cfg.problems()
        if problems:
            raise ChargerError(f"the PSP EVSE at {client.base_url} ignores EVSEPowerAvailable "
                               f"as configured; in its system settings set "
                               f"{' and '.join(problems)}")
        log.info("%s: PSP EVSE %s, firmware %s, MAC %s: %s", self.name, info.product or "?",
                 info.version, info.mac or "?", info.general or "no health report")
        c = self._config
        phases = 3 if cfg.three_phase else 1
        if phases != c.phases:
            log.warning("%s: config says phases = %d but the charger is set to %d-phase "
                        "charging (Charge3Phase); using %d", self.name, c.phases, phases, phases)
        if cfg.charge_current_a < c.max_current_a:
            log.info("%s: the charger's ChargeCurrent limits it to %g A (config max_current_a "
                     "%g A)", self.name, cfg.charge_current_a, c.max_current_a)
        if cfg.auto_start:
            log.warning("%s: ChargeAutoStart is on, so the charger starts a session by itself "
                        "when the car is plugged in; set it off to leave starts to divert",
                        self.name)
        return c.capabilities(phases, cfg.charge_current_a)

    def read(self) -> ChargerReading:
        status = self._status()
        state = status.words()
        fault = state if is_fault(status.evse_state) else None
        if fault != self._fault:
            if fault:
                log.warning("%s: %s", self.name, fault)
            else:
                log.info("%s: fault cleared, now %s", self.name, state)
            self._fault = fault
        state += self._check_setpoint(status)
        return ChargerReading(
            power_w=status.power_w, current_a=status.current_a,
            charging=status.drawing and status.power_w > 0,
            vehicle_connected=status.vehicle_connected, phases=3 if status.three_phase else 1,
            energy_wh=status.energy_ws / 3600.0, state=state)

    def set_power(self, power_w: float) -> None:
        """Write the power available to the charger, W over all phases (rounded down)."""
        if not math.isfinite(power_w) or power_w < 0:
            raise ValueError(f"power setpoint must be a finite number >= 0 W, got {power_w}")
        watts = math.floor(power_w)
        self._open().post(EVSE_CTRL, {"EVSEPowerAvailable": watts})
        if watts != self._setpoint_w:
            self._overshoot_reads = 0
        self._setpoint_w = watts

    def enable(self, on: bool) -> None:
        status = self._status()
        if status.started == on:
            self._toggled = None
            return
        intent = "start" if on else "stop"
        if self._toggled is not None and self._toggled[0] == on \
                and self._clock() - self._toggled[1] < TOGGLE_SETTLE_S:
            raise ChargerError(f"a {intent} was sent but ChargerStarted is still "
                               f"{str(status.started).lower()}; not toggling again before "
                               f"{TOGGLE_SETTLE_S:g} s passed")
        if not status.start_stop_allowed:
            raise ChargerError(f"cannot {intent} now: StartStopAllowed is false "
                               f"({status.words()})")
        self._toggled = (on, self._clock())
        try:
            self._open().post(EVSE_CTRL, {"ChargeStartToggle": True})
        except ChargerError as exc:
            # The toggle may have been applied with its reply lost: only a read can tell.
            log.warning("%s: %s; reading ChargerStarted back before anything else", self.name,
                        exc)
        for attempt in range(CONFIRM_READS):
            if attempt:
                self._sleep(self._config.retry_backoff_s * 2 ** (attempt - 1))
            if self._status().started == on:
                self._toggled = None
                log.info("%s: charging %s", self.name, "started" if on else "stopped")
                return
        raise ChargerError(f"sent one ChargeStartToggle to {intent} but "
                           f"ChargerStarted did not change after {CONFIRM_READS} reads; not "
                           f"toggling again before {TOGGLE_SETTLE_S:g} s passed")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _open(self) -> WebAPIClient:
        if self._client is None:
            c = self._config
            self._client = WebAPIClient(c.url, c.timeout_s, c.retries, c.retry_backoff_s,
                                        self._sleep)
        return self._client

    def _status(self) -> Status:
        return self._open().get(STATUS, parse_status)

    def _check_setpoint(self, status: Status) -> str:
        """Words for `state` when the charger draws, or offers the car, more than the setpoint
        read after read (one read may catch the car still ramping down): then divert is not
        throttling it, e.g. because ControlStrategy was changed on the charger after connect."""
        over = []
        if self._setpoint_w is not None:
            limit_w = self._setpoint_w + OVERSHOOT_TOLERANCE_W
            if status.power_w > limit_w:
                over.append(f"drawing {status.power_w:.0f} W")
            if status.power_available_w is not None and status.power_available_w > limit_w:
                over.append(f"ActualPowerAvailable {status.power_available_w:.0f} W")
        self._overshoot_reads = self._overshoot_reads + 1 if over else 0
        if self._overshoot_reads < OVERSHOOT_READS:
            return ""
        words = (f"not following the setpoint: {' and '.join(over)} over EVSEPowerAvailable "
                 f"{self._setpoint_w:.0f} W")
        if self._overshoot_reads == OVERSHOOT_READS:
            log.warning("%s: %s; check ControlStrategy = 1 and Meter2Type = 7 on the charger",
                        self.name, words)
        return f", {words}"
