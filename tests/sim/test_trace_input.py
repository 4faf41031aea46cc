"""Hostile traces: absurd times, gaps and powers are refused with one line; the realistic
plant refuses spans it could not hold in memory; no file is read that is no regular file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from divert.cli import main
from divert.sim import simulate, trace

HEADER = "time,solar_w,load_w\n"


@pytest.mark.parametrize(("text", "message"), [
    # Issue 14: values like 1e306 overflowed; ±1e308 times gave NaN summaries.
    (HEADER + "0,1e306,-1e306\n60,1,1\n", "x: row 1: solar power 1e+306 W is beyond ±10 MW"),
    ("time,solar\n0,1e306\n60,1\n", "x: row 1: solar power 1e+306 W is beyond ±10 MW"),
    ("time,solar[kW]\n0,1e306\n60,1\n", "x: row 1: solar power inf W is beyond ±10 MW"),
    ("time,solar,grid\n0,1,1e300\n60,1,1\n", "x: row 1: grid power 1e+300 W is beyond ±10 MW"),
    (HEADER + "-1e308,1,1\n1e308,1,1\n", "x: row 1: time -1e+308 s is not between 1970 and 2100"),
    (HEADER + "0,1,1\n1e308,1,1\n", "x: row 2: time 1e+308 s is not between 1970 and 2100"),
    (HEADER + "9999-12-31T00:00:00,1,1\n9999-12-31T00:01:00,1,1\n",
     "x: row 1: time 2.53402e+11 s is not between 1970 and 2100"),
    # A one-year gap made the realistic plant try to allocate terabytes.
    (HEADER + "1.7e9,1,1\n1.7316e9,1,1\n", "x: a gap of 8778 h before row 2 (at most 24 h)"),
    ("time,solar\n120,1\n60,1\n", "x: times must not go backwards (row 2)"),
    ("time,solar_w,load_w,voltage_v\n0,1,1,1e300\n60,1,1,230\n",
     "x: row 1: voltage 1e+300 V is not between 0 and 1000 V"),
    ("time,solar_w,load_w,battery_w,battery_soc_pct\n0,1,1,5,101\n60,1,1,,\n",
     "x: row 1: battery state of charge 101 % is not 0–100 %"),
    ("time,solar_w,load_w,battery_w\n0,1,1,-1e9\n", "x: row 1: battery power -1e+09 W is"),
    # Found by the fuzz harness: a lone CR inside a field ended in csv.Error.
    ("time,solar\n0,1\r5\n60,2\n", "x: not CSV: new-line character seen in unquoted field"),
])
def test_absurd_trace_is_refused(text: str, message: str) -> None:
    with pytest.raises(trace.TraceError) as err:
        trace.parse(text, "x")
    assert str(err.value).startswith(message), str(err.value)


def _days(tmp_path: Path, days: float) -> Path:
    """A native trace of one row a minute over `days` days."""
    path = tmp_path / "long.csv"
    rows = [f"{1.7e9 + 60 * i:.0f},{1000 + i % 500},300" for i in range(int(days * 1440) + 1)]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return path


def test_realistic_plant_refuses_a_span_it_cannot_hold(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _days(tmp_path, 8)
    args = ["simulate", "--trace", str(path), "--out", str(tmp_path / "o"), "--json"]
    assert main([*args, "--plant", "realistic"]) == 1
    assert capsys.readouterr().err == (
        "divert simulate: long: spans 8.0 days; the realistic plant simulates every second "
        "of at most 7 days (split the trace, or use the ideal plant)\n")
    assert main([*args, "--plant", "ideal"]) == 0  # one step per row: fine
    summary = json.loads(capsys.readouterr().out)
    assert all(math.isfinite(v) for v in summary.values() if isinstance(v, float))


def test_a_trace_that_is_no_regular_file_is_refused(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "fifo.csv")
    for path in ("/dev/zero", "/dev/stdin", str(tmp_path / "fifo.csv"), str(tmp_path)):
        assert main(["simulate", "--trace", path, "--out", str(tmp_path / "o")]) == 1
        assert capsys.readouterr().err == \
            f"divert simulate: {path}: cannot read: not a regular file\n"


def test_an_output_directory_that_cannot_be_written_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", "/dev/null/out"]) == 1
    assert capsys.readouterr().err == \
        "divert simulate: cannot write to /dev/null/out: Not a directory\n"


def test_realistic_limit_is_a_span_not_a_row_count() -> None:
    t = trace.parse(HEADER + "1.7e9,1,1\n1.7e9,2,1\n", "x")  # repeated time: dt 0
    assert len(simulate.run(t, lambda: _controller(), "realistic").time_s) == 1


def _controller() -> simulate.Controller:
    from divert.policies.presets import load_preset
    return load_preset("balanced").controller(simulate.BENCH_CAPS)


@pytest.mark.parametrize("args", [["--battery-kwh", "nan"], ["--battery-kwh", "inf"],
                                  ["--battery-w", "inf"]])
def test_a_battery_that_is_not_finite_is_refused(tmp_path: Path, args: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 14's rule: non-finite numbers are refused at the boundary (NaN was simulated).
    assert main(["simulate", *args, "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("divert simulate: battery: need a finite")
