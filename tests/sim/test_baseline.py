"""The `openevse` baseline reproduces the reference's §4 numbers on the ideal plant."""

from __future__ import annotations

from pathlib import Path

import pytest

from divert.core.controller import Controller
from divert.policies.presets import load_preset
from divert.sim import simulate, trace

# Reference §4, per file: EV from surplus kWh / EV-caused grid import kWh / starts,
# for the profiles default, noimport, nowaste.
REFERENCE = {
    "CloudyMorning": ((12.61, 0.32, 1), (10.58, 0.14, 5), (14.26, 1.18, 1)),
    "Energy_and_Power_Day_2020-03-22": ((38.51, 0.07, 1), (38.16, 0.00, 1), (40.81, 0.53, 1)),
    "Energy_and_Power_Day_2020-03-31": ((18.42, 0.00, 2), (18.06, 0.00, 1), (22.38, 1.44, 2)),
    "Energy_and_Power_Day_2020-04-01": ((36.48, 0.00, 1), (36.48, 0.00, 1), (37.67, 0.55, 1)),
    "almostperfect": ((16.73, 0.17, 1), (15.55, 0.06, 5), (19.90, 1.42, 1)),
    "day1": ((6.69, 0.65, 5), (4.70, 0.22, 6), (9.14, 2.51, 3)),
    "day1_grid_ie": ((7.96, 0.49, 7), (4.87, 0.21, 7), (11.85, 2.36, 4)),
    "day2": ((9.68, 0.01, 1), (9.14, 0.00, 1), (11.66, 0.78, 1)),
    "day2_grid_ie": ((5.58, 2.39, 12), (1.57, 0.10, 3), (7.23, 4.27, 7)),
    "day3": ((1.38, 0.45, 5), (0.16, 0.17, 1), (3.24, 1.71, 3)),
    "day3_grid_ie": ((5.75, 0.31, 2), (3.59, 0.28, 7), (7.44, 1.21, 3)),
    "solar-vrms": ((11.62, 0.06, 1), (11.25, 0.04, 1), (13.18, 1.04, 1)),
}
PROFILES = ("default", "noimport", "nowaste")


@pytest.mark.parametrize("profile", PROFILES)
def test_baseline_matches_reference_on_every_file(profile: str, openevse_data: Path) -> None:
    preset = load_preset(f"openevse-{profile}")
    col = PROFILES.index(profile)
    mismatches = []
    for name, rows in REFERENCE.items():
        tr = trace.load(openevse_data / f"{name}.csv")
        ctl = Controller(simulate.BENCH_CAPS, preset.make_policy(), preset.limits())
        got = simulate.run_ideal(tr, ctl).score()
        want_surplus, want_import, want_starts = rows[col]
        if (abs(got.ev_from_surplus_kwh - want_surplus) > 0.05
                or abs(got.ev_grid_import_kwh - want_import) > 0.05
                or got.starts != want_starts):
            mismatches.append(f"{name}: got {got.ev_from_surplus_kwh:.2f} / "
                              f"{got.ev_grid_import_kwh:.2f} / {got.starts}, "
                              f"want {want_surplus} / {want_import} / {want_starts}")
    # The issue allows two misses; today all twelve match, so hold that line.
    assert not mismatches, "\n".join(mismatches)


def test_surplus_totals_match_reference(openevse_data: Path) -> None:
    traces = [trace.load(openevse_data / f"{name}.csv") for name in REFERENCE]
    total_kwh = sum(float(t.surplus_w @ t.dt_s) for t in traces) / 3.6e6
    assert total_kwh == pytest.approx(211.9, abs=0.05)
