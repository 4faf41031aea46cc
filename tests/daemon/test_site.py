"""The site end to end: two and three simulated chargers of mixed control kinds behind one
meter, fed through a real mosquitto, on a hand-moved clock. Each change is published, then
exactly one control cycle runs: priority, fair shares, release and the fuse limit all act
within that one loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from daemon_support import Publisher, config, retained, wait_for

from chargers.simulated import SimulatedCharger
from divert.config import validate
from divert.core.reasons import Reason
from divert.daemon.clock import ManualClock
from divert.daemon.service import Daemon

LONG_AGE_S = 10 * 365 * 86400.0  # feed values stay fresh however far the clock moves
TOPICS = {"grid": "home/grid", "grid_l1": "home/l1", "grid_l2": "home/l2",
          "grid_l3": "home/l3"}


class Site:
    """A daemon over simulated chargers; the grid meter (and the line currents, when asked)
    sees the house and what the chargers draw."""

    def __init__(self, tmp_path: Path, broker: Any, publisher: Publisher,
                 chargers: list[dict[str, Any]], mode: str = "solar", lines: bool = False,
                 **overrides: Any) -> None:
        feeds = {name: {"topic": topic, "max_age_s": LONG_AGE_S}
                 for name, topic in TOPICS.items() if lines or name == "grid"}
        data = config(tmp_path, broker, chargers=chargers, feeds=feeds, **overrides)
        data["policy"]["mode"] = mode
        self.publisher = publisher
        self.clock = ManualClock()
        self.daemon = Daemon(validate(data, Path("test.toml")), clock=self.clock)
        self.daemon.start(loop=False)
        self.sims = {name: charger for name, charger in self.daemon.chargers.items()
                     if isinstance(charger, SimulatedCharger)}

    def draw_w(self, name: str) -> float:
        power_w = self.sims[name].read().power_w
        assert power_w is not None
        return power_w

    def meter(self, solar_w: float, house_w: float,
              house_a: tuple[float, float, float] | None = None) -> None:
        """Publish what the meter reads now and wait until the daemon holds it."""
        values = {"grid": house_w - solar_w + sum(self.draw_w(n) for n in self.sims)}
        if house_a is not None:
            for line in (1, 2, 3):
                values[f"grid_l{line}"] = house_a[line - 1] + sum(
                    self.sims[n].read().current_a or 0.0 for n in self.sims
                    if self.sims[n].phases == 3 or self._line(n) == line)
        feeds = self.daemon.feeds
        for name, value in values.items():
            self.publisher.until(TOPICS[name], f"{value:g}", lambda n=name, v=value: (
                feeds.feeds[n]._value == v and feeds.ages_s()[n] == 0), what=f"{name} {value:g}")

    def _line(self, name: str) -> int:
        return next(c.line for c in self.daemon.settings.chargers if c.name == name)

    def cycle(self, seconds: float = 5.0) -> None:
        """One control cycle, `seconds` after the last."""
        self.clock.advance(seconds)
        self.daemon.run_cycle()

    def reason(self, name: str) -> str:
        return self.daemon.last_decisions[name].reason

    def metric(self, name: str, **labels: str) -> float | None:
        return self.daemon.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def site(tmp_path: Path, mosquitto: Any, publisher: Publisher) -> Any:
    made: list[Site] = []

    def make(chargers: list[dict[str, Any]], **kw: Any) -> Site:
        made.append(Site(tmp_path, mosquitto, publisher, chargers, **kw))
        return made[-1]

    yield make
    for s in made:
        s.daemon.stop()


def _sim(name: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "type": "simulated", **keys}


def test_priority_and_release_within_one_loop(site: Any, mosquitto: Any) -> None:
    s = site([_sim("a", priority=1), _sim("b", control="power")])
    a, b = s.sims["a"], s.sims["b"]
    s.meter(solar_w=5000, house_w=500)  # 4.5 kW of surplus
    s.cycle()
    assert (a.enabled, a.current_a, b.enabled) == (True, 16, False)  # a first: its 3680 W
    assert s.reason("b").startswith("sharing: 0.8 of 4.5 kW (priority 0), waiting")
    assert s.metric("divert_charger_share_watts", charger="b") == pytest.approx(820)
    s.meter(5000, 500)  # the meter now sees a's 3680 W: added back once, nothing changes
    n = len(a.commands) + len(b.commands)
    s.cycle()
    assert len(a.commands) + len(b.commands) == n
    assert wait_for(lambda: retained(mosquitto, "divert/b/share_w") == "820",
                    what="b's share on MQTT")

    a.vehicle_connected = False  # unplugged: a's share goes to b in the same loop
    s.meter(5000, 500)
    s.cycle()
    assert not a.enabled and s.reason("a") == "waiting: no car connected"
    assert b.enabled and b.commands[-2:][0].value == 3680.0  # its power setpoint: 16 A
    assert s.metric("divert_charger_share_watts", charger="b") == pytest.approx(4500)

    a.vehicle_connected = True  # back: a has priority again, b makes room at once
    s.meter(5000, 500)
    s.cycle()
    assert (a.enabled, a.current_a, b.enabled) == (True, 16, False)

    a.fault = "fault: GFCI"  # a fault: a draws nothing, and is no longer offered any
    s.meter(5000, 500)
    s.cycle()
    assert not a.enabled and s.reason("a") == "fault: GFCI"
    assert s.daemon.last_decisions["a"].code is Reason.FAULT
    assert b.enabled and b.current_a == 16


def test_three_mixed_chargers_share_fairly_and_a_share_below_the_minimum_is_not_wasted(
        site: Any) -> None:
    s = site([_sim("a", priority=1), _sim("b", control="power"),
              _sim("c", control="restart")], site={"sharing": "fair"})
    a, b, c = s.sims["a"], s.sims["b"], s.sims["c"]
    s.meter(solar_w=6500, house_w=500)  # 6 kW: 2 kW each
    s.cycle()
    assert (a.current_a, b.commands[-2].value, c.current_a) == (8, 2070.0, 9)
    assert a.enabled and b.enabled and c.enabled
    assert s.reason("a").startswith("sharing: 2.0 of 6.0 kW (priority 1), starting")
    # 3 kW cannot carry three minimums (3 × 1380 W): c, last in line, pauses in this loop
    # and a and b share the 3 kW.
    s.meter(6500, 3500)
    s.cycle()
    assert not c.enabled
    assert (a.current_a, b.commands[-1].value) == (6, 1610.0)
    assert s.draw_w("a") + s.draw_w("b") <= 3000


def test_the_import_limit_pauses_the_lowest_priority_in_fast_mode_within_one_loop(
        site: Any, mosquitto: Any) -> None:
    relay = {"min_on_s": 900, "min_off_s": 300}
    s = site([_sim("a", priority=1), _sim("b", control="restart")], mode="fast",
             site={"max_import_w": 9000}, relay=relay)
    a, b = s.sims["a"], s.sims["b"]
    s.meter(solar_w=0, house_w=1000)
    s.cycle()
    assert (a.enabled, a.current_a, b.enabled, b.current_a) == (True, 16, True, 16)
    assert s.metric("divert_site_import_limit_watts") == 9000
    assert s.metric("divert_site_limited") == 0
    # The oven goes on: 10.9 kW imported. One loop later b (restart-only: it cannot lower
    # its current without a restart) is paused, 10 s into its 15 min minimum on-time.
    s.meter(0, 3500)
    s.cycle()
    assert a.enabled and a.current_a == 16
    assert not b.enabled
    assert s.reason("b") == "limited: site import limit 9000 W, 5.5 kW left for chargers"
    guard = s.daemon.controllers["b"].guard
    assert not guard.on and guard.changed_s == s.clock.control_s()  # the stop is recorded
    assert s.metric("divert_site_limited") == 1
    assert wait_for(lambda: retained(mosquitto, "divert/site/limited") == "true",
                    what="site/limited on MQTT")
    s.meter(0, 1000)  # the oven is off again: b waits for its minimum off-time
    s.cycle()
    assert not b.enabled and s.reason("b") == "blocked: minimum off-time, 5 min left"
    assert s.metric("divert_site_limited") == 0


def test_the_phase_current_limit_acts_on_its_line_within_one_loop(site: Any) -> None:
    s = site([_sim("a", priority=1, phases=3), _sim("b", control="power", line=2)],
             mode="fast", lines=True, site={"max_phase_current_a": 25},
             relay={"min_on_s": 900})
    a, b = s.sims["a"], s.sims["b"]
    s.meter(0, 1400, house_a=(2, 2, 2))
    s.cycle()
    assert (a.current_a, b.enabled, b.commands[-2].value) == (16, True, 1610.0)  # 7 A on L2
    s.meter(0, 3200, house_a=(2, 10, 2))  # the kettle on L2: 33 A there now
    s.cycle()
    assert a.current_a == 15 and not b.enabled
    assert s.reason("b") == "limited: phase current limit 25 A, 15.0 A left for chargers on L2"


def test_a_chargers_own_meter_is_its_draw(site: Any, publisher: Publisher) -> None:
    """The grid meter sees a car drawing 2 kW that its charger does not report (it has not
    been told to charge yet): the charger's own meter says so, and that draw is the car's."""
    s = site([_sim("a", ev_power={"topic": "meter/a", "max_age_s": LONG_AGE_S})])
    feeds = s.daemon.feeds
    publisher.until("meter/a", "2000", lambda: feeds.feeds["ev_power_a"]._value == 2000,
                    what="a's meter at the daemon")
    publisher.until("home/grid", "-1000", lambda: feeds.feeds["grid"]._value == -1000,
                    what="the grid: 1 kW exported with a's 2 kW")
    s.cycle()
    assert s.daemon.last_decisions["a"].current_a == 13  # 1000 W export + a's 2000 W
    assert s.metric("divert_charger_share_watts", charger="a") == pytest.approx(3000)
