"""`divert run` stops within 5 s whatever its chargers do, a second signal never skips the save,
and the process carries neither numpy nor the simulator (every thread blocks the signals)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from daemon_support import Publisher, config, toml_text, wait_for

from chargers.openevse.emulator import HttpEmulator
from chargers.openevse.rapi import EvseState

from .harness import Evse
from .procs import NotifyListener, Run

FREE = {"min_on_s": 0, "min_off_s": 0, "max_starts_per_hour": 60, "max_starts_per_day": 1000}


def _sigmask(pid: int) -> list[int]:
    """The blocked-signal mask of each thread but the main one (which, waiting in sigwait,
    has the signals it waits for unblocked meanwhile)."""
    masks = []
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        if status.parent.name == str(pid):
            continue
        line = next(x for x in status.read_text().splitlines() if x.startswith("SigBlk:"))
        masks.append(int(line.split()[1], 16))
    return masks


def test_sigterm_with_a_charger_answering_late_stops_within_5_s(
        tmp_path: Path, mosquitto: Any, publisher: Publisher, notify: NotifyListener) -> None:
    evses = {"good": Evse(), "late": Evse()}
    fronts = {}
    for name, evse in evses.items():
        evse.plug_in(requesting=True)
        evse.mode = "sleeping"
        fronts[name] = HttpEmulator(evse)
    cfg = tmp_path / "divert.toml"
    cfg.write_text(toml_text(config(tmp_path, mosquitto, relay=FREE, chargers=[
        {"name": name, "type": "openevse", "transport": "http", "url": front.url,
         "timeout_s": 10.0, "retries": 0} for name, front in fronts.items()])))
    run = Run(cfg, notify)
    good, late = evses["good"], evses["late"]
    try:
        publisher.until("home/grid", "-6000", lambda: good.state == late.state ==
                        EvseState.CHARGING, timeout_s=20, what="both charging")
        late.delay_next(30.0, count=1_000_000)  # from now on every answer is 30 s late
        asked = len(late.received)
        wait_for(lambda: len(late.received) > asked, what="a call the late charger holds up")
        signalled = time.time()
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(10) == 0
        assert time.time() - signalled < 5.0
    finally:
        run.finish()
        for front in fronts.values():
            front.stop()
    assert good.state == EvseState.SLEEPING  # its shutdown state, while the other hung
    assert "charger late: no answer to the shutdown command" in run.log
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["saved_at"] >= signalled
    assert saved["chargers"]["good"]["controller"]["guard"]["on"] is False
    assert "Traceback" not in run.log


def test_two_sigterms_exit_0_with_the_state_saved(tmp_path: Path, mosquitto: Any,
                                                  notify: NotifyListener) -> None:
    cfg = tmp_path / "divert.toml"
    cfg.write_text(toml_text(config(tmp_path, mosquitto)))
    run = Run(cfg, notify)
    try:
        wait_for(lambda: "READY=1" in notify.fields(), 15, "READY=1")
        pid = run.proc.pid
        # Footprint: the simulator and numpy are not loaded (no OpenBLAS thread either) ...
        assert "numpy" not in Path(f"/proc/{pid}/maps").read_text()
        # ... and every thread blocks the stop signals, so none can die of one.
        masks = _sigmask(pid)
        assert len(masks) >= 2
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            assert all(mask >> (sig - 1) & 1 for mask in masks), (sig, masks)
        signalled = time.time()
        run.proc.send_signal(signal.SIGTERM)
        time.sleep(0.01)
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(10) == 0
    finally:
        run.finish()
    assert "divert stopped" in run.log
    assert json.loads((tmp_path / "state.json").read_text())["saved_at"] >= signalled
