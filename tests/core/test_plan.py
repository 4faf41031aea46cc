"""Departure plans in the core: parsing, deadlines, the guard's wait, and the planner's
promise (property tests through the controller): a target the charger's power can still meet
is met, whatever the policy wants, and no start goes beyond the relay guard."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller, Inputs
from divert.core.guard import DAY_S, HOUR_S, RelayGuard, RelayLimits
from divert.core.modes import Mode
from divert.core.plan import (
    MARGIN_S,
    PlanProgress,
    PlanSpec,
    Target,
    parse_days,
    parse_time_of_day,
    target_now,
)
from divert.core.policy import Desire, Observation
from divert.core.reasons import Reason

CAPS = Capabilities(ControlKind.CURRENT, 6, 32, 1.0, 1, 240.0)
FULL_W = 32 * 240.0
BERLIN = ZoneInfo("Europe/Berlin")


def _unix(text: str, tz: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


@pytest.mark.parametrize(("text", "days"), [
    ("mon-fri", {0, 1, 2, 3, 4}), ("sat,sun", {5, 6}), ("*", set(range(7))),
    ("mon,wed-fri", {0, 2, 3, 4}), ("fri-mon", {4, 5, 6, 0}), (" Tue ", {1})])
def test_days_parse(text: str, days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["weekdays", "mon-", "mon-fri-sun", "1-5"])
def test_bad_days_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ValueError, match="weekday names like mon-fri"):
        parse_days(text)


def test_time_of_day_and_its_errors() -> None:
    assert parse_time_of_day("07:00") == time(7, 0)
    # Issue 14 (found by the fuzz harness): a huge hour was an OverflowError; Unicode
    # digits and 1_0 were read.
    for bad in ("7h", "25:00", "07:61", "", "18446744073709551616:00", "٠٧:٠٠", "0_7:00"):
        with pytest.raises(ValueError, match="time of day like 07:00"):
            parse_time_of_day(bad)


def test_next_deadline_on_the_plans_days_in_local_time() -> None:
    spec = PlanSpec(time(7, 0), parse_days("mon-fri"), energy_wh=20_000)
    friday_evening = _unix("2024-03-29T18:00:00")  # a Friday; summer time starts Sunday
    assert spec.next_deadline(friday_evening, BERLIN) == _unix("2024-04-01T07:00:00")
    assert spec.next_deadline(_unix("2024-04-01T06:59:00"), BERLIN) == \
        _unix("2024-04-01T07:00:00")
    assert spec.deadlines(friday_evening, _unix("2024-04-03T12:00:00"), BERLIN) == [
        _unix("2024-04-01T07:00:00"), _unix("2024-04-02T07:00:00"),
        _unix("2024-04-03T07:00:00")]


def test_a_plan_needs_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one of energy_kwh and soc_pct"):
        PlanSpec(time(7, 0), parse_days("*"))
    with pytest.raises(ValueError, match="needs battery_kwh"):
        PlanSpec(time(7, 0), parse_days("*"), soc_pct=80)


def test_the_nearest_deadline_within_a_day_is_the_target() -> None:
    weekdays = PlanSpec(time(7, 0), parse_days("mon-fri"), energy_wh=20_000)
    sunday = PlanSpec(time(18, 0), parse_days("sun"), energy_wh=5_000)
    saturday_night = _unix("2024-04-06T20:00:00")
    target = target_now([weekdays, sunday], saturday_night, 1000.0, BERLIN)
    assert target is not None and target.energy_wh == 5_000
    assert target.by_s == 1000.0 + _unix("2024-04-07T18:00:00") - saturday_night
    assert target.clock(target.by_s) == "18:00"
    assert target_now([weekdays], saturday_night, 0.0, BERLIN) is None  # Monday: > 24 h


def test_the_guard_says_when_a_start_is_allowed() -> None:
    g = RelayGuard(RelayLimits(min_on_s=0, min_off_s=300, max_starts_per_hour=2,
                               max_starts_per_day=3))
    assert g.wait_to_start_s(0) == 0
    g.start(0)
    assert g.wait_to_start_s(10) == 300  # after a stop now
    g.stop(100)
    assert g.wait_to_start_s(150) == 250
    g.start(400)
    g.stop(500)
    assert g.wait_to_start_s(1000) == HOUR_S - 1000  # two in the hour
    assert g.wait_to_start_s(1000, keep_today=1) == DAY_S - 1000  # one of three kept
    g.start(HOUR_S + 10)
    assert g.wait_to_start_s(HOUR_S + 20) == DAY_S - HOUR_S - 20  # three in 24 h
    assert g.wait_to_start_s(HOUR_S + 20, keep_today=3) == float("inf")


def test_progress_counts_towards_one_deadline_and_survives_a_restart() -> None:
    p = PlanProgress()
    target = Target(10_000.0, 8_000.0, None, None)
    p.set(target)
    p.account(500.0, None)  # the step that opens the window is not counted
    p.account(1_000.0, None)
    p.set(target)
    assert p.delivered_wh == 1_000.0 and p.remaining_wh() == 7_000.0
    restored = PlanProgress()
    restored.restore(p.to_state())
    restored.set(target)
    assert restored.delivered_wh == 1_000.0
    restored.set(Target(96_400.0, 8_000.0, None, None))  # the next day
    assert restored.delivered_wh == 0.0


def test_a_soc_target_needs_a_reading_and_counts_from_it() -> None:
    p = PlanProgress()
    p.set(Target(10_000.0, None, 80.0, 50_000.0))
    need = p.need(0.0, FULL_W, 32, False, 0.0, 60.0)
    assert need is not None and need.note.startswith("plan: no state of charge")
    p.account(0.0, 60.0)
    p.account(2_000.0, None)
    assert p.remaining_wh() == pytest.approx(0.2 * 50_000 - 2_000)


class Fixed:
    """A policy that wants what it is told (a list of wishes, one per step)."""

    def __init__(self, wishes: list[bool]) -> None:
        self.wishes = wishes
        self.seen: list[Observation] = []

    def decide(self, obs: Observation) -> Desire:
        self.seen.append(obs)
        want = self.wishes[min(len(self.seen) - 1, len(self.wishes) - 1)]
        return Desire(want, 10.0, "charging" if want else "waiting",
                      Reason.CHARGING if want else Reason.WAITING)


def _run(limits: RelayLimits, wishes: list[bool], need_wh: float, hours: float,
         step_s: float = 60.0) -> tuple[Controller, float, list[float]]:
    """The plan `need_wh` by `hours` from the first step: delivered Wh (each decision over
    the step before it, as the ideal plant counts) and the start times."""
    ctl = Controller(CAPS, Fixed(wishes), limits, Mode.SOLAR)
    by_s = hours * HOUR_S
    target = Target(by_s, need_wh, None, None, tz=UTC)
    delivered, starts, t = 0.0, [], 0.0
    was_on = False
    while t <= by_s:
        ctl.set_target(target if t < by_s else None)
        d = ctl.step(Inputs(time_s=t, solar_w=1000.0, load_w=0.0))
        delivered += d.power_w * step_s / 3600.0 if t > 0 else 0.0
        if d.charging and not was_on:
            starts.append(t)
        was_on = d.charging
        t += step_s
    return ctl, delivered, starts


limits_st = st.builds(RelayLimits, min_on_s=st.sampled_from([0, 120, 600, 1800]),
                      min_off_s=st.sampled_from([0, 300, 900, 1800]),
                      max_starts_per_hour=st.integers(1, 4),
                      max_starts_per_day=st.integers(2, 6))


@settings(max_examples=60, deadline=None)
@given(limits=limits_st, wishes=st.lists(st.booleans(), min_size=1, max_size=400),
       hours=st.floats(1.0, 6.0), share=st.floats(0.0, 1.0))
def test_a_feasible_target_is_met_whatever_the_policy_wants(
        limits: RelayLimits, wishes: list[bool], hours: float, share: float) -> None:
    """Feasible: full power from the start, less the plan's margin and a step, makes it."""
    most_wh = FULL_W * (hours * HOUR_S - MARGIN_S - 120.0) / 3600.0
    need_wh = share * most_wh
    _, delivered, starts = _run(limits, wishes, need_wh, hours)
    assert delivered >= need_wh - 1e-6
    for i, t in enumerate(starts):  # the guard's budgets, counted from the outside
        assert sum(1 for s in starts[:i + 1] if s > t - HOUR_S) <= limits.max_starts_per_hour
        assert sum(1 for s in starts[:i + 1] if s > t - DAY_S) <= limits.max_starts_per_day


