"""Start-up adopts, never bounces; a reading that contradicts the last command is answered at
once (a charger back from a power cut), at most every few seconds.

Emulated OpenEVSE over HTTP, real mosquitto, a hand-moved clock (see harness.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon_support import Publisher

from chargers.openevse.rapi import EvseState
from divert.daemon.actuator import RESEND_MIN_S

from .harness import controls, rig

RELAY = {"min_on_s": 300, "min_off_s": 300, "max_starts_per_hour": 2, "max_starts_per_day": 6}
FREE = {**RELAY, "min_on_s": 0, "min_off_s": 0, "max_starts_per_hour": 60}


def test_a_charger_found_charging_is_adopted_not_bounced(tmp_path: Path, mosquitto: Any,
                                                         publisher: Publisher) -> None:
    with rig(tmp_path, mosquitto, publisher, charging=True, relay=RELAY) as r:
        daemon = r.start()
        evse = r.evses["garage"]
        r.tick(times=10)  # no feed value yet
        assert controls(evse) == []
        guard = daemon.controllers["garage"].guard
        assert guard.on and guard.starts_within(r.clock.control_s(), 3600) == 1
        assert daemon.status_line() == \
            "mode solar; garage: waiting for a reading and fresh feed values"
        r.grid(500)  # no surplus: the policy would stop; the minimum on-time holds
        r.tick(times=3)
        assert daemon.last_decisions["garage"].reason.startswith("holding: minimum on-time")
        assert controls(evse) == ["SC 6 V", "FE"]  # minimum current; no pause, no restart
        assert evse.state == EvseState.CHARGING and evse.closes == 0


def test_without_feed_values_the_first_command_waits_for_max_age(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    feeds = {"grid": {"topic": "home/grid", "max_age_s": 30, "includes_ev": False}}
    with rig(tmp_path, mosquitto, publisher, charging=True, relay=RELAY, feeds=feeds) as r:
        r.start()
        evse = r.evses["garage"]
        assert r.until(lambda: controls(evse), 1) == 30
        # The meter had its chance: the fail-safe for missing data, not a pause.
        assert controls(evse) == ["SC 6 V", "FE"] and evse.state == EvseState.CHARGING


def test_a_charger_back_from_a_power_cut_is_corrected_at_once(
        tmp_path: Path, mosquitto: Any, publisher: Publisher) -> None:
    with rig(tmp_path, mosquitto, publisher, relay=FREE) as r:  # re-assert every 60 s
        daemon = r.start()
        evse = r.evses["garage"]

        def resends(reason: str) -> float | None:
            return daemon.metrics.registry.get_sample_value(
                "divert_charger_resends_total", {"charger": "garage", "reason": reason})

        r.grid(-1990)
        r.tick(times=10)
        assert evse.state == EvseState.CHARGING and evse.current_a == 8
        evse.reboot()  # back at the 16 A in its EEPROM
        r.tick()
        assert evse.current_a == 8 and resends("above_setpoint") == 1
        r.grid(500)
        r.tick(times=10)
        assert evse.state == EvseState.SLEEPING
        evse.reboot()  # enabled again, and the car draws
        assert evse.state == EvseState.CHARGING
        r.tick()
        assert evse.state == EvseState.SLEEPING and resends("charging_while_paused") == 1
        evse.reboot()  # at once again: answered once RESEND_MIN_S has passed
        r.tick(times=int(RESEND_MIN_S) - 1)
        assert evse.state == EvseState.CHARGING
        r.tick()
        assert evse.state == EvseState.SLEEPING and resends("charging_while_paused") == 2
