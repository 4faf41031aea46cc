"""The relay-cycle guard: unit behaviour, and property tests through the whole controller."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller, Inputs
from divert.core.guard import DAY_S, HOUR_S, Hold, RelayGuard, RelayLimits, rebase
from divert.core.modes import Mode
from divert.core.reasons import Reason
from divert.policies.presets import load_preset


def test_min_on_and_min_off_are_held() -> None:
    g = RelayGuard(RelayLimits(min_on_s=300, min_off_s=120, max_starts_per_hour=5,
                               max_starts_per_day=10))
    assert g.why_no_start(0) is None
    g.start(0)
    assert str(g.why_no_stop(100)) == "minimum on-time, 3 min left"
    assert g.why_no_stop(300) is None
    g.stop(300)
    assert str(g.why_no_start(360)) == "minimum off-time, 60 s left"


def test_starts_budget_rolls() -> None:
    g = RelayGuard(RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=2,
                               max_starts_per_day=3))
    for t in (0, 10):
        g.start(t)
        g.stop(t + 1)
    assert str(g.why_no_start(20)) == "2 starts in the last hour, limit 2"
    g.start(HOUR_S + 1)
    g.stop(HOUR_S + 2)
    assert str(g.why_no_start(2 * HOUR_S + 20)) == "3 starts in the last 24 h, limit 3"
    assert g.why_no_start(DAY_S + 11) is None


def test_state_round_trip_keeps_the_budget() -> None:
    limits = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=1, max_starts_per_day=5)
    g = RelayGuard(limits)
    g.start(100)
    restored = RelayGuard.from_state(limits, g.to_state())
    assert restored.on and restored.why_no_stop(101) is None
    restored.stop(101)
    assert str(restored.why_no_start(102)) == "1 starts in the last hour, limit 1"


def test_facts_are_recorded_whatever_the_limits_say() -> None:
    limits = RelayLimits(min_on_s=300, min_off_s=300, max_starts_per_hour=1,
                         max_starts_per_day=1)
    g = RelayGuard(limits)
    g.adopt(10)  # found charging: a start now, though no start would be allowed
    assert g.on and g.last_start_s == 10 and g.starts_within(10, HOUR_S) == 1
    assert str(g.why_no_stop(20)) == "minimum on-time, 5 min left"
    g.opened(20)  # the shutdown pause: the relay opened, the minimum off-time runs
    assert not g.on and str(g.why_no_start(30)) == "minimum off-time, 5 min left"


def test_rebase_moves_every_time_and_takes_the_future_as_now() -> None:
    g = RelayGuard(RelayLimits(min_on_s=0, min_off_s=0, min_phase_switch_s=0))
    g.start(100)
    g.switch(200)
    on_wall, moved = rebase(g.to_state(), 1e9)
    assert moved == 0 and on_wall["starts_s"] == [1e9 + 100, 1e9 + 200]
    assert on_wall["changed_s"] == on_wall["switched_s"] == 1e9 + 200
    # Loaded where the clock reads 150: the times after it count as 150, and are counted.
    back, moved = rebase(on_wall, -1e9, latest_s=150)
    assert moved == 4
    assert back["starts_s"] == [100, 150] and back["switch_starts_s"] == [150]
    assert back["changed_s"] == back["switched_s"] == 150


feeds = st.lists(st.tuples(st.floats(1, 120), st.one_of(st.none(), st.floats(-3000, 9000)),
                           st.sampled_from([None, *Mode])), min_size=1, max_size=400)


def _check_history(events: list[tuple[float, bool]], limits: RelayLimits) -> None:
    """events: (time, charging) per step. No limit of the guard is ever exceeded."""
    starts = [t for (t, on), (_, was) in zip(events, [(0.0, False), *events], strict=False)
              if on and not was]
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[: i + 1] if u > t - HOUR_S) <= limits.max_starts_per_hour
        assert sum(1 for u in starts[: i + 1] if u > t - DAY_S) <= limits.max_starts_per_day
    changes = [(t, on) for (t, on), (_, was) in zip(events, [(0.0, False), *events],
                                                    strict=False) if on != was]
    for (t0, on0), (t1, _) in itertools.pairwise(changes):
        assert t1 - t0 >= (limits.min_on_s if on0 else limits.min_off_s) - 1e-9


@settings(max_examples=200, deadline=None)
@given(feeds, st.sampled_from([ControlKind.CURRENT, ControlKind.RESTART, ControlKind.POWER]),
       st.sampled_from(["balanced", "solar-only", "max-solar", "openevse-nowaste"]),
       st.integers(0, 900), st.integers(0, 900), st.integers(1, 4), st.integers(1, 8))
def test_no_feed_or_mode_sequence_breaks_the_guard(
        steps: list[tuple[float, float | None, Mode | None]], control: ControlKind,
        preset_name: str, min_on_s: int, min_off_s: int, per_hour: int, per_day: int) -> None:
    limits = RelayLimits(min_on_s, min_off_s, per_hour, per_day)
    caps = Capabilities(control, 6, 32, 1.0, 1, 240.0, restart_gap_s=30)
    ctl = Controller(caps, load_preset(preset_name).make_policy(), limits)
    t = 1_700_000_000.0
    events: list[tuple[float, bool]] = []
    for dt_s, grid_w, mode in steps:
        t += dt_s
        if mode is not None:
            ctl.mode = mode
        decision = ctl.step(Inputs(time_s=t, grid_w=grid_w,
                                   ev_w=1440.0 if events and events[-1][1] else 0.0))
        assert decision.charging == (decision.current_a > 0)
        events.append((t, decision.charging))
    _check_history(events, limits)


def test_each_refusal_carries_its_code() -> None:
    g = RelayGuard(RelayLimits(min_on_s=300, min_off_s=120, max_starts_per_hour=1,
                               max_starts_per_day=2, min_phase_switch_s=600))
    g.switch(0)
    g.start(0)
    assert g.why_no_stop(10) == Hold(Reason.HOLDING, "minimum on-time, 5 min left")
    no_switch = g.why_no_switch(10)
    assert no_switch is not None and no_switch.code is Reason.PHASE_SWITCH
    g.stop(300)
    codes = [h.code for h in (g.why_no_start(t) for t in (310, 500)) if h is not None]
    assert codes == [Reason.BLOCKED_MIN_OFF, Reason.BLOCKED_HOUR]
    g.start(HOUR_S + 1)
    g.stop(HOUR_S + 400)
    hold = g.why_no_start(3 * HOUR_S)
    assert hold is not None and hold.code is Reason.BLOCKED_DAY and hold.code.blocked
