"""The metrics listener's other pages: `/api/state`, `/api/history` and the status page (in a
real headless Chromium), `divert status` against a running daemon and none, and the Grafana
dashboard's queries against `/metrics`."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, free_port
from daemon_support import Publisher, config, settings, toml_text
from prometheus_client.parser import text_string_to_metric_families

from divert.cli import main
from divert.core.modes import Mode
from divert.daemon.service import Daemon
from divert.daemon.snapshot import ChargerState, SiteState, Snapshot

TWO = [{"name": "garage", "type": "simulated"},
       {"name": "carport", "type": "simulated", "phases": 3}]
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                       "google-chrome")) if p), None)


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def running(tmp_path: Path, mosquitto: Any, publisher: Publisher) -> Iterator[Daemon]:
    """A daemon with two chargers and its listener on a free port, charging garage."""
    port = free_port()
    daemon = Daemon(settings(tmp_path, mosquitto, chargers=TWO,
                             metrics={"listen": f"127.0.0.1:{port}"}))
    daemon.start()
    try:
        sim = daemon.chargers["garage"]
        publisher.until("home/grid", "-3000", lambda: getattr(sim, "enabled", False))
        yield daemon
    finally:
        daemon.stop()


def _url(daemon: Daemon, path: str) -> str:
    return f"http://{daemon.settings.metrics.listen}{path}"


def test_api_state_history_and_page_are_served_read_only(running: Daemon) -> None:
    status, headers, body = _get(_url(running, "/api/state"))
    assert status == 200 and headers["Content-Type"] == "application/json"
    state = json.loads(body)
    assert [c["name"] for c in state["chargers"]] == ["garage", "carport"]
    garage = state["chargers"][0]
    assert garage["charging"] is True and garage["setpoint_a"] == 13.0
    assert garage["reason"] == running.last_decisions["garage"].reason
    assert state["site"]["surplus_w"] == 3000.0
    assert state["site"]["feeds"]["grid"]["health"] == "ok"
    status, _, body = _get(_url(running, "/api/history"))
    history = json.loads(body)
    assert status == 200 and set(history["chargers"]) == {"garage", "carport"}
    assert len(history["time_s"]) == len(history["surplus_w"]) == 1  # one point per 30 s

    status, headers, page = _get(_url(running, "/"))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    # Self-contained: nothing fetched from elsewhere, and the browser is told so.
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert not re.search(rb"<script[^>]+src|<link|@import|url\(|@font-face", page)
    assert set(re.findall(rb"https?://[^\"' )]+", page)) == {b"http://www.w3.org/2000/svg"}

    request = urllib.request.Request(_url(running, "/api/state"), data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405
    assert _get(_url(running, "/nothing"))[0] == 404


def test_divert_status_against_a_running_daemon_and_none(
        running: Daemon, tmp_path: Path, mosquitto: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "divert.toml"
    cfg.write_text(toml_text(config(tmp_path, mosquitto, chargers=TWO,
                                    metrics={"listen": running.settings.metrics.listen})))
    assert main(["status", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "mode solar" in out
    for name in ("garage", "carport"):
        assert f"\n{name}: mode solar" in out
    assert f"reason:       {running.last_decisions['garage'].reason}" in out
    assert "starts:       1 today" in out and "energy today:" in out

    assert main(["status", "-c", str(cfg), "--json"]) == 0
    assert [c["name"] for c in json.loads(capsys.readouterr().out)["chargers"]] == \
        ["garage", "carport"]

    cfg.write_text(toml_text(config(tmp_path, mosquitto, metrics={
        "listen": f"127.0.0.1:{free_port()}"})))
    assert main(["status", "-c", str(cfg)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("divert is not running: nothing answers on http://127.0.0.1:")
    assert "Traceback" not in err


def _metric_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        names.update(family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum"))
    return names


def test_every_metric_the_grafana_dashboard_queries_exists(running: Daemon) -> None:
    dashboard = json.loads((REPO / "contrib" / "grafana" / "divert.json").read_text())

    def exprs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    yield value
                else:
                    yield from exprs(value)
        elif isinstance(node, list):
            for value in node:
                yield from exprs(value)

    queried = {name for expr in exprs(dashboard)
               for name in re.findall(r"\bdivert_[a-z0-9_]+", expr)}
    assert len(queried) >= 15
    _, _, body = _get(_url(running, "/metrics"))
    assert not queried - _metric_names(body.decode())


def _history(daemon: Daemon, end_s: float) -> None:
    """An afternoon for the chart: surplus under passing clouds, garage following it."""
    site = SiteState(None, None, None, ())
    template = ChargerState("", True, Mode.SOLAR, 0.0, None, False, "", None, 1, 6.0, 16.0,
                            None, 0, 2, 6, 0.0, 0.0, 0.0, 0.0)
    steps = 4 * 120
    for i in range(steps):
        t_s = end_s - (steps - i) * 30.0
        sun = math.sin(math.pi * (0.35 + 0.55 * i / steps))
        clouds = 0.55 if 150 < i < 175 or 300 < i < 318 else 1.0
        surplus_w = 5200 * sun * clouds - 900
        garage_w = 0.0 if surplus_w < 1500 or 152 < i < 200 else min(16, surplus_w // 230) * 230
        carport_w = 4140.0 if 60 < i < 110 else 0.0
        daemon.publishers.history.add(Snapshot(t_s, Mode.SOLAR, SiteState(
            surplus_w, garage_w + carport_w - surplus_w, None, site.feeds), (
            ChargerState(**{**template.__dict__, "name": "garage", "power_w": garage_w}),
            ChargerState(**{**template.__dict__, "name": "carport", "power_w": carport_w}))))


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                    "(apt-get install chromium; CI installs it)")
def test_the_page_in_headless_chromium(tmp_path: Path, mosquitto: Any,
                                       publisher: Publisher) -> None:
    assert CHROMIUM is not None
    now_s = time.time()
    wh = {"garage": (412_345.0, 20_512.0, 404_012.0, 20_100.0),
          "carport": (98_000.0, 3_100.0, 96_050.0, 3_100.0)}
    (tmp_path / "state.json").write_text(json.dumps({
        "version": 1, "saved_at": now_s, "config_mode": "solar", "mode": "solar",
        "limit_a": None,
        "chargers": {name: {"controller": {"guard": {"on": False, "changed_s": now_s - 3600,
                                                     "starts_s": [now_s - 3 * 3600]},
                                           "setpoint_a": 6.0, "mode": "solar"},
                            "ev_from_surplus_wh": v[0], "ev_from_grid_wh": v[1]}
                     for name, v in wh.items()},
        "energy_today": {"day": datetime.now(UTC).date().isoformat(),
                         "chargers": {name: [v[2], v[3]] for name, v in wh.items()}},
        "commands": {"config_mode": "solar", "chargers": {
            "carport": {"mode": "off", "config_range_a": [6, 16]}}}}))
    port = free_port()
    relay = {"min_on_s": 0, "min_off_s": 0, "max_starts_per_hour": 2, "max_starts_per_day": 6}
    daemon = Daemon(settings(tmp_path, mosquitto, chargers=TWO, relay=relay,
                             metrics={"listen": f"127.0.0.1:{port}"}))
    _history(daemon, now_s - 30)
    daemon.start()
    try:
        publisher.until("home/grid", "-3000", lambda: getattr(daemon.chargers["garage"],
                                                              "enabled", False))
        url = f"http://127.0.0.1:{port}/"
        browser = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run",
                   "--no-default-browser-check", "--hide-scrollbars",
                   f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=4000"]
        if os.geteuid() == 0:
            browser.append("--no-sandbox")  # Chromium refuses to run as root otherwise
        dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        for name in ("garage", "carport"):
            assert f'data-charger="{name}"' in dom
        assert daemon.last_decisions["garage"].reason in dom
        assert "off: mode is off" in dom  # the carport's command survived in the state file
        assert "8.33 kWh / 0.41 kWh" in dom  # today, from the saved start of the day
        assert len(re.findall(r'<path d="M', dom)) >= 4  # surplus, grid and both chargers
        assert 'id="banner" style="display: none;"' in dom

        png = tmp_path / "status-page.png"
        subprocess.run([*browser, "--window-size=1280,880", f"--screenshot={png}", url],
                       capture_output=True, timeout=60, check=True)
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (1280, 880)
        if os.environ.get("DIVERT_SCREENSHOT"):  # make screenshot: the README's picture
            shutil.copy(png, os.environ["DIVERT_SCREENSHOT"])
    finally:
        daemon.stop()
