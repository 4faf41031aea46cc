"""Config loading and `divert check-config`: valid files pass, broken ones say file, key, why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from divert.config import ConfigError, load
from divert.core.modes import Mode

REPO = Path(__file__).resolve().parents[2]


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "divert.cli", "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_example_config_is_valid() -> None:
    proc = _check(REPO / "config.example.toml")
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


@pytest.mark.parametrize(("text", "message"), [
    ("[[chargers]]\nname='a'\ntype='simulated'\nmax_current_a=120\n",
     "chargers[0].max_current_a: input should be less than or equal to 80, got 120"),
    ("[mqtt]\nhost='x'\nbogus=1\n", "mqtt.bogus: unknown key"),
    ("[mqtt\nhost='x'\n", "invalid TOML: "),
    ("[policy]\nmode='turbo'\n", "policy.mode: Input should be 'off', 'fast', 'solar' or "
                                 "'min-solar'"),
    ("[[chargers]]\nname='a'\ntype='nope'\n", "chargers[0].type: "),
    ("[[chargers]]\nname='a'\ntype='simulated'\nmin_current_a=10\nmax_current_a=8\n",
     "chargers[0]: min_current_a (10.0) must be <= max_current_a (8.0)"),
    ("[policy]\npreset='no-such-preset'\n", "policy.preset: no preset 'no-such-preset'"),
    ("\xff", "cannot read"),
])
def test_broken_config_names_file_key_and_reason(tmp_path: Path, text: str,
                                                   message: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(text.encode("latin-1"))
    proc = _check(path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{path}: ")
    assert message in proc.stderr, proc.stderr


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[mqtt]\nhost='from-file'\nport=1884\n[policy]\nmode='solar'\n")
    monkeypatch.setenv("DIVERT_MQTT__HOST", "from-env")
    monkeypatch.setenv("DIVERT_POLICY__MODE", "fast")
    s = load(path)
    assert (s.mqtt.host, s.mqtt.port, s.policy.mode) == ("from-env", 1884, Mode.FAST)


def test_bad_environment_value_is_a_config_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("")
    monkeypatch.setenv("DIVERT_MQTT__PORT", "99999")
    with pytest.raises(ConfigError, match=r"mqtt.port: "):
        load(path)


@pytest.mark.parametrize(("text", "message"), [
    ("[[chargers]]\nname='garage/left'\ntype='simulated'\n",
     "(top level): charger name 'garage/left': use letters, digits, _ and - (not site, status)"),
    ("[[chargers]]\nname='site'\ntype='simulated'\n", "charger name 'site'"),
    ("[mqtt]\nbase_topic='home/#'\n", "mqtt.base_topic: a topic prefix without wildcards"),
    ("[mqtt]\ndiscovery_prefix='ha/'\n", "mqtt.discovery_prefix: a topic prefix without"),
])
def test_names_that_cannot_be_mqtt_topics_are_refused(tmp_path: Path, text: str,
                                                      message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load(path)
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)
