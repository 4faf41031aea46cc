"""Pictures of a simulated day. Needs the optional `plot` extra (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from divert.sim.simulate import Steps
from divert.sim.site import SiteSteps


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_day(steps: Steps, title: str, path: Path, watts_per_amp: float) -> None:
    """Solar, house load, EV power and setpoint over the day, starts marked.

    The setpoint axis is scaled by `watts_per_amp` (voltage × phases) so that a setpoint
    lies on the power it commands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = steps.time_s.astype("datetime64[s]")
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.fill_between(times, steps.solar_w / 1000, color="#f5c542", alpha=0.5, label="solar")
    ax.plot(times, steps.load_w / 1000, color="#555555", lw=0.8, label="house load")
    ax.plot(times, steps.ev_w / 1000, color="#1f77b4", lw=1.2, label="EV")
    on = steps.charging
    starts = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
    ax.plot(times[starts], steps.ev_w[starts] / 1000, "g^", ms=9, label="start")
    ax.set_ylabel("power (kW)")
    ax2 = ax.twinx()
    ax2.step(times, steps.setpoint_a, where="post", color="#d62728", lw=0.7, alpha=0.7,
             label="setpoint")
    ax2.set_ylabel("setpoint (A)")
    lo_kw, hi_kw = ax.get_ylim()
    ax2.set_ylim(lo_kw * 1000 / watts_per_amp, hi_kw * 1000 / watts_per_amp)
    ax.set_title(title)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_site(steps: SiteSteps, title: str, path: Path) -> None:
    """Solar, house load, each charger's power and the home battery's over the day; the
    battery's state of charge on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = steps.time_s.astype("datetime64[s]")
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.fill_between(times, steps.solar_w / 1000, color="#f5c542", alpha=0.5, label="solar")
    ax.plot(times, steps.load_w / 1000, color="#555555", lw=0.8, label="house load")
    for name, c in steps.chargers.items():
        ax.plot(times, c.ev_w / 1000, lw=1.2, label=f"EV {name}")
    if steps.battery_w.any():
        ax.plot(times, steps.battery_w / 1000, color="#2ca02c", lw=0.8,
                label="battery (+ charging)")
    ax.set_ylabel("power (kW)")
    lines = ax.get_legend_handles_labels()
    if np.isfinite(steps.battery_soc_pct).any():
        ax2 = ax.twinx()
        ax2.plot(times, steps.battery_soc_pct, color="#2ca02c", lw=0.8, ls=":",
                 label="battery SoC")
        ax2.set_ylabel("state of charge (%)")
        ax2.set_ylim(0, 100)
        lines2 = ax2.get_legend_handles_labels()
        lines = (lines[0] + lines2[0], lines[1] + lines2[1])
    ax.set_title(title)
    ax.legend(lines[0], lines[1], loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
