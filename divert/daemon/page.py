"""The status page on the metrics listener: `/` (one self-contained HTML file: no external
scripts, styles or fonts, so it works with the Pi offline), `/api/state` (the latest
Snapshot as JSON) and `/api/history` (the last hours, kept in memory, for the page's chart).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

from divert import __version__
from divert.daemon.metrics import Page
from divert.daemon.snapshot import Snapshot

HISTORY_SPAN_S = 6 * 3600.0
HISTORY_STEP_S = 30.0

_Point = tuple[float, float | None, float | None, dict[str, float | None]]


class History:
    """The site's surplus and grid power and each charger's power, one point per `step_s`
    over the last `span_s`; lost on restart."""

    def __init__(self, span_s: float = HISTORY_SPAN_S, step_s: float = HISTORY_STEP_S) -> None:
        self.step_s = step_s
        self._points: deque[_Point] = deque(maxlen=int(span_s / step_s) + 1)
        self._lock = threading.Lock()

    def add(self, snap: Snapshot) -> None:
        with self._lock:
            if self._points:
                since_s = snap.time_s - self._points[-1][0]
                if since_s < 0:  # the wall clock stepped back: start again
                    self._points.clear()
                elif since_s < self.step_s:
                    return
            self._points.append((snap.time_s, snap.site.surplus_w, snap.site.grid_w,
                                 {c.name: c.power_w for c in snap.chargers}))

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            points = list(self._points)
        names = sorted({name for p in points for name in p[3]})
        return {"step_s": self.step_s, "time_s": [p[0] for p in points],
                "surplus_w": [p[1] for p in points], "grid_w": [p[2] for p in points],
                "chargers": {n: [p[3].get(n) for p in points] for n in names}}


def _json(status: int, data: Any) -> tuple[int, str, bytes]:
    # NaN is not JSON: every float in a Snapshot is finite or None.
    return status, "application/json", json.dumps(data, allow_nan=False).encode()


def pages(latest: Callable[[], Snapshot | None], history: History) -> dict[str, Page]:
    html = resources.files("divert.daemon").joinpath("status.html").read_bytes()

    def state() -> tuple[int, str, bytes]:
        snap = latest()
        if snap is None:
            return _json(503, {"error": "starting: no control cycle yet",
                               "version": __version__})
        return _json(200, {"version": __version__, **snap.to_json()})

    return {"/": lambda: (200, "text/html; charset=utf-8", html), "/api/state": state,
            "/api/history": lambda: _json(200, history.to_json())}
