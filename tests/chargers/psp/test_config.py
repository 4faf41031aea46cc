"""`type = "psp"` in `[[chargers]]`: validated on load, built by the registry."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from chargers.psp.config import PSPConfig
from chargers.psp.driver import PSPCharger
from chargers.registry import create
from divert.config import ConfigError, load, validate


@pytest.mark.parametrize(("url", "base"), [
    ("http://192.168.0.17", "http://192.168.0.17"),
    ("http://192.168.0.17/", "http://192.168.0.17"),
    (" http://evse.local:8080/ ", "http://evse.local:8080"),
    ("https://proxy.example/psp/", "https://proxy.example/psp"),
])
def test_url_is_a_base_url(url: str, base: str) -> None:
    assert PSPConfig(name="a", url=url).url == base


@pytest.mark.parametrize(("url", "reason"), [
    ("192.168.0.17", "like 'http://192.168.0.17'"),
    ("ftp://192.168.0.17", "like 'http://192.168.0.17'"),
    ("http://192.168.0.17/webapi/v1/", "without /webapi/v1"),
    ("http://192.168.0.17/?x=1", "without ?query"),
])
def test_bad_urls_say_what_is_expected(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        PSPConfig(name="a", url=url)


def _write(tmp_path: Path, charger: str) -> Path:
    path = tmp_path / "divert.toml"
    path.write_text(f"[[chargers]]\nname = 'garage'\ntype = 'psp'\n{charger}")
    return path


def test_a_psp_charger_loads_and_the_registry_builds_its_driver(tmp_path: Path) -> None:
    settings = load(_write(tmp_path, "url = 'http://192.168.0.17'\nphases = 3\n"
                                     "min_power_w = 4500\ntimeout_s = 2\n"))
    config = settings.chargers[0]
    assert isinstance(config, PSPConfig)
    assert (config.url, config.min_power_w, config.timeout_s) == ("http://192.168.0.17", 4500, 2)
    assert isinstance(create(config, settings.driver_env()), PSPCharger)  # no I/O until connect()


@pytest.mark.parametrize(("keys", "message"), [
    ("", "chargers[0].url: Field required"),
    ("url = 'http://x'\nmin_power_w = -5\n", "chargers[0].min_power_w: input should be greater"),
    ("url = 'http://x'\nstep_a = 1\n", "chargers[0].step_a: unknown key"),
    ("url = 'evse.local'\n", "chargers[0].url: expected the controller's address"),
])
def test_bad_psp_keys_name_the_key(tmp_path: Path, keys: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(_write(tmp_path, keys))
    assert message in str(err.value)


def test_check_config_accepts_the_readme_example(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme[readme.index("## PSP EVSE"):]
    example = section[section.index("```toml") + len("```toml"):]
    path = tmp_path / "divert.toml"
    path.write_text(example[:example.index("```")])
    proc = subprocess.run([sys.executable, "-m", "divert.cli", "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "garage (psp)" in proc.stdout


def test_the_commented_example_in_config_example_toml_is_valid() -> None:
    text = (Path(__file__).resolve().parents[3] / "config.example.toml").read_text()
    block = text[text.index("# [[chargers]]                # a PSP EVSE"):]
    lines = [line.removeprefix("# ") for line in block.splitlines()]
    lines = lines[:next((i for i, line in enumerate(lines[1:], 1)
                         if line.startswith("[")), len(lines))]
    settings = validate(tomllib.loads("\n".join(lines)), Path("config.example.toml"))
    assert isinstance(settings.chargers[0], PSPConfig)
