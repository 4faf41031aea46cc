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

Format = Literal["auto", "native", "openevse"]
FloatArray = npt.NDArray[np.float64]


BATTERY_COLUMNS = ("battery_w", "battery_soc_pct")  # optional in native traces


class TraceError(ValueError):
    """A trace file that cannot be read."""


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
    return stamp.timestamp()


def _rows(text: str) -> list[list[str]]:
    text = text.lstrip("\ufeff")
    delimiter = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") \
        else ","
    return [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r]


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
        cols[1].append(round((values[1] or 0.0) * scale))
        cols[2].append(values[2] if len(values) > 2 and values[2] is not None else math.nan)
    if not cols[0]:
        raise TraceError(f"{name}: no readable rows")
    time_s = np.asarray(cols[0])
    solar_w = np.asarray(cols[1], dtype=np.float64)
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
    if np.any(np.diff(time_s) < 0):
        raise TraceError(f"{name}: times must not go backwards")
    volts_v = np.asarray(out["voltage_v"])
    battery = [np.asarray(out[h]) if h in out else None for h in BATTERY_COLUMNS]
    if other == "grid_w":
        grid_w = np.asarray(out["grid_w"])
        return Trace(name, time_s, solar_w, solar_w + grid_w, volts_v, grid_w, *battery)
    return Trace(name, time_s, solar_w, np.asarray(out["load_w"]), volts_v, None, *battery)


def parse(text: str, name: str, fmt: Format = "auto") -> Trace:
    rows = _rows(text)
    if len(rows) < 2:
        raise TraceError(f"{name}: empty trace")
    if fmt == "auto":
        fmt = "native" if "solar_w" in [h.strip() for h in rows[0]] else "openevse"
    if fmt == "native":
        return _native(name, rows)
    scale = 1000.0 if "[kw]" in " ".join(rows[0]).lower() else 1.0
    return _openevse(name, rows, scale)


def load(path: Path, fmt: Format = "auto") -> Trace:
    """Read a trace file; raises TraceError for anything unreadable."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
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
