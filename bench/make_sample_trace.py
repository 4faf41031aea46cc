"""Generate divert/sim/data/sample-day.csv, the bundled no-hardware demo trace.

The model (deterministic, seed 2024):
* PV: a 6 kWp array on a clear spring day, sunrise 06:00, sunset 20:00 UTC; clear-sky
  power follows sin(π·x)^1.3 over the day fraction x, peaking at 5.4 kW (inverter losses).
* Clouds: a two-state Markov chain per minute (clear ↔ cloud, mean spells 25 and 6 minutes,
  more cloud after 14:00); under cloud the PV drops to 25–45 % of clear sky.
* House load: 250 W base, a fridge cycling 90 W for 20 of every 45 minutes, a kettle
  (2 kW, 3 min) at 07:10, 10:30 and 16:05, an oven (2.2 kW, 50 min) at 12:00, a washing
  machine (1.8 kW for 20 min then 300 W for 60 min) at 09:40.
Run: python bench/make_sample_trace.py
"""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "divert" / "sim" / "data" / "sample-day.csv"


def main() -> None:
    rng = random.Random(2024)
    start = datetime(2024, 4, 20, 5, 30, tzinfo=UTC)
    cloudy = False
    depth = 0.35
    rows = []
    for minute in range(15 * 60 + 30):
        t = start + timedelta(minutes=minute)
        hours = t.hour + t.minute / 60
        x = (hours - 6.0) / 14.0
        clear_w = 5400.0 * math.sin(math.pi * x) ** 1.3 if 0 < x < 1 else 0.0
        p_cloud = 1 / 25 if hours < 14 else 1 / 12
        if cloudy and rng.random() < 1 / 6:
            cloudy = False
        elif not cloudy and rng.random() < p_cloud:
            cloudy, depth = True, rng.uniform(0.25, 0.45)
        solar_w = clear_w * (depth if cloudy else 1.0) * rng.uniform(0.98, 1.02)
        load_w = 250.0 + (90.0 if minute % 45 < 20 else 0.0) + rng.uniform(-20, 20)
        for at, minutes, watts in ((7 + 10 / 60, 3, 2000), (10.5, 3, 2000), (16 + 5 / 60, 3, 2000),
                                   (12.0, 50, 2200), (9 + 40 / 60, 20, 1800),
                                   (10.0, 60, 300)):
            if at <= hours < at + minutes / 60:
                load_w += watts
        rows.append((t.isoformat(), round(solar_w), round(load_w)))
    with OUT.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "solar_w", "load_w"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
