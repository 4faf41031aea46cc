"""divert's surplus policy, one mechanism at a time, through the real controller."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest

from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Controller, Decision, Inputs
from divert.core.guard import RelayLimits
from divert.policies.presets import PresetError, load_preset
from divert.policies.surplus import SurplusParams, SurplusPolicy
from divert.sim import simulate, trace

CAPS = Capabilities(ControlKind.CURRENT, 6, 32, 1.0, 1, 240.0)
FREE = RelayLimits(min_on_s=0, min_off_s=0, max_starts_per_hour=60, max_starts_per_day=1000)
# Plain mechanics: no look-ahead, no margins, an hour-long sunny window.
PLAIN = SurplusParams(import_weight=3.0, round_up_above=1.0, level_tau_s=0.0, slow_tau_s=600.0,
                      start_margin_w=0.0, start_frac=1.0, start_hold_s=600.0,
                      sunny_tau_s=3600.0, stop_drift_w=0.0, bridge_s=600.0, bridge_wh=0.0,
                      sun_floor_frac=0.5)


class Day:
    """Feeds one surplus value a minute and keeps every decision."""

    def __init__(self, params: SurplusParams = PLAIN, caps: Capabilities = CAPS) -> None:
        self.ctl = Controller(caps, SurplusPolicy(params), FREE)
        self.t_s = 0.0
        self.decisions: list[Decision] = []

    def run(self, surplus_w: float, minutes: int = 1) -> Decision:
        for _ in range(minutes):
            self.t_s += 60
            self.decisions.append(self.ctl.step(Inputs(time_s=self.t_s, solar_w=surplus_w,
                                                       load_w=0)))
        return self.decisions[-1]

    def ramp(self, values_w: Iterable[float]) -> list[Decision]:
        return [self.run(w) for w in values_w]


@pytest.mark.parametrize(("round_up_above", "surplus_w", "current_a"), [
    (1.0, 2390, 9), (0.5, 2280, 9), (0.5, 2290, 10), (0.84, 2390, 10), (0.84, 2350, 9)])
def test_current_follows_the_surplus_in_steps(round_up_above: float, surplus_w: float,
                                              current_a: float) -> None:
    day = Day(replace(PLAIN, round_up_above=round_up_above, start_hold_s=0))
    d = day.run(surplus_w)
    assert d.charging and d.current_a == current_a


def test_a_spike_in_cloud_waits_sunshine_after_a_dip_does_not() -> None:
    day = Day()
    day.run(300, 120)  # a grey morning
    d = day.run(2400, 5)
    assert not d.charging and d.reason.startswith("waiting: surplus 2400 W has held 300 of")
    assert day.run(2400, 5).charging  # held the full 600 s
    day.run(2400, 120)  # two hours of sun
    assert not day.run(0, 10).charging  # a long dip: stopped
    restart = next(i for i, d in enumerate(day.ramp([2400] * 10)) if d.charging)
    assert restart <= 2  # 600 s × the cloudy share of the last hour


def test_a_short_dip_is_bridged_a_long_one_is_not() -> None:
    day = Day()
    day.run(2400, 70)
    d = day.run(500, 3)
    assert d.charging and d.current_a == 6
    assert d.reason.startswith("bridging: dip cost ")
    d = day.run(2400, 3)  # the sun pays the dip back
    assert d.charging and d.reason.startswith("charging: 10 A")
    stopped = [d for d in day.ramp([500] * 40) if not d.charging]
    assert stopped and stopped[0].reason.startswith("stopping: dip cost ")


def test_evening_stops_soon_after_the_surplus_stops_paying() -> None:
    day = Day()
    day.run(2400, 70)
    evening = [2400 - 20 * i for i in range(120)]  # 20 W less each minute
    decisions = day.ramp(evening)
    stop = next(i for i, d in enumerate(decisions) if not d.charging)
    # Weight 3: charging pays down to 1080 W; the dip budget lets it run a little past.
    assert 800 <= evening[stop] <= 1080


def test_more_starts_mean_longer_bridging() -> None:
    params = replace(PLAIN, bridge_per_start_s=1200.0)
    fresh, worn = Day(params), Day(params)
    for _ in range(3):  # three sessions earlier today
        worn.run(2400, 30)
        worn.run(0, 30)
    for day in (fresh, worn):
        day.run(2400, 70)
    assert not fresh.ramp([300] * 30)[-1].charging
    assert all(d.charging for d in worn.ramp([300] * 30))


def test_a_rising_morning_starts_before_the_minimum_with_look_ahead() -> None:
    ramp = [600 + 10 * i for i in range(100)]
    plain = Day(replace(PLAIN, start_frac=0.6, start_hold_s=0, level_tau_s=60.0))
    ahead = Day(replace(PLAIN, start_frac=0.6, start_hold_s=0, level_tau_s=60.0,
                        trend_gain=3.0))
    first = [next(i for i, d in enumerate(day.ramp(ramp)) if d.charging)
             for day in (plain, ahead)]
    assert ramp[first[0]] >= 1440 > ramp[first[1]]


def test_restart_only_asks_for_a_current_the_slow_average_carries() -> None:
    caps = replace(CAPS, control=ControlKind.RESTART)
    day = Day(replace(PLAIN, start_hold_s=0), caps)
    day.run(1800, 30)
    d = day.run(4000)
    assert d.charging and d.current_a == 7  # 1800 W on average, not the 4000 W spike


def test_decisions_depend_only_on_the_past(openevse_data: Path) -> None:
    full = trace.load(openevse_data / "day1_grid_ie.csv")
    n = 300
    head = trace.Trace(full.name, full.time_s[:n], full.solar_w[:n], full.load_w[:n],
                       full.voltage_v[:n], None if full.grid_w is None else full.grid_w[:n])
    preset = load_preset("balanced")

    def reasons(tr: trace.Trace) -> list[str]:
        ctl = Controller(simulate.BENCH_CAPS, preset.make_policy(), preset.relay)
        return simulate.run_ideal(tr, ctl).reasons

    assert reasons(full)[:n] == reasons(head)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("round_up_above", 0, "round_up_above must be in (0, 1], got 0"),
    ("bridge_s", -1, "bridge_s must be >= 0, got -1"),
    ("slow_tau_s", 1, "slow_tau_s must be >= level_tau_s"),
    ("import_weight", "nan", "import_weight must be a finite number, got nan"),
])
def test_bad_parameters_name_the_key(tmp_path: Path, key: str, value: object,
                                     message: str) -> None:
    text = (Path(__file__).resolve().parents[2] / "policies" / "balanced.toml").read_text()
    lines = [f"{key} = {value}" if line.startswith(f"{key} ") else line
             for line in text.splitlines()]
    path = tmp_path / "mine.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PresetError, match=r"^policy mine: " + re.escape(message) + "$"):
        load_preset(str(path))
