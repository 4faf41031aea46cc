"""Solar/load traces: divert's native CSV and the OpenEVSE divert-simulator files.

A trace is a set of numpy arrays, one entry per row; powers in W, times in unix seconds.
Each row's powers hold over the interval *before* that row (backward rectangle).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from divert.textfile import UnreadableFile, read_text

Format = Literal["auto", "native", "openevse"]
FloatArray = npt.NDArray[np.float64]


BATTERY_COLUMNS = ("battery_w", "battery_soc_pct")  # optional in native traces


class TraceError(ValueError):
    """A trace file that cannot be read, or whose times or powers are absurd."""


MAX_TRACE_BYTES = 64 * 1024 * 1024  # a year of one-minute rows is about 20 MiB
# Plausible values: times from 1970 to 2100 (unix s), no two rows more than a day apart
# (a longer gap is a merge of unrelated recordings), powers within ±10 MW, measured
# voltages above 0 and up to 1000 V.
MAX_TIME_S = 4_102_444_800.0
MAX_GAP_S = 86_400.0
MAX_POWER_W = 10e6
MAX_VOLTAGE_V = 1000.0


@dataclass(frozen=True)
class Trace:
    """One day (or any span) of readings.

    `grid_w` (+ import/− export, excluding any EV) is present for traces recorded at a grid
    meter; then `load_w = solar_w + grid_w`. `voltage_v` is NaN where not measured. A home
    battery, if recorded: `battery_w` (+ charging / − discharging, inside `load_w`: the site's
    load without the EV) and `battery_soc_pct`, NaN where not recorded.
    """

    name: str
    time_s: FloatArray
    solar_w: FloatArray
    load_w: FloatArray
    voltage_v: FloatArray
    grid_w: FloatArray | None = None
    battery_w: FloatArray | None = None
    battery_soc_pct: FloatArray | None = None

    @property
    def surplus_w(self) -> FloatArray:
        """Power the house does not use: max(0, solar − load), W."""
        s: FloatArray = np.maximum(0.0, self.solar_w - self.load_w)
        return s

    @property
    def dt_s(self) -> FloatArray:
        """How long each row's powers hold: time since the previous row (0 for the first)."""
        return np.diff(self.time_s, prepend=self.time_s[:1])

    def __len__(self) -> int:
        return len(self.time_s)

    def scaled(self, factor: float) -> Trace:
        """The same day with every power × `factor` (a larger array and house), nominal
        voltage, no battery."""
        return Trace(self.name, self.time_s, self.solar_w * factor, self.load_w * factor,
                     np.full(len(self), math.nan),
                     None if self.grid_w is None else self.grid_w * factor)


def _number(cell: str) -> float | None:
    try:
        v = float(cell.strip().strip('"'))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _time(cell: str, day: dt.date | None = None) -> float | None:
    text = cell.strip().strip('"')
    v = _number(text)
    if v is not None:
        return v
    for fmt in ("%I:%M %p",):  # time of day only (Energy_and_Power files)
        try:
            tod = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        base = day or dt.date(2020, 1, 1)
        return dt.datetime.combine(base, tod.time(), dt.UTC).timestamp()
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    try:
        return stamp.timestamp()
    except (OverflowError, ValueError):  # year 1 in a zone east of UTC
        return None


def _rows(text: str, name: str) -> list[list[str]]:
    text = text.lstrip("\ufeff")
    delimiter = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") \
        else ","
    try:
        return [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]
    except csv.Error as exc:  # e.g. a lone CR inside a field
        raise TraceError(f"{name}: not CSV: {exc}") from None


