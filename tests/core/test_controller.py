"""The control core: modes, feeds, capabilities and fail-safes, with explicit clocks."""

from __future__ import annotations

from typing import Any

import pytest

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller, Inputs, SiteParams
from divert.core.guard import RelayLimits
from divert.core.modes import Mode
from divert.core.policy import Desire, Observation
from divert.core.reasons import Reason
from divert.core.restart import RestartParams
from divert.core.surplus import surplus_w
from divert.policies.presets import PresetError, load_preset, parse_preset

CAPS = Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 1, 230.0)
FREE = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=60, max_starts_per_day=1000)


class Follow:
    """A plain policy for these tests (the shipped presets are tuned elsewhere): charge while
    the surplus carries the minimum, at the floor of the surplus; bridge 300 W of import."""

    def decide(self, obs: Observation) -> Desire:
        min_w = obs.caps.min_power_at(obs.phases)
        current_a = obs.surplus_w / (obs.voltage_v * obs.phases)
        if obs.surplus_w >= min_w + 200 or (obs.charging and obs.surplus_w >= min_w - 300):
            return Desire(True, current_a, f"charging from {obs.surplus_w:.0f} W",
                          Reason.CHARGING)
        return Desire(False, current_a, f"waiting: surplus {obs.surplus_w:.0f} W < "
                      f"{min_w + 200:.0f} W needed for {obs.caps.min_current_a:g} A",
                      Reason.WAITING)

    def to_state(self) -> dict[str, Any]:
        return {}  # no memory

    def restore(self, state: dict[str, Any]) -> None:
        pass


def _controller(caps: Capabilities = CAPS, limits: RelayLimits = FREE,
                mode: Mode = Mode.SOLAR, **site: float) -> Controller:
    return Controller(caps, Follow(), limits, mode, SiteParams(**site))  # type: ignore[arg-type]


def test_surplus_from_either_feed_kind() -> None:
    assert surplus_w(grid_w=-500, ev_w=1400) == 1900  # meter sees the EV: add it back
    assert surplus_w(grid_w=-500, ev_w=1400, grid_includes_ev=False) == 500
    assert surplus_w(solar_w=3000, load_w=400) == 2600
    assert surplus_w(solar_w=3000, load_w=400, battery_w=-300) == 2300
    assert surplus_w(solar_w=3000, load_w=400, battery_w=800) == 3400
    assert surplus_w(solar_w=3000, load_w=400, battery_w=800, battery_first=True) == 2600
    assert surplus_w() is None


def test_waiting_reason_names_the_numbers() -> None:
    d = _controller().step(Inputs(time_s=0, solar_w=900, load_w=0))
    assert not d.charging
    assert d.reason == "waiting: surplus 900 W < 1580 W needed for 6 A"


def test_tracks_surplus_in_whole_amps() -> None:
    ctl = _controller()
    d = ctl.step(Inputs(time_s=0, solar_w=2500, load_w=0))
    assert d.charging and d.current_a == 10 and d.power_w == 2300
    d = ctl.step(Inputs(time_s=5, grid_w=-300, ev_w=2300))
    assert d.current_a == 11
    d = ctl.step(Inputs(time_s=10, grid_w=1000, ev_w=2530))
    assert d.charging and d.current_a == 6  # clamped to the minimum while the policy bridges


def test_modes() -> None:
    ctl = _controller(mode=Mode.FAST)
    d = ctl.step(Inputs(time_s=0))  # fast needs no feed
    assert d.charging and d.current_a == 16 and d.reason.startswith("fast")
    ctl.mode = Mode.OFF
    d = ctl.step(Inputs(time_s=1, grid_w=-5000, ev_w=3680))
    assert not d.charging and d.reason == "off: mode is off"
    ctl.mode = Mode.MIN_SOLAR
    d = ctl.step(Inputs(time_s=2, grid_w=2000, ev_w=0))
    assert d.charging and d.current_a == 6 and d.reason.startswith("min-solar")


def test_guard_blocks_and_holds_with_reasons() -> None:
    limits = RelayLimits(min_on_s=600, min_off_s=300, max_starts_per_hour=1,
                         max_starts_per_day=4)
    ctl = _controller(limits=limits)
    assert ctl.step(Inputs(time_s=0, solar_w=4000, load_w=0)).charging
    ctl.mode = Mode.OFF
    d = ctl.step(Inputs(time_s=60, solar_w=4000, load_w=0))
    assert d.charging and d.reason == "holding: minimum on-time, 9 min left"
    assert not ctl.step(Inputs(time_s=600, solar_w=4000, load_w=0)).charging
    ctl.mode = Mode.FAST
    assert ctl.step(Inputs(time_s=700)).reason == "blocked: minimum off-time, 3 min left"
    assert ctl.step(Inputs(time_s=1000)).reason == "blocked: 1 starts in the last hour, limit 1"
    assert ctl.step(Inputs(time_s=3601)).charging


