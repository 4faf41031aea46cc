"""The go-e driver: the synchronous Charger facade over divert's OCPP server.

The charger connects to divert, not the other way round: `connect()` registers it with the
shared server and returns at once; it is usable once it has connected. Every command becomes
the SetChargingProfile for one `Setpoint` (limit per phase in A, 0 when paused; phases) and
blocks until the charger has answered. A command sent while it is away raises ChargerError
and is given to it when it connects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from chargers.base import ChargerError, ChargerReading
from chargers.goe_ocpp.central import CALL_TIMEOUT_S, Snapshot, Station
from chargers.goe_ocpp.config import GoEOcppConfig, OcppConfig
from chargers.goe_ocpp.profiles import Setpoint, quantize_a
from chargers.goe_ocpp.server import OcppServer, server_for
from divert.core.capabilities import Capabilities

# Within this many seconds an identical profile is not sent again: the daemon's set_phases,
# set_current and enable of one step (or one re-assert) become a single SetChargingProfile.
REPEAT_S = 5.0
_WORDS = {"Available": "no vehicle", "Preparing": "vehicle connected", "Charging": "charging",
          "SuspendedEV": "paused by the vehicle", "SuspendedEVSE": "paused by the charger",
          "Finishing": "finishing", "Reserved": "reserved", "Unavailable": "unavailable"}


class GoEOcppCharger:
    """Implements Charger, CurrentLimiter and PhaseSwitcher (three-phase wiring only)."""

    def __init__(self, config: GoEOcppConfig, ocpp: OcppConfig, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = config.name
        self._config = config
        self._ocpp = ocpp
        self._sample_s = ocpp.meter_sample_s or max(1, math.ceil(interval_s))
        self._clock = clock
        self._enabled = False
        self._current_a = config.min_current_a
        self._phases: int = config.phases
        self._sent: tuple[Setpoint, float] | None = None  # last accepted, and when
        self._server: OcppServer | None = None
        self._station: Station | None = None

    def connect(self) -> Capabilities:
        c = self._config
        if self._station is None:
            try:
                password = c.read_password()
            except ValueError as exc:
                raise ChargerError(str(exc)) from None
            default = Setpoint(quantize_a(c.default_current_a), c.phases)
            station = Station(c.charge_box_id, password, default,
                              self._sample_s, self._ocpp.heartbeat_s, self._clock)
            server = server_for(self._ocpp)
            server.register(station)
            self._server, self._station = server, station
        return c.capabilities()

    def _snapshot(self) -> Snapshot:
        if self._station is None:
            raise ChargerError("not registered with the OCPP server (call connect first)")
        snap = self._station.snapshot()
        if not snap.connected:
            away = (" (it has not connected yet)" if snap.since_s is None else
                    f" (lost {self._clock() - snap.since_s:.0f} s ago)")
            raise ChargerError(f"go-e {self._config.charge_box_id} is not connected to divert's"
                               f" OCPP server{away}")
        return snap

    def read(self) -> ChargerReading:
        snap = self._snapshot()
        sample = snap.meter
        fresh = (sample is not None and snap.meter_age_s is not None
                 and snap.meter_age_s <= 3 * self._sample_s + 10)
        charging = None if snap.status is None else snap.status == "Charging"
        power_w: float | None = None
        if snap.transaction_id is None and charging is False:
            power_w = 0.0  # no session: nothing flows (and the go-e samples only in sessions)
        elif fresh and sample is not None:
            power_w = sample.power_w
        state = _WORDS.get(snap.status or "", "status unknown")
        if snap.status == "Faulted":
            state = f"fault: {snap.error_code}{f' ({snap.info})' if snap.info else ''}"
        if snap.problem:
            state += f"; {snap.problem}"
        return ChargerReading(
            power_w=power_w,
            current_a=sample.max_current_a if fresh and sample else None,
            voltage_v=sample.mean_voltage_v if fresh and sample else None,
            charging=charging, vehicle_connected=snap.vehicle_connected,
            phases=sample.phases_drawing() if fresh and sample and charging else None,
            energy_wh=sample.energy_wh if fresh and sample else None, state=state)

    def enable(self, on: bool) -> None:
        """Resume at the set current (True) or pause with a 0 A limit (False)."""
        self._enabled = on
        self._send()

    def set_current(self, current_a: float) -> None:
        """Limit per phase in A, rounded down to whole amperes; sent now if charging is
        enabled."""
        self._current_a = quantize_a(min(current_a, self._config.max_current_a))
        self._send()

    def set_phases(self, phases: int) -> None:
        """1 or 3 phases, through the profile's numberPhases."""
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {phases}")
        self._phases = phases
        self._send()

    def _send(self) -> None:
        server, station = self._server, self._station
        if server is None or station is None:
            raise ChargerError("not registered with the OCPP server (call connect first)")
        setpoint = Setpoint(self._current_a if self._enabled else 0.0, self._phases)
        now_s = self._clock()
        sent = self._sent
        if sent is not None and sent[0] == setpoint and now_s - sent[1] < REPEAT_S:
            return
        self._sent = None
        server.run(station.apply(setpoint), 3 * CALL_TIMEOUT_S)
        self._sent = (setpoint, now_s)

    def close(self) -> None:
        """Stop accepting the charger; it keeps its last profile."""
        if self._server is not None and self._station is not None:
            self._server.unregister(self._station)
        self._server = self._station = None
