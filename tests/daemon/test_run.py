"""`divert run` as systemd runs it: sd_notify, signals, reload, exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_support import Publisher, config, retained, toml_text, wait_for

from .procs import NotifyListener, Run


def test_notify_signals_and_reload(tmp_path: Path, mosquitto: Any,
                                   notify: NotifyListener) -> None:
    cfg = tmp_path / "divert.toml"
    data = config(tmp_path, mosquitto)
    cfg.write_text(toml_text(data))
    run = Run(cfg, notify)
    proc = run.proc
    publisher = Publisher(mosquitto)
    try:
        wait_for(lambda: "READY=1" in notify.fields(), what="READY=1")
        wait_for(lambda: "WATCHDOG=1" in notify.fields(), what="WATCHDOG=1")
        publisher.until("home/grid", "-3000", lambda: any(
            "garage: starting" in f for f in notify.fields()), what="a status with a reason")
        assert any(f.startswith("STATUS=mode solar; garage: ") for f in notify.fields())
        assert retained(mosquitto, "divert/status") == "online"

        # An invalid config on SIGHUP: logged, and the daemon runs on.
        cfg.write_text(toml_text(data).replace('mode = "solar"', 'mode = "turbo"'))
        ready = notify.fields().count("READY=1")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in run.log, what="the refusal")
        assert "policy.mode: Input should be" in run.log
        assert proc.poll() is None
        assert notify.fields().count("READY=1") == ready

        # A valid one is applied: mode off pauses the charger.
        data["policy"]["mode"] = "off"
        cfg.write_text(toml_text(data))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "RELOADING=1" in notify.fields(), what="RELOADING=1")
        wait_for(lambda: notify.fields().count("READY=1") == ready + 1, what="READY again")
        publisher.until("home/grid", "-3000", lambda: any(
            f.startswith("STATUS=mode off; garage: off") for f in notify.fields()),
            what="mode off")

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - started < 5
        assert "STOPPING=1" in notify.fields()
        assert retained(mosquitto, "divert/status") == "offline"
    finally:
        publisher.close()
        run.finish()
    assert "configuration reloaded" in run.log
    assert "Traceback" not in run.log


def test_killed_daemon_leaves_offline_via_last_will(tmp_path: Path, mosquitto: Any) -> None:
    cfg = tmp_path / "divert.toml"
    cfg.write_text(toml_text(config(tmp_path, mosquitto)))
    run = Run(cfg)
    try:
        wait_for(lambda: retained(mosquitto, "divert/status") == "online", 15)
    finally:
        run.finish()
    assert retained(mosquitto, "divert/status") == "offline"


@pytest.mark.parametrize(("text", "message"), [
    ("[mqtt]\nport = 0\n", "mqtt.port: input should be greater than or equal to 1"),
    ('[policy]\npreset = "nope"\n', "policy.preset: no preset 'nope'"),
    ('[mqtt]\nusername = "u"\npassword_file = "/nonexistent/pw"\n',
     "mqtt.password_file: cannot read"),
])
def test_unusable_config_is_one_line_and_exit_1(tmp_path: Path, text: str,
                                                message: str) -> None:
    cfg = tmp_path / "divert.toml"
    cfg.write_text(text + f'[state]\npath = "{tmp_path}/state.json"\n[metrics]\nlisten = ""\n')
    proc = subprocess.run([sys.executable, "-m", "divert.cli", "run", "-c", str(cfg)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert f"{cfg}: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sigint_stops_cleanly_too(tmp_path: Path, mosquitto: Any) -> None:
    cfg = tmp_path / "divert.toml"
    cfg.write_text(toml_text(config(tmp_path, mosquitto)))
    run = Run(cfg)
    try:
        wait_for(lambda: "divert running" in run.log, 15, "the start")
        run.proc.send_signal(signal.SIGINT)
        assert run.proc.wait(5) == 0
    finally:
        run.finish()
    assert "SIGINT: stopping" in run.log and "divert stopped" in run.log
    assert (tmp_path / "state.json").exists()