def _openevse(name: str, rows: list[list[str]], scale: float) -> Trace:
    """OpenEVSE divert_sim files: time, solar[, grid | voltage]. Rows with a bad cell skipped."""
    header = " ".join(rows[0]).lower()
    has_grid = "grid" in header
    has_voltage = "voltage" in header or "vrms" in header
    cols: list[list[float]] = [[], [], []]
    for row in rows:
        values = [_time(row[0])] + [_number(c) for c in row[1:3]]
        if len(row) < (3 if has_grid or has_voltage else 2) or any(v is None for v in values):
            continue
        cols[0].append(values[0] or 0.0)
        cols[1].append(values[1] or 0.0)
        cols[2].append(values[2] if len(values) > 2 and values[2] is not None else math.nan)
    if not cols[0]:
        raise TraceError(f"{name}: no readable rows")
    time_s = np.asarray(cols[0])
    solar_w = np.round(np.asarray(cols[1], dtype=np.float64) * scale)
    third = np.asarray(cols[2])
    if has_grid:
        grid_w = np.round(third)
        return Trace(name, time_s, solar_w, solar_w + grid_w, np.full(len(time_s), math.nan),
                     grid_w)
    voltage_v = third if has_voltage else np.full(len(time_s), math.nan)
    return Trace(name, time_s, solar_w, np.zeros(len(time_s)), voltage_v)


def _native(name: str, rows: list[list[str]]) -> Trace:
    header = [h.strip() for h in rows[0]]
    if "time" not in header or "solar_w" not in header:
        raise TraceError(f"{name}: a native trace needs the columns time and solar_w")
    if ("load_w" in header) == ("grid_w" in header):
        raise TraceError(f"{name}: a native trace needs exactly one of load_w and grid_w")
    idx = {h: header.index(h) for h in header}
    other = "grid_w" if "grid_w" in idx else "load_w"
    optional = [h for h in ("voltage_v", *BATTERY_COLUMNS) if h == "voltage_v" or h in idx]
    out: dict[str, list[float]] = {"time": [], "solar_w": [], other: [],
                                   **{h: [] for h in optional}}
    for row in rows[1:]:
        cells = {k: row[i] if i < len(row) else "" for k, i in idx.items()}
        t = _time(cells["time"])
        solar = _number(cells["solar_w"])
        second = _number(cells[other])
        if t is None or solar is None or second is None:
            continue  # an empty cell skips the row
        out["time"].append(t)
        out["solar_w"].append(solar)
        out[other].append(second)
        for h in optional:
            value = _number(cells.get(h, ""))
            out[h].append(math.nan if value is None else value)
    if not out["time"]:
        raise TraceError(f"{name}: no readable rows")
    time_s, solar_w = np.asarray(out["time"]), np.asarray(out["solar_w"])
    volts_v = np.asarray(out["voltage_v"])
    battery = [np.asarray(out[h]) if h in out else None for h in BATTERY_COLUMNS]
    if other == "grid_w":
        grid_w = np.asarray(out["grid_w"])
        return Trace(name, time_s, solar_w, solar_w + grid_w, volts_v, grid_w, *battery)
    return Trace(name, time_s, solar_w, np.asarray(out["load_w"]), volts_v, None, *battery)


def _checked(tr: Trace) -> Trace:
    """`tr` if its times run forwards, within MAX_TIME_S and MAX_GAP_S, its powers within
    ±MAX_POWER_W, its voltages and the battery's state of charge plausible; TraceError saying
    which row is absurd otherwise."""
    t = tr.time_s
    bad = np.flatnonzero((t < 0) | (t > MAX_TIME_S))
    if bad.size:
        raise TraceError(f"{tr.name}: row {bad[0] + 1}: time {t[bad[0]]:g} s is not between "
                         f"1970 and 2100")
    dt = np.diff(t)
    if np.any(dt < 0):
        raise TraceError(f"{tr.name}: times must not go backwards (row "
                         f"{np.flatnonzero(dt < 0)[0] + 2})")
    if np.any(dt > MAX_GAP_S):
        row = np.flatnonzero(dt > MAX_GAP_S)[0]
        raise TraceError(f"{tr.name}: a gap of {dt[row] / 3600:.0f} h before row {row + 2} "
                         f"(at most {MAX_GAP_S / 3600:.0f} h): split the trace")
    for label, values in (("solar", tr.solar_w), ("grid", tr.grid_w), ("load", tr.load_w)):
        if values is not None and not np.all(np.abs(values) <= MAX_POWER_W):
            row = np.flatnonzero(~(np.abs(values) <= MAX_POWER_W))[0]
            raise TraceError(f"{tr.name}: row {row + 1}: {label} power {values[row]:g} W is "
                             f"beyond ±{MAX_POWER_W / 1e6:g} MW")
    # Measured (not NaN) values of the optional columns, and their plausible range.
    for values, low, high, what in (
            (tr.voltage_v, 1e-9, MAX_VOLTAGE_V, "voltage {:g} V is not between 0 and 1000 V"),
            (tr.battery_w, -MAX_POWER_W, MAX_POWER_W, "battery power {:g} W is beyond ±10 MW"),
            (tr.battery_soc_pct, 0.0, 100.0, "battery state of charge {:g} % is not 0–100 %")):
        if values is None:
            continue
        bad = np.flatnonzero(~np.isnan(values) & ((values < low) | (values > high)))
        if bad.size:
            raise TraceError(f"{tr.name}: row {bad[0] + 1}: {what.format(values[bad[0]])}")
    return tr


