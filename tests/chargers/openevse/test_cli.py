"""`divert rapi -c CONFIG [--charger NAME] '$GS'`: one command, its reply, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from divert.cli import main

from .conftest import Rig, RigFactory


def write_config(path: Path, *rigs: Rig, mqtt: dict[str, Any] | None = None) -> Path:
    """A config file; JSON scalars are valid TOML values."""
    lines = []
    if mqtt:
        lines += ["[mqtt]", *(f"{k} = {json.dumps(v)}" for k, v in mqtt.items())]
    for rig in rigs:
        lines.append("[[chargers]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in rig.config_entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def rapi(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["rapi", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_command_and_reply_over_each_transport(make_rig: RigFactory, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for transport in ("serial", "http", "mqtt"):
        rig = make_rig(transport)
        mqtt = {"host": rig.mqtt.host, "port": rig.mqtt.port} if transport == "mqtt" else None
        config = write_config(tmp_path / f"{transport}.toml", rig, mqtt=mqtt)
        assert rapi(capsys, "-c", str(config), "$GC^20") == (0, "$OK 6 32\n", "")
        assert rapi(capsys, "-c", str(config), "GS")[1] == "$OK 01 0 01 0000\n"
        code, out, _ = rapi(capsys, "-c", str(config), "$SC 99 V")
        assert (code, out) == (1, "$NK 16\n")  # refused, with the current it kept


def test_choosing_among_chargers(make_rig: RigFactory, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_rig("http"), make_rig("serial")
    config = write_config(tmp_path / "two.toml", a, b)
    code, _, err = rapi(capsys, "-c", str(config), "$GV")
    assert code == 1 and "2 OpenEVSE chargers" in err and "choose one with --charger" in err
    assert rapi(capsys, "-c", str(config), "--charger", b.config.name, "$GV")[1] == (
        "$OK 8.2.1 5.1.3\n")
    code, _, err = rapi(capsys, "-c", str(config), "--charger", "attic", "$GV")
    assert code == 1 and "no OpenEVSE charger named 'attic'" in err


@pytest.mark.parametrize(("command", "message"), [
    ("$SC 10 V^00", "not a RAPI command: bad checksum"),
    ("$OK", "is a reply or notification"),
    ("S", "not a RAPI command"),
])
def test_bad_command_text(make_rig: RigFactory, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str], command: str,
                          message: str) -> None:
    config = write_config(tmp_path / "c.toml", make_rig("http"))
    code, out, err = rapi(capsys, "-c", str(config), command)
    assert (code, out) == (1, "")
    assert err.startswith("divert rapi: ") and message in err


def test_silent_charger_and_bad_config_are_one_line_errors(
        make_rig: RigFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rig = make_rig("http", timeout_s=0.2, retries=0)
    rig.front.stop()
    config = write_config(tmp_path / "c.toml", rig)
    code, out, err = rapi(capsys, "-c", str(config), "$GS")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "ConnectError" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[[chargers]]\nname = "g"\ntype = "openevse"\ntransport = "serial"\n')
    code, _, err = rapi(capsys, "-c", str(bad), "$GS")
    assert code == 1 and err.strip() == f'{bad}: chargers[0]: transport = "serial" needs device'
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    code, _, err = rapi(capsys, "-c", str(empty), "$GS")
    assert code == 1 and "0 OpenEVSE chargers" in err


def test_the_installed_command(make_rig: RigFactory, tmp_path: Path) -> None:
    rig = make_rig("serial")
    config = write_config(tmp_path / "c.toml", rig)
    proc = subprocess.run([sys.executable, "-m", "divert.cli", "rapi", "-c", str(config),
                           "$GE"], capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "$OK 16 0001\n", "")
