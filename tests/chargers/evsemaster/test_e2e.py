"""The daemon with an EVSEMaster charger end to end: grid values over a real mosquitto, the
driver's UDP session, and the emulated charger on loopback. A compressed solar day with
small relay limits: every current change is a stop, a gap and a start, and the charger's own
log of starts and stops never exceeds the relay guard."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_udp_port
from daemon_support import Publisher, settings, wait_for

from chargers.evsemaster.driver import EVSEMasterCharger
from chargers.evsemaster.emulator import EmulatorTiming, Event, EVSEMasterEmulator
from divert.daemon.service import Daemon

SERIAL = "9181102751219513"
PIN = "739184"
RELAY = {"min_on_s": 1.0, "min_off_s": 0.5, "max_starts_per_hour": 2, "max_starts_per_day": 2}
RESTART_GAP_S = 1.0
TOLERANCE_S = 0.3  # transit and scheduling between the controller's decision and the charger


@pytest.fixture
def charger_and_daemon(tmp_path: Path, mosquitto: Any,
                       ) -> Iterator[tuple[EVSEMasterEmulator, Daemon]]:
    port = free_udp_port()
    clocks = EmulatorTiming(login_interval_s=0.1, heading_interval_s=1.0,
                            status_interval_s=0.25)
    with EVSEMasterEmulator(SERIAL, PIN, broadcast_to=("127.0.0.1", port),
                            timing=clocks) as charger:
        daemon = Daemon(settings(
            tmp_path, mosquitto, relay=RELAY, reassert_s=1.0,
            chargers=[{"name": "carport", "type": "evsemaster", "serial": SERIAL,
                       "password": PIN, "port": port, "restart_gap_s": RESTART_GAP_S,
                       "max_current_a": 16}]))
        daemon.start()
        try:
            yield charger, daemon
        finally:
            daemon.stop()


def _switches(events: list[Event]) -> list[tuple[float, bool, int]]:
    return [(e.at_s, e.kind == "start", e.current_a) for e in events
            if e.kind in ("start", "stop")]


def test_a_compressed_solar_day_within_the_guard(
        charger_and_daemon: tuple[EVSEMasterEmulator, Daemon], publisher: Publisher) -> None:
    charger, daemon = charger_and_daemon
    assert isinstance(daemon.chargers["carport"], EVSEMasterCharger)

    def reason() -> str:
        decision = daemon.last_decisions.get("carport")
        return "" if decision is None else decision.reason

    def starts() -> list[int]:
        return [e.current_a for e in charger.starts()]

    # Morning: 1600 W of surplus carries 6 A (1380 W).
    publisher.until("home/grid", "-1600", lambda: starts() == [6], what="a start at 6 A")
    # More sun: 10 A is worth a relay cycle: stop, gap, start.
    publisher.until("home/grid", "-2400", lambda: starts() == [6, 10], what="a restart, 10 A")
    # Noon: 16 A would need a third start; the budget has none, so 10 A holds.
    publisher.until("home/grid", "-3800", lambda: "no start left in the budget" in reason(),
                    what="a hold for want of starts")
    assert charger.charging and starts() == [6, 10]
    # A cloud: too little for the minimum, so a stop.
    publisher.until("home/grid", "-600", lambda: not charger.charging, what="a stop")
    # Afternoon sun again, but no start left today.
    publisher.until("home/grid", "-2900", lambda: reason().startswith("blocked:"),
                    what="a start blocked by the budget")
    publisher.publish("home/grid", "0")
    # Re-asserts (every second here, all day long) never became starts or stops.
    settled = len(charger.events)
    time.sleep(1.5 * daemon.settings.reassert_s)  # proving a negative takes a re-assert
    assert _switches(charger.events[settled:]) == []

    log = _switches(charger.events)
    assert [(on, amps) for _, on, amps in log] == [(True, 6), (False, 0), (True, 10),
                                                   (False, 0)]
    for (t0, on0, _), (t1, _, _) in itertools.pairwise(log):
        least_s = RELAY["min_on_s"] if on0 else max(RELAY["min_off_s"], RESTART_GAP_S)
        assert t1 - t0 >= least_s - TOLERANCE_S, (log, t0, t1)
    guard = daemon.controllers["carport"].guard
    assert guard.starts_within(daemon.clock.control_s(), 86400) == len(charger.starts()) == 2
    reading = wait_for(lambda: daemon.readings.get("carport"), what="a reading")
    assert reading.charging is False and reading.vehicle_connected is True
