"""`divert simulate`: the summary agrees with an independent recomputation from steps.csv."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from divert.cli import main
from divert.sim import trace


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "divert.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_json_summary_recomputed_from_steps(openevse_data: Path, tmp_path: Path) -> None:
    proc = _run("simulate", "--trace", str(openevse_data / "day2_grid_ie.csv"), "--json",
                "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    with (tmp_path / "steps.csv").open() as f:
        rows = list(csv.DictReader(f))
    surplus = ev = from_surplus = imported = 0.0
    starts = changes = 0
    was_on, last_a = False, 0.0
    for r in rows:
        h = float(r["dt_s"]) / 3600e3
        s_w = max(0.0, float(r["solar_w"]) - float(r["load_w"]))
        assert float(r["surplus_w"]) == pytest.approx(s_w)
        e_w = float(r["ev_w"])
        surplus += s_w * h
        ev += e_w * h
        from_surplus += min(e_w, s_w) * h
        imported += max(0.0, e_w - s_w) * h
        on, amps = r["charging"] == "1", float(r["setpoint_a"])
        starts += on and not was_on
        changes += on and was_on and amps != last_a
        was_on, last_a = on, amps
    assert summary["surplus_kwh"] == pytest.approx(surplus, abs=1e-6)
    assert summary["ev_kwh"] == pytest.approx(ev, abs=1e-6)
    assert summary["ev_from_surplus_kwh"] == pytest.approx(from_surplus, abs=1e-6)
    assert summary["ev_grid_import_kwh"] == pytest.approx(imported, abs=1e-6)
    assert summary["capture_pct"] == pytest.approx(100 * from_surplus / surplus, abs=1e-6)
    assert summary["grid_share_pct"] == pytest.approx(100 * imported / ev if ev else 0, abs=1e-6)
    assert summary["starts"] == starts
    assert summary["pilot_changes"] == changes
    assert 0 < summary["capture_of_bound"] <= 1.0 + 1e-9


def test_sample_day_demo_and_realistic_plant(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--plant", "realistic", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sample-day with balanced (realistic plant)" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["plant"] == "realistic" and summary["surplus_kwh"] > 10
    assert summary["ev_kwh"] > 0
    with (tmp_path / "steps.csv").open() as f:
        dts = {row["dt_s"] for row in csv.DictReader(f)}
    assert dts <= {"0", "1"}  # realistic plant: 1 s steps


def test_bad_trace_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,solar_w,load_w\nnot,a,number\n")
    proc = _run("simulate", "--trace", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == "divert simulate: bad: no readable rows"


def test_native_trace_with_grid_column_and_empty_cells() -> None:
    text = ("time,solar_w,grid_w,voltage_v\n"
            "2024-04-20T10:00:00+02:00,3000,-2500,231\n"
            "1713607260,3100,,\n"
            "2024-04-20T08:02:00Z,3200,-2600,\n")
    t = trace.parse(text, "x")
    assert list(t.time_s) == [1713600000.0, 1713600120.0]
    assert list(t.load_w) == [500.0, 600.0]
    assert list(t.surplus_w) == [2500.0, 2600.0]
    assert t.voltage_v[0] == 231.0


def test_openevse_kw_file_is_scaled_and_dated(openevse_data: Path) -> None:
    t = trace.load(openevse_data / "Energy_and_Power_Day_2020-03-22.csv")
    assert t.time_s[0] == 1577837700.0  # 2020-01-01 00:15 UTC
    assert t.solar_w.max() > 1000  # kW × 1000


@pytest.mark.parametrize(("entry", "control"), [
    ('type = "psp"\nurl = "http://127.0.0.1:9"\nmin_current_a = 6\nmax_current_a = 16',
     "power"),
    ('type = "evsemaster"\nserial = "9181102751219513"\npassword = "123456"\n'
     'restart_gap_s = 60', "restart"),
    ('type = "openevse"\ntransport = "serial"\ndevice = "/dev/null"', "current"),
])
def test_simulate_config_uses_the_drivers_control_kind(tmp_path: Path, entry: str,
                                                       control: str) -> None:
    """A PSP EVSE is simulated as a power setpoint (0.1 A fine), an EVSEMaster charger as
    restart-only: every change of current while charging is a stop and a start."""
    config = tmp_path / "divert.toml"
    config.write_text(f'[[chargers]]\nname = "car"\n{entry}\n')
    proc = _run("simulate", "--config", str(config), "--json", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["chargers"]["car"]["control"] == control
    with (tmp_path / "steps-car.csv").open() as f:
        rows = [(float(r["setpoint_a"]), r["charging"] == "1") for r in csv.DictReader(f)]
    charging = [a for a, on in rows if on]
    assert charging, "the sample day charges"
    fine = any(a != round(a) for a in charging)
    assert fine == (control == "power")
    changes_while_on = sum(1 for (a0, on0), (a1, on1) in itertools.pairwise(rows)
                           if on0 and on1 and a0 != a1)
    assert (changes_while_on == 0) == (control == "restart")
