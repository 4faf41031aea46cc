"""1/3-phase switching in the control core: when it switches, and that the guard rules it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relay_support import check_relay_history

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller, Decision, Inputs
from divert.core.guard import HOUR_S, RelayGuard, RelayLimits
from divert.core.modes import Mode
from divert.core.phases import PhaseParams
from divert.core.policy import Desire, Observation
from divert.core.reasons import Reason
from divert.policies.presets import load_preset

CAPS = Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 3, 230.0, phase_switching=True)
FREE = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=60, max_starts_per_day=1000,
                   min_phase_switch_s=600)
T0 = 1_700_000_000.0


class Follow:
    """Charge while the surplus carries the minimum (minus 300 W), at its floor."""

    def decide(self, obs: Observation) -> Desire:
        min_w = obs.caps.min_power_at(obs.phases)
        current_a = obs.surplus_w / (obs.voltage_v * obs.phases)
        return Desire(obs.surplus_w >= min_w - 300, current_a, "follow", Reason.CHARGING)

    def to_state(self) -> dict[str, Any]:
        return {}  # no memory

    def restore(self, state: dict[str, Any]) -> None:
        pass


def _ctl(limits: RelayLimits = FREE, caps: Capabilities = CAPS,
         phase_tau_s: float = 0.0) -> Controller:
    return Controller(caps, Follow(), limits, phase=PhaseParams(tau_s=phase_tau_s))


def _at(ctl: Controller, t_s: float, solar_w: float) -> Decision:
    return ctl.step(Inputs(time_s=T0 + t_s, solar_w=solar_w, load_w=0))


def test_down_to_one_phase_and_back_up_after_the_interval() -> None:
    ctl = _ctl()
    d = _at(ctl, 0, 6000)
    assert (d.charging, d.phases, d.current_a) == (True, 3, 8)
    d = _at(ctl, 60, 2500)
    assert (d.charging, d.phases, d.current_a) == (True, 1, 10)
    assert d.reason == "switching to 1 phase: surplus 2500 W cannot carry 4140 W on 3"
    assert d.power_w == 2300
    d = _at(ctl, 120, 6000)  # the interval holds it on one phase, at its maximum
    assert (d.phases, d.current_a) == (1, 16)
    d = _at(ctl, 660, 6000)
    assert (d.phases, d.current_a) == (3, 8)
    assert d.reason == "switching to 3 phases: surplus 6000 W exceeds 3680 W on 1"


def test_a_switch_is_a_start_in_the_budget() -> None:
    limits = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=2,
                         max_starts_per_day=10, min_phase_switch_s=0)
    ctl = _ctl(limits)
    assert _at(ctl, 0, 6000).phases == 3  # start 1
    assert _at(ctl, 60, 2500).phases == 1  # switch = start 2
    d = _at(ctl, 120, 6000)
    assert d.phases == 1 and d.current_a == 16
    assert str(ctl.guard.why_no_switch(T0 + 120)) == "2 starts in the last hour, limit 2"
    assert _at(ctl, 60 + HOUR_S, 6000).phases == 3


def test_minimum_on_time_runs_from_the_last_switch() -> None:
    limits = RelayLimits(min_on_s=300, min_off_s=0, max_starts_per_hour=60,
                         max_starts_per_day=100, min_phase_switch_s=0)
    ctl = _ctl(limits)
    _at(ctl, 0, 6000)
    assert _at(ctl, 100, 2500).phases == 3  # minimum on-time since the start
    assert _at(ctl, 300, 2500).phases == 1
    d = _at(ctl, 400, 500)  # Follow wants to stop: the guard holds it since the switch
    assert d.charging and d.reason.startswith("holding: minimum on-time")
    assert not _at(ctl, 600, 500).charging


def test_one_phase_rather_than_stop_even_before_the_average_moves() -> None:
    ctl = _ctl(phase_tau_s=3600)
    _at(ctl, 0, 6000)
    d = _at(ctl, 60, 3000)  # below Follow's 3840 W on three phases, fine on one
    assert (d.charging, d.phases, d.current_a) == (True, 1, 13)
    d = _at(ctl, 120, 1000)  # nothing carries it: a stop, not a switch
    assert not d.charging and d.phases == 1


def test_the_averaged_surplus_ignores_a_short_spike() -> None:
    ctl = _ctl(phase_tau_s=600)
    _at(ctl, 0, 3000)
    assert ctl.phases == 1  # off: set to one phase at once, no relay cycle
    assert len(ctl.guard.to_state()["starts_s"]) == 0
    d = _at(ctl, 660, 3000)
    assert (d.charging, d.phases) == (True, 1)
    d = _at(ctl, 720, 9000)
    assert (d.phases, d.current_a) == (1, 16)
    for t in range(780, 780 + 20 * 60, 60):
        d = _at(ctl, t, 9000)
    assert d.phases == 3


def test_without_the_capability_nothing_switches() -> None:
    for caps in (Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 3, 230.0),
                 Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 1, 230.0, phase_switching=True)):
        ctl = _ctl(caps=caps)
        phases = {_at(ctl, t, w).phases for t, w in ((0, 6000), (700, 2000), (1400, 9000))}
        assert phases == {caps.phases}


def test_fast_mode_wants_three_phases() -> None:
    ctl = _ctl()
    _at(ctl, 0, 3000)
    assert ctl.phases == 1
    ctl.mode = Mode.FAST
    d = _at(ctl, 700, 0)
    assert (d.charging, d.phases, d.reason) == (False, 3, "waiting: set to 3 phases, fast mode")
    d = _at(ctl, 710, 0)
    assert (d.charging, d.phases, d.current_a) == (True, 3, 16)


def test_phases_and_switch_time_survive_a_restart() -> None:
    ctl = _ctl()
    _at(ctl, 0, 6000)
    _at(ctl, 60, 2500)
    saved = ctl.to_state()
    assert saved["phases"] == 1 and saved["guard"]["switched_s"] == T0 + 60
    again = _ctl()
    again.restore(saved)
    assert again.phases == 1
    assert str(again.guard.why_no_switch(T0 + 120)) == "minimum phase-switch interval, 9 min left"
    wired_one = _ctl(caps=Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 1, 230.0))
    wired_one.restore({**saved, "phases": 3})
    assert wired_one.phases == 1


def test_guard_switch_rules() -> None:
    g = RelayGuard(RelayLimits(min_on_s=300, min_off_s=600, max_starts_per_hour=2,
                               max_starts_per_day=3, min_phase_switch_s=900))
    assert g.why_no_switch(0) is None  # off: a free choice
    g.switch(0)
    assert str(g.why_no_switch(10)) == "minimum phase-switch interval, 15 min left"
    g.start(1000)
    assert str(g.why_no_switch(1100)) == "minimum on-time, 3 min left"
    g.switch(1300)
    assert (g.changed_s, g.switched_s, g.starts_within(1300, HOUR_S)) == (1300, 1300, 2)
    assert str(g.why_no_stop(1400)) == "minimum on-time, 3 min left"
    with pytest.raises(RuntimeError, match="phase switch refused"):
        g.switch(2300)  # the hourly budget is spent


# --- properties ---------------------------------------------------------------------------

# Stretches of steady export around the one- and three-phase limits, noise, feed gaps.
_grid_w = st.one_of(st.none(), st.sampled_from([500.0, -1000.0, -2500.0, -3500.0, -4500.0,
                                                -9000.0]), st.floats(-12000, 3000))
_stretch = st.tuples(st.integers(1, 40), st.floats(1, 120), _grid_w,
                     st.sampled_from([None, None, None, *Mode]))
feeds = st.lists(_stretch, min_size=1, max_size=30).map(
    lambda stretches: [(dt_s, grid_w, mode if i == 0 else None)
                       for n, dt_s, grid_w, mode in stretches for i in range(n)])

@settings(max_examples=300, deadline=None)
@given(feeds, st.sampled_from(["balanced", "solar-only", "max-solar", "openevse-default"]),
       st.sampled_from([0, 120, 600]), st.sampled_from([0, 120, 600]), st.integers(1, 4),
       st.integers(2, 8), st.sampled_from([0, 300, 900, 1800]), st.sampled_from([0.0, 60.0, 600.0]),
       st.sampled_from([16, 32]))
def test_no_feed_sequence_switches_outside_the_guard(
        steps: list[tuple[float, float | None, Mode | None]], preset_name: str, min_on_s: int,
        min_off_s: int, per_hour: int, per_day: int, switch_s: int, tau_s: float,
        max_a: int) -> None:
    limits = RelayLimits(min_on_s, min_off_s, per_hour, per_day, switch_s)
    caps = Capabilities(ControlKind.CURRENT, 6, max_a, 1.0, 3, 230.0, phase_switching=True)
    ctl = Controller(caps, load_preset(preset_name).make_policy(), limits,
                     phase=PhaseParams(tau_s))
    t = T0
    events: list[tuple[float, bool, int, bool]] = []
    ev_w = 0.0
    for dt_s, grid_w, mode in steps:
        t += dt_s
        if mode is not None:
            ctl.mode = mode
        d = ctl.step(Inputs(time_s=t, grid_w=None if grid_w is None else grid_w + ev_w,
                            ev_w=ev_w))
        assert d.phases in (1, 3) and d.power_w == pytest.approx(d.current_a * 230 * d.phases)
        ev_w = d.power_w
        events.append((t, d.charging, d.phases, False))
    check_relay_history(events, limits)