def test_sun_first_the_grid_as_late_as_possible() -> None:
    """A policy that never wants to charge: the plan charges at full power, starting at the
    latest moment that makes the target (with its margin), and says so."""
    limits = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=2, max_starts_per_day=4)
    ctl, delivered, starts = _run(limits, [False], 7680.0, 4.0)
    assert starts == [4 * HOUR_S - 3600 - MARGIN_S]
    assert 7680.0 <= delivered <= 7680.0 + 2 * FULL_W / 60
    assert ctl.plan.delivered_wh >= 7680.0


def test_a_pending_plan_keeps_a_start_and_tells_the_policy() -> None:
    limits = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=60, max_starts_per_day=3)
    wishes = [True, False] * 10
    ctl, _, starts = _run(limits, wishes, 2000.0, 3.0)
    policy = ctl.policy
    assert isinstance(policy, Fixed)
    first = policy.seen[0]
    assert first.limits is not None and first.limits.max_starts_per_day == 2
    assert first.plan_wh == 2000.0 and first.plan_by_s == 3 * HOUR_S
    # the policy's starts leave the last one for the plan, which uses it at the end
    assert len(starts) == 3 and starts[2] > 2 * HOUR_S
    assert starts[:2] == [0.0, 120.0]


def test_a_stop_that_would_leave_the_plan_short_is_refused() -> None:
    """Charging when the latest moment comes closer than the minimum off-time: the plan
    holds on rather than let the policy stop."""
    limits = RelayLimits(min_on_s=0, min_off_s=3600, max_starts_per_hour=2,
                         max_starts_per_day=4)
    ctl = Controller(CAPS, Fixed([True] * 30 + [False]), limits, Mode.SOLAR)
    target = Target(4 * HOUR_S, 20_000.0, None, None, tz=UTC)
    reasons = []
    for i in range(60):
        ctl.set_target(target)
        d = ctl.step(Inputs(time_s=i * 60.0, solar_w=1000.0, load_w=0.0))
        reasons.append((d.charging, d.code, d.reason))
    assert all(on for on, _, _ in reasons)
    assert reasons[40][1] is Reason.PLAN
    assert reasons[40][2].endswith("holding on, a restart would come too late")


def test_no_plan_in_off_mode() -> None:
    limits = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=2, max_starts_per_day=4)
    ctl = Controller(CAPS, Fixed([False]), limits, Mode.OFF)
    ctl.set_target(Target(600.0, 50_000.0, None, None, tz=UTC))
    d = ctl.step(Inputs(time_s=0.0, solar_w=0.0, load_w=0.0))
    assert not d.charging and d.code is Reason.OFF