def parse(text: str, name: str, fmt: Format = "auto") -> Trace:
    """A trace from CSV text; TraceError for an unreadable or implausible one."""
    rows = _rows(text, name)
    if len(rows) < 2:
        raise TraceError(f"{name}: empty trace")
    if fmt == "auto":
        fmt = "native" if "solar_w" in [h.strip() for h in rows[0]] else "openevse"
    with np.errstate(over="ignore", invalid="ignore"):  # absurd values: _checked says so
        if fmt == "native":
            return _checked(_native(name, rows))
        scale = 1000.0 if "[kw]" in " ".join(rows[0]).lower() else 1.0
        return _checked(_openevse(name, rows, scale))


def load(path: Path, fmt: Format = "auto") -> Trace:
    """Read a trace file (a regular file of at most MAX_TRACE_BYTES); raises TraceError for
    anything unreadable."""
    try:
        text = read_text(path, MAX_TRACE_BYTES, "utf-8-sig")
    except UnreadableFile as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    return parse(text, path.stem, fmt)


NIGHT_ROW_S = 300.0  # the night between chained days: a row of nothing every 5 min


def chain(traces: list[Trace]) -> Trace:
    """Several traces as one, each moved to the day after the previous one ends (the time
    of day kept): a multi-day run from single days. The night between two is filled with
    rows of no sun and no house load; mixed metering becomes solar and load, and a home
    battery is kept only if every trace has one."""
    if len(traces) == 1:
        return traces[0]
    parts: list[tuple[FloatArray, ...]] = []  # time, solar, load, voltage, grid, battery, soc
    next_day = None
    for t in traces:
        first_day = math.floor(t.time_s[0] / 86400.0)
        shift_s = 0.0 if next_day is None else (next_day - first_day) * 86400.0
        if parts:
            night = np.arange(parts[-1][0][-1] + NIGHT_ROW_S, t.time_s[0] + shift_s,
                              NIGHT_ROW_S)
            zeros, nan = np.zeros(len(night)), np.full(len(night), math.nan)
            parts.append((night, zeros, zeros, nan, zeros, zeros, nan))
        nan = np.full(len(t), math.nan)
        parts.append((t.time_s + shift_s, t.solar_w, t.load_w, t.voltage_v,
                      nan if t.grid_w is None else t.grid_w,
                      nan if t.battery_w is None else t.battery_w,
                      nan if t.battery_soc_pct is None else t.battery_soc_pct))
        next_day = math.floor(parts[-1][0][-1] / 86400.0) + 1
    columns = [np.concatenate([p[i] for p in parts]) for i in range(7)]
    metered = all(t.grid_w is not None for t in traces)
    battery = all(t.battery_w is not None for t in traces)
    time_s, solar_w, load_w, voltage_v, grid_w, battery_w, soc_pct = columns
    return Trace("+".join(t.name for t in traces), time_s, solar_w, load_w, voltage_v,
                 grid_w if metered else None, battery_w if battery else None,
                 soc_pct if battery else None)