def test_stale_feed_fail_safe() -> None:
    ctl = _controller(stale_pause_s=120)
    assert ctl.step(Inputs(time_s=0, solar_w=4000, load_w=0)).current_a == 16
    d = ctl.step(Inputs(time_s=10))
    assert d.charging and d.current_a == 6 and d.reason.startswith("fail-safe")
    d = ctl.step(Inputs(time_s=130))
    assert not d.charging and "pausing" in d.reason
    d = ctl.step(Inputs(time_s=140))
    assert not d.charging and d.reason == "waiting: no fresh surplus data"
    assert ctl.step(Inputs(time_s=150, solar_w=4000, load_w=0)).charging


def test_restart_only_changes_current_through_stop_gap_start() -> None:
    caps = Capabilities(ControlKind.RESTART, 6, 16, 1.0, 1, 230.0, restart_gap_s=60)
    ctl = Controller(caps, Follow(), FREE, restart=RestartParams(min_gain_a=2))
    assert ctl.step(Inputs(time_s=0, solar_w=1840, load_w=0)).current_a == 8
    d = ctl.step(Inputs(time_s=10, solar_w=2070, load_w=0))  # 9 A: gain too small to restart
    assert d.current_a == 8 and "holding 8 A" in d.reason
    d = ctl.step(Inputs(time_s=20, solar_w=2530, load_w=0))  # 11 A: worth a cycle
    assert not d.charging and d.reason == "restarting: 8 A → 11 A"
    d = ctl.step(Inputs(time_s=50, solar_w=2530, load_w=0))
    assert not d.charging and d.reason == "restarting: 30 s gap before 11 A"
    d = ctl.step(Inputs(time_s=80, solar_w=2530, load_w=0))
    assert d.charging and d.current_a == 11
    assert ctl.guard.starts_within(80, 3600) == 2


def test_restart_only_steps_up_only_when_held_and_budget_left() -> None:
    caps = Capabilities(ControlKind.RESTART, 6, 16, 1.0, 1, 230.0, restart_gap_s=0)
    limits = RelayLimits(min_on_s=600, min_off_s=0, max_starts_per_hour=4, max_starts_per_day=4)
    ctl = _controller(caps=caps, limits=limits)
    assert ctl.step(Inputs(time_s=0, solar_w=1610, load_w=0)).current_a == 7
    d = ctl.step(Inputs(time_s=700, solar_w=2300, load_w=0))  # 10 A wanted from now on
    assert d.current_a == 7
    assert d.reason == "charging: holding 7 A (restart-only), 10 A wanted for 0 s"
    d = ctl.step(Inputs(time_s=1000, solar_w=1840, load_w=0))  # 8 A: not worth a cycle
    assert d.current_a == 7 and d.reason == "charging: holding 7 A (restart-only)"
    ctl.step(Inputs(time_s=1100, solar_w=2300, load_w=0))
    d = ctl.step(Inputs(time_s=1700, solar_w=2300, load_w=0))  # held for a minimum session
    assert not d.charging and d.reason == "restarting: 7 A → 10 A"
    assert ctl.step(Inputs(time_s=1705, solar_w=2300, load_w=0)).current_a == 10
    ctl.step(Inputs(time_s=2400, solar_w=3450, load_w=0))
    d = ctl.step(Inputs(time_s=3100, solar_w=3450, load_w=0))  # 15 A, but 2 of 4 starts used
    assert d.current_a == 10 and d.reason.endswith("no start left in the budget to restart")
    ctl.step(Inputs(time_s=3200, solar_w=1380, load_w=0))
    d = ctl.step(Inputs(time_s=3800, solar_w=1380, load_w=0))  # stepping down: no reserve
    assert not d.charging and d.reason == "restarting: 10 A → 6 A"


def test_power_setpoint_and_schedule_limit() -> None:
    caps = Capabilities(ControlKind.POWER, 6, 16, 0.1, 3, 230.0, min_power_w=4000)
    ctl = _controller(caps=caps)
    d = ctl.step(Inputs(time_s=0, solar_w=9000, load_w=0))
    assert d.charging and d.current_a == pytest.approx(13.0) and d.phases == 3
    assert d.power_w == pytest.approx(13.0 * 230 * 3)
    ctl.set_limit(10)
    assert ctl.step(Inputs(time_s=5, solar_w=9000, load_w=0)).current_a == 10


def test_state_survives_a_restart() -> None:
    limits = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=1, max_starts_per_day=4)
    ctl = _controller(limits=limits)
    ctl.step(Inputs(time_s=0, solar_w=4000, load_w=0))
    ctl.mode = Mode.OFF
    ctl.step(Inputs(time_s=10))
    saved = ctl.to_state()
    again = _controller(limits=limits)
    again.restore(saved)
    again.mode = Mode.FAST
    assert again.step(Inputs(time_s=20)).reason == "blocked: 1 starts in the last hour, limit 1"


def test_preset_errors_are_clear() -> None:
    with pytest.raises(PresetError, match="no preset 'x'"):
        load_preset("x")
    with pytest.raises(PresetError, match=r"policy p: policy.nope: unknown for kind surplus"):
        parse_preset("p", {"policy": {"nope": 1}})
    with pytest.raises(PresetError, match="unknown table"):
        parse_preset("p", {"extra": {}})
