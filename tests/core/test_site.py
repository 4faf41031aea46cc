"""The site step: one surplus shared among chargers, the site limit, the home battery."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relay_support import check_relay_history

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller, Decision, Inputs, SiteParams
from divert.core.guard import RelayLimits
from divert.core.modes import Mode
from divert.core.phases import PhaseParams
from divert.core.policy import Desire, Observation
from divert.core.reasons import Reason
from divert.core.restart import RestartParams
from divert.core.site import (
    ChargerInputs,
    Member,
    Sharing,
    Site,
    SiteInputs,
    SiteRules,
    SiteStatus,
)
from divert.core.surplus import BatteryMode, BatteryRule
from divert.policies.presets import load_preset

T0 = 1_700_000_000.0
ONE = Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 1, 230.0)  # 1380–3680 W
FREE = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=60, max_starts_per_day=1000,
                   min_phase_switch_s=0)


class Track:
    """Charges while its surplus carries the minimum, at the surplus plus `round_up` of a
    step (the controller floors it to a step): the presets bridge dips, this one never does."""

    def __init__(self, round_up: float = 0.0) -> None:
        self.round_up = round_up

    def decide(self, obs: Observation) -> Desire:
        min_w = obs.caps.min_power_at(obs.phases)
        current_a = obs.surplus_w / (obs.voltage_v * obs.phases) + self.round_up * obs.caps.step_a
        if obs.surplus_w >= min_w:
            return Desire(True, current_a, f"charging from {obs.surplus_w:.0f} W",
                          Reason.CHARGING)
        return Desire(False, current_a, f"waiting: surplus {obs.surplus_w:.0f} W",
                      Reason.WAITING)


def _site(*members: Member, caps: Sequence[Capabilities] = (), limits: RelayLimits = FREE,
          rules: SiteRules | None = None, params: SiteParams | None = None,
          mode: Mode = Mode.SOLAR) -> Site:
    controllers = {m.name: Controller(caps[i] if i < len(caps) else ONE, Track(), limits, mode,
                                      params) for i, m in enumerate(members)}
    return Site(members, controllers, rules, params)


class Plant:
    """Ideal cars (each draws what it is set to) behind a grid meter: `seen` says whether
    the meter sees the chargers. One `loop` is one site step, `dt_s` after the last."""

    def __init__(self, site: Site, seen: bool = True) -> None:
        self.site = site
        self.seen = seen
        self.t_s = T0
        self.ev_w = {name: 0.0 for name in site.controllers}
        self.connected = {name: True for name in site.controllers}
        self.draw_cap_w: dict[str, float] = {}  # a full car draws at most this

    def loop(self, solar_w: float, house_w: float, dt_s: float = 5.0, fresh: bool = True,
             **chargers: ChargerInputs) -> dict[str, Decision]:
        self.t_s += dt_s
        grid_w = house_w - solar_w + (sum(self.ev_w.values()) if self.seen else 0.0)
        inputs = {name: chargers.get(name, ChargerInputs(
            ev_w=self.ev_w[name], vehicle_connected=self.connected[name]))
            for name in self.site.controllers}
        decisions = self.site.step(SiteInputs(self.t_s, grid_w=grid_w if fresh else None,
                                              chargers=inputs))
        for name, d in decisions.items():
            drawn_w = d.power_w if self.connected[name] and inputs[name].online else 0.0
            self.ev_w[name] = min(drawn_w, self.draw_cap_w.get(name, math.inf))
        return decisions


def _amps(decisions: dict[str, Decision]) -> dict[str, float]:
    return {name: d.current_a for name, d in decisions.items()}


# --- sharing -------------------------------------------------------------------------------

@pytest.mark.parametrize("seen", [True, False])
def test_two_chargers_share_3kw_by_priority_and_settle(seen: bool) -> None:
    """Before the site, each of two chargers took the whole 3 kW (6 kW in total) or, with a
    meter that sees them, both flipped between 6 kW and 0 every loop."""
    plant = Plant(_site(Member("a", priority=1), Member("b"),
                        params=SiteParams(grid_includes_ev=seen)), seen)
    runs = [_amps(plant.loop(3000, 0)) for _ in range(6)]
    assert runs == [{"a": 13.0, "b": 0.0}] * 6
    d = plant.loop(3000, 0)["b"]
    assert d.code is Reason.SHARING
    assert d.reason == "sharing: 0.0 of 3.0 kW (priority 0), waiting: surplus 10 W"
    assert plant.loop(3000, 0)["a"].reason == "charging from 3000 W"  # the whole surplus


def test_ties_go_in_config_order_and_the_rest_goes_down() -> None:
    plant = Plant(_site(Member("a"), Member("b"), Member("c", priority=-1)))
    assert _amps(plant.loop(5100, 0)) == {"a": 16.0, "b": 6.0, "c": 0.0}  # 3680 + 1380 W
    assert _amps(plant.loop(6000, 0)) == {"a": 16.0, "b": 10.0, "c": 0.0}
    assert _amps(plant.loop(9000, 0)) == {"a": 16.0, "b": 16.0, "c": 7.0}


def test_fair_shares_are_equal_and_a_share_below_the_minimum_goes_to_the_others() -> None:
    plant = Plant(_site(Member("a"), Member("b", priority=1),
                        rules=SiteRules(Sharing.FAIR)))
    # 2000 W each: b (higher priority, first) sets 8 A = 1840 W, a gets the other 2160 W.
    assert _amps(plant.loop(4000, 0)) == {"a": 9.0, "b": 8.0}
    d = plant.loop(4000, 0)["a"]
    assert d.reason == "sharing: 2.2 of 4.0 kW (priority 0), charging from 2160 W"
    # 2 kW cannot carry two minimums (2 × 1380 W): the higher priority takes it all.
    assert _amps(plant.loop(2000, 0)) == {"a": 0.0, "b": 8.0}
    assert _amps(plant.loop(2000, 0)) == {"a": 0.0, "b": 8.0}
    # A share above a charger's maximum goes to the others.
    small = Capabilities(ControlKind.CURRENT, 6, 8, 1.0, 1, 230.0)
    plant = Plant(_site(Member("a"), Member("b"), caps=[small, ONE],
                        rules=SiteRules(Sharing.FAIR)))
    assert _amps(plant.loop(5500, 0)) == {"a": 8.0, "b": 15.0}  # 1840 + 3450 W


def test_chargers_of_every_control_kind_take_part_with_their_own_steps() -> None:
    power = Capabilities(ControlKind.POWER, 6, 16, 0.1, 1, 230.0)
    restart = Capabilities(ControlKind.RESTART, 6, 16, 1.0, 1, 230.0)
    plant = Plant(_site(Member("p", priority=2), Member("r", priority=1), Member("c"),
                        caps=[power, restart, ONE]))
    d = plant.loop(4500, 0)
    assert (d["p"].current_a, d["r"].current_a, d["c"].current_a) == (16.0, 0.0, 0.0)
    d = plant.loop(6000, 0)  # 6000 − 3680 = 2320 W: the restart-only charger starts at 10 A
    assert (d["p"].power_w, d["r"].current_a, d["c"].current_a) == (3680.0, 10.0, 0.0)
    d = plant.loop(5800, 0)  # 2120 W: 9 A wanted, within its 3 A step: held at 10 A
    assert d["r"].current_a == 10.0 and d["r"].code is Reason.RESTART_HOLD
    plant = Plant(_site(Member("p"), caps=[power]))
    assert plant.loop(2000, 0)["p"].current_a == 8.6  # 0.1 A steps: 1978 W


# --- release -------------------------------------------------------------------------------

def test_a_charger_without_a_car_a_fault_or_offline_releases_its_share_in_the_same_loop(
        ) -> None:
    plant = Plant(_site(Member("a", priority=1), Member("b")))
    assert _amps(plant.loop(3000, 0)) == {"a": 13.0, "b": 0.0}
    plant.connected["a"] = False  # unplugged: its share goes to b at once
    d = plant.loop(3000, 0)
    assert _amps(d) == {"a": 0.0, "b": 13.0}
    assert (d["a"].code, d["a"].reason) == (Reason.NO_VEHICLE, "waiting: no car connected")
    plant.connected["a"] = True
    assert _amps(plant.loop(3000, 0)) == {"a": 13.0, "b": 0.0}
    plant.ev_w["a"] = 0.0  # a fault: the car stops drawing
    d = plant.loop(3000, 0, a=ChargerInputs(ev_w=0.0, fault="fault: relay (EVSE_RELAY_ERR_F)"))
    assert _amps(d) == {"a": 0.0, "b": 13.0}
    assert (d["a"].code, d["a"].reason) == (Reason.FAULT, "fault: relay (EVSE_RELAY_ERR_F)")
    plant.loop(3000, 0)
    plant.loop(3000, 0)
    assert plant.ev_w == {"a": 2990.0, "b": 0.0}
    # a's reading fails: its draw is still in the meter, so b gets what really is left.
    d = plant.loop(3000, 0, a=ChargerInputs(online=False))
    assert d["a"].current_a == 0.0 and d["b"].current_a == 0.0


def test_a_charger_its_guard_holds_back_releases_its_share() -> None:
    limits = RelayLimits(min_on_s=0, min_off_s=600, max_starts_per_hour=60,
                         max_starts_per_day=1000)
    plant = Plant(_site(Member("a", priority=1), Member("b"), limits=limits,
                        rules=SiteRules(Sharing.FAIR)))
    assert _amps(plant.loop(3000, 0)) == {"a": 6.0, "b": 7.0}  # 1500 W each, a's rest to b
    assert _amps(plant.loop(1000, 0)) == {"a": 0.0, "b": 0.0}
    d = plant.loop(3000, 0)  # both blocked by their minimum off-time: nothing shared
    assert d["a"].code is Reason.BLOCKED_MIN_OFF and d["b"].code is Reason.BLOCKED_MIN_OFF
    plant.site.controllers["b"].guard.changed_s = plant.t_s - 600  # b's off-time is over
    assert _amps(plant.loop(3000, 0)) == {"a": 0.0, "b": 13.0}  # a's share goes to b


def test_a_full_car_releases_what_it_does_not_draw() -> None:
    plant = Plant(_site(Member("a", priority=1), Member("b")))
    plant.draw_cap_w["a"] = 500.0  # a's car is nearly full: 500 W whatever it is offered
    assert _amps(plant.loop(3000, 0)) == {"a": 13.0, "b": 0.0}
    for _ in range(11):  # under a minute since a's setpoint rose: b waits
        assert _amps(plant.loop(3000, 0)) == {"a": 13.0, "b": 0.0}
    assert _amps(plant.loop(3000, 0)) == {"a": 13.0, "b": 10.0}  # 3000 − 500 W
    assert plant.loop(3000, 0)["b"].reason.startswith("sharing: 2.5 of 3.0 kW")


# --- the site limit ------------------------------------------------------------------------

def test_fast_mode_under_the_import_limit_pauses_the_lowest_priority_inside_its_on_time(
        ) -> None:
    limits = RelayLimits(min_on_s=900, min_off_s=300, max_starts_per_hour=4,
                         max_starts_per_day=10)
    site = _site(Member("a", priority=1), Member("b"), limits=limits, mode=Mode.FAST,
                 rules=SiteRules(max_import_w=11000))
    plant = Plant(site)
    assert _amps(plant.loop(0, 2000)) == {"a": 16.0, "b": 16.0}  # 2000 + 7360 W
    d = plant.loop(0, 5000)  # the house jumps: 11000 − 5000 = 6000 W left for chargers
    assert _amps(d) == {"a": 16.0, "b": 10.0}
    assert (d["b"].code, d["b"].reason) == (
        Reason.SITE_LIMITED, "limited: site import limit 11000 W, 6.0 kW left for chargers")
    assert site.status.limited and site.status.room_w == 6000
    d = plant.loop(0, 8000)  # 3000 W left: a takes 13 A, b pauses inside its on-time
    assert _amps(d) == {"a": 13.0, "b": 0.0}
    guard = site.controllers["b"].guard
    assert not guard.on and guard.changed_s == plant.t_s  # the stop is recorded
    assert plant.loop(0, 2000)["b"].code is Reason.BLOCKED_MIN_OFF
    assert not site.status.limited


def test_per_phase_current_limit() -> None:
    three = Capabilities(ControlKind.CURRENT, 6, 16, 1.0, 3, 230.0)
    site = _site(Member("three", priority=1), Member("l2", line=2), caps=[three, ONE],
                 mode=Mode.FAST, rules=SiteRules(max_phase_current_a=25))
    t = T0
    # 20 A left per line: 16 A on all three, and 4 A (below 6 A) left for l2 on L2; then
    # 5 A left on L3 stops the three-phase charger and l2 has L2 to itself.
    for house_a, want in [((5.0, 5.0, 5.0), {"three": 16.0, "l2": 0.0}),
                          ((5.0, 0.0, 20.0), {"three": 0.0, "l2": 16.0})]:
        t += 5
        d = site.step(SiteInputs(t, grid_w=0, grid_a=house_a,
                                 chargers={"three": ChargerInputs(), "l2": ChargerInputs()}))
        assert _amps(d) == want
    assert d["three"].reason == "limited: phase current limit 25 A, 5.0 A left for chargers on L3"


def test_stale_meter_keeps_the_last_known_house_load_and_none_known_holds_the_minimum(
        ) -> None:
    site = _site(Member("a"), mode=Mode.FAST, rules=SiteRules(max_import_w=6000))
    site.controllers["a"].guard.start(T0 - 3600)  # charging when divert starts
    plant = Plant(site)
    d = plant.loop(0, 1000, fresh=False)
    assert d["a"].current_a == 6.0  # no house load known yet: the minimum, no bounce
    assert d["a"].reason == "limited: site import limit 6000 W, house load not read yet"
    assert plant.loop(0, 1000)["a"].current_a == 16.0
    assert plant.loop(0, 3000)["a"].current_a == 13.0
    for _ in range(3):  # the meter is silent: the last house load still limits
        assert plant.loop(0, 0, fresh=False)["a"].current_a == 13.0
    site = _site(Member("a"), mode=Mode.FAST, rules=SiteRules(max_import_w=6000))
    assert not Plant(site).loop(0, 0, fresh=False)["a"].charging  # nothing starts blind


# --- the home battery ----------------------------------------------------------------------

def _battery_step(site: Site, t_s: float, grid_w: float, battery_w: float, soc: float,
                  ev_w: float) -> Decision:
    return site.step(SiteInputs(t_s, grid_w=grid_w, battery_w=battery_w, battery_soc_pct=soc,
                                chargers={"a": ChargerInputs(ev_w=ev_w)}))["a"]


@pytest.mark.parametrize(("rule", "soc", "amps"), [
    (BatteryRule(BatteryMode.EV_FIRST), 20.0, 13.0),  # its 2 kW charging is surplus
    (BatteryRule(BatteryMode.BATTERY_FIRST, first_below_soc_pct=80), 20.0, 0.0),
    (BatteryRule(BatteryMode.BATTERY_FIRST, first_below_soc_pct=80), 90.0, 13.0),
    (BatteryRule(BatteryMode.BUFFER, buffer_soc_pct=50), 40.0, 0.0),  # refills first
    (BatteryRule(BatteryMode.BUFFER, buffer_soc_pct=50), 60.0, 13.0),
])
def test_battery_charging_is_surplus_unless_it_charges_first(rule: BatteryRule, soc: float,
                                                             amps: float) -> None:
    site = _site(Member("a"), params=SiteParams(battery=rule))
    # 1 kW exported while the battery takes 2 kW: 3 kW for the car unless the battery's first.
    assert _battery_step(site, T0, -1000, 2000, soc, 0).current_a == amps


def test_buffer_carries_the_minimum_through_a_dip_never_below_its_soc() -> None:
    for mode in BatteryMode:
        site = _site(Member("a"), params=SiteParams(
            battery=BatteryRule(mode, buffer_soc_pct=50)))
        assert _battery_step(site, T0, -2000, 0, 80, 0).current_a == 8
        # A cloud: the battery covers the car's 1840 W (the grid shows nothing).
        d = _battery_step(site, T0 + 5, 0, -1840, 80, 1840)
        if mode is BatteryMode.BUFFER:  # rides through at 6 A from the battery
            assert d.charging and d.current_a == 6
            assert not _battery_step(site, T0 + 10, 0, -1380, 50, 1380).charging
        else:  # its discharge is not surplus: the car stops
            assert not d.charging


# --- properties ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    control: ControlKind
    min_a: int
    max_a: int
    step_a: float
    phases: int
    switching: bool
    priority: int
    line: int

    def caps(self) -> Capabilities:
        return Capabilities(self.control, self.min_a, self.max_a, self.step_a, self.phases,
                            230.0, self.switching and self.phases == 3)


specs = st.lists(st.builds(Spec, st.sampled_from(list(ControlKind)), st.sampled_from([6, 8]),
                           st.sampled_from([10, 16, 32]), st.sampled_from([1.0, 0.1]),
                           st.sampled_from([1, 3]), st.booleans(), st.integers(0, 2),
                           st.integers(1, 3)), min_size=1, max_size=3)
# Stretches of steady sun and house load, with meter gaps and mode changes per charger.
_stretch = st.tuples(st.integers(1, 15), st.sampled_from([1.0, 5.0, 30.0, 120.0]),
                     st.floats(0, 20000), st.floats(0, 9000), st.booleans(),
                     st.lists(st.sampled_from([None, None, None, Mode.SOLAR, *Mode]),
                              min_size=3, max_size=3))
loops = st.lists(_stretch, min_size=1, max_size=12)
relay = st.builds(RelayLimits, st.sampled_from([0, 60, 600]), st.sampled_from([0, 60, 600]),
                  st.integers(1, 4), st.integers(2, 8), st.sampled_from([0, 300]))


def _build(chargers: list[Spec], limits: RelayLimits, rules: SiteRules, seen: bool,
           preset: str | None, round_up: float = 0.0) -> Site:
    """A site of `chargers` running `preset` (None: `Track`); phase switching follows the
    surplus of the moment (the presets' average may switch up on a share that just fell)."""
    members = [Member(f"c{i}", s.priority, s.line) for i, s in enumerate(chargers)]
    params = SiteParams(grid_includes_ev=seen)
    controllers = {m.name: Controller(s.caps(), load_preset(preset).make_policy() if preset
                                      else Track(round_up), limits, Mode.SOLAR, params,
                                      phase=PhaseParams(0.0))
                   for m, s in zip(members, chargers, strict=True)}
    return Site(members, controllers, rules, params)


@dataclass(frozen=True)
class Loop:
    t_s: float
    house_w: float | None  # the house's import as last read
    decisions: dict[str, Decision]
    status: SiteStatus
    modes: tuple[Mode, ...]


def _run(site: Site, stretches: list[tuple[int, float, float, float, bool, list[Mode | None]]],
         seen: bool) -> list[Loop]:
    plant = Plant(site, seen)
    out = []
    house_read: float | None = None
    for n, dt_s, solar_w, house_w, fresh, modes in stretches:
        for name, mode in zip(site.controllers, modes, strict=False):
            if mode is not None:
                site.controllers[name].mode = mode
        for _ in range(n):
            if fresh:
                house_read = house_w - solar_w
            decisions = plant.loop(solar_w, house_w, dt_s, fresh)
            out.append(Loop(plant.t_s, house_read, decisions, site.status,
                            tuple(c.mode for c in site.controllers.values())))
    return out


def _granularity_w(c: Controller, d: Decision) -> float:
    """How far one charger may overshoot its share: a current step, or for a restart-only
    charger the smallest change it restarts for."""
    step_a = (RestartParams().min_gain_a if c.caps.control is ControlKind.RESTART
              else c.caps.step_a)
    return c.caps.power_w(step_a, d.phases)


@settings(max_examples=300, deadline=None)
@given(specs, loops, st.sampled_from(list(Sharing)), st.booleans(), st.floats(0, 0.99))
def test_in_solar_mode_the_chargers_never_draw_more_than_the_surplus_plus_a_step_each(
        chargers: list[Spec], stretches: list, sharing: Sharing, seen: bool,
        round_up: float) -> None:
    site = _build(chargers, FREE, SiteRules(sharing), seen, None, round_up)
    for loop in _run(site, stretches, seen):
        surplus_w = loop.status.surplus_w
        if surplus_w is None or any(m is not Mode.SOLAR for m in loop.modes):
            continue
        total_w = sum(d.power_w for d in loop.decisions.values())
        slack_w = sum(_granularity_w(site.controllers[n], d)
                      for n, d in loop.decisions.items())
        assert total_w <= max(0.0, surplus_w) + slack_w + 1e-6


@settings(max_examples=150, deadline=None)
@given(specs, loops, st.sampled_from(list(Sharing)), st.booleans(),
       st.sampled_from([None, "balanced", "max-solar"]), st.sampled_from([3000, 8000, 15000]),
       relay)
def test_the_import_limit_holds_on_every_fresh_reading_in_every_mode(
        chargers: list[Spec], stretches: list, sharing: Sharing, seen: bool,
        preset: str | None, max_import_w: float, limits: RelayLimits) -> None:
    site = _build(chargers, limits, SiteRules(sharing, max_import_w=max_import_w), seen,
                  preset)
    for loop in _run(site, stretches, seen):
        total_w = sum(d.power_w for d in loop.decisions.values())
        if loop.house_w is None:  # nothing read yet: nothing started
            assert total_w == 0
        else:
            assert total_w <= max(0.0, max_import_w - loop.house_w) + 1e-6


@settings(max_examples=100, deadline=None)
@given(specs, st.lists(st.tuples(st.integers(1, 10), st.floats(-5, 30), st.floats(-5, 30),
                                 st.floats(-5, 30)), min_size=1, max_size=8),
       st.sampled_from([None, "balanced"]))
def test_the_phase_current_limit_holds_on_every_line(
        chargers: list[Spec], stretches: list[tuple[int, float, float, float]],
        preset: str | None) -> None:
    site = _build(chargers, FREE, SiteRules(max_phase_current_a=25), True, preset)
    for c in site.controllers.values():
        c.mode = Mode.FAST
    t = T0
    for n, *house_a in stretches:
        for _ in range(n):
            t += 5
            decisions = site.step(SiteInputs(t, grid_w=-20000, grid_a=tuple(house_a),
                                             chargers={n: ChargerInputs(ev_w=0)
                                                       for n in site.controllers}))
            for line in (1, 2, 3):
                on_line = sum(d.current_a for m in site.members
                              if line in ((1, 2, 3) if (d := decisions[m.name]).phases == 3
                                          else (m.line,)))
                assert on_line <= max(0.0, 25 - house_a[line - 1]) + 1e-6


@settings(max_examples=150, deadline=None)
@given(specs, loops, st.sampled_from(list(Sharing)), st.booleans(),
       st.sampled_from(["balanced", "solar-only", "max-solar", "openevse-default"]), relay,
       st.sampled_from([None, 4000, 9000]))
def test_every_chargers_guard_holds(chargers: list[Spec], stretches: list, sharing: Sharing,
                                    seen: bool, preset: str, limits: RelayLimits,
                                    max_import_w: float | None) -> None:
    site = _build(chargers, limits, SiteRules(sharing, max_import_w=max_import_w), seen, preset)
    runs = _run(site, stretches, seen)
    for name, c in site.controllers.items():
        check_relay_history([(loop.t_s, (d := loop.decisions[name]).charging, d.phases,
                              d.code is Reason.SITE_LIMITED) for loop in runs], limits,
                            c.caps.phases)


@settings(max_examples=100, deadline=None)
@given(specs, st.floats(0, 20000), st.floats(0, 6000), st.sampled_from(list(Sharing)),
       st.booleans(), relay, st.sampled_from([None, 5000, 12000]),
       st.sampled_from([None, "balanced", "solar-only"]))
def test_with_constant_inputs_the_setpoints_settle(
        chargers: list[Spec], solar_w: float, house_w: float, sharing: Sharing, seen: bool,
        limits: RelayLimits, max_import_w: float | None, preset: str | None) -> None:
    site = _build(chargers, limits, SiteRules(sharing, max_import_w=max_import_w), seen,
                  preset)
    plant = Plant(site, seen)
    # Long enough for every guard time, the restart-only wait and the presets' smoothing.
    warm = int(max(limits.min_on_s, limits.min_off_s, 600) / 5) * 3 + 20
    for _ in range(warm):
        plant.loop(solar_w, house_w)
    settled = [plant.loop(solar_w, house_w) for _ in range(20)]
    states = {tuple((d.charging, d.current_a, d.phases) for d in decisions.values())
              for decisions in settled}
    assert len(states) == 1, states


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 60), st.one_of(st.none(), st.floats(-9000, 3000)),
                          st.sampled_from([None, *Mode])), min_size=1, max_size=80),
       st.sampled_from(["balanced", "max-solar", "openevse-default"]),
       st.sampled_from(list(ControlKind)))
def test_a_site_of_one_charger_decides_as_the_charger_alone(
        steps: list[tuple[float, float | None, Mode | None]], preset: str,
        control: ControlKind) -> None:
    caps = Capabilities(control, 6, 32, 1.0, 1, 240.0)
    limits = load_preset(preset).limits()
    alone = Controller(caps, load_preset(preset).make_policy(), limits)
    site = Site([Member("a")], {"a": Controller(caps, load_preset(preset).make_policy(),
                                                limits)})
    t, ev_w = T0, 0.0
    for dt_s, grid_w, mode in steps:
        t += dt_s
        if mode is not None:
            alone.mode = site.controllers["a"].mode = mode
        d = alone.step(Inputs(t, grid_w=grid_w, ev_w=ev_w))
        assert site.step(SiteInputs(t, grid_w=grid_w,
                                    chargers={"a": ChargerInputs(ev_w=ev_w)}))["a"] == d
        ev_w = d.power_w
