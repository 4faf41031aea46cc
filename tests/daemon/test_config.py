"""Config loading and `divert check-config`: valid files pass, broken ones say file, key, why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from divert.config import ConfigError, load
from divert.core.modes import Mode
from divert.core.site import Sharing, SiteRules
from divert.core.surplus import BatteryMode, BatteryRule
from divert.netconf import FeedConfig

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


SITE_FEEDS = ("[feeds.grid]\ntopic='g'\n[feeds.grid_l1]\ntopic='l1'\n[feeds.grid_l2]\ntopic='l2'\n"
              "[feeds.grid_l3]\ntopic='l3'\n[feeds.battery]\ntopic='b'\nsoc_topic='soc'\n")
TWO = "[[chargers]]\nname='a'\ntype='simulated'\n[[chargers]]\nname='b'\ntype='simulated'\n"


@pytest.mark.parametrize(("text", "message"), [
    ("[site]\nmax_import_w=6000\n", "site.max_import_w needs [feeds.grid]"),
    ("[feeds.grid]\ntopic='g'\n[site]\nmax_phase_current_a=25\n",
     "site.max_phase_current_a needs [feeds.grid_l1], [feeds.grid_l2] and [feeds.grid_l3]"),
    ("[site]\nbattery='ev-first'\n", "site.battery = 'ev-first' needs [feeds.battery]"),
    ("[feeds.battery]\ntopic='b'\n[site]\nbattery='buffer'\nbuffer_soc_pct=40\n",
     "site.battery = 'buffer' needs site.buffer_soc_pct and feeds.battery.soc_topic"),
    ("[feeds.battery]\ntopic='b'\nfirst_below_soc_pct=50\n[site]\n"
     "battery_first_below_soc_pct=60\n", "not both"),
    ("[feeds.ev_power]\ntopic='m'\n[[chargers]]\nname='a'\ntype='simulated'\n"
     "[chargers.ev_power]\ntopic='n'\n", "charger a has two meters"),
    ("[site]\nsharing='round-robin'\n", "site.sharing: Input should be 'priority' or 'fair'"),
    (TWO.replace("name='b'", "name='b'\nline=4"), "chargers[1].line: Input should be 1, 2 or 3"),
])
def test_site_keys_need_their_feeds(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert message in str(exc.value)


def test_a_site_of_two_chargers_a_fuse_and_a_battery(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE_FEEDS + "[site]\nsharing='fair'\nmax_import_w=11000\n"
                    "max_phase_current_a=25\nbattery='buffer'\nbuffer_soc_pct=40\n"
                    + TWO.replace("name='b'", "name='b'\npriority=2\nline=3")
                    + "[chargers.ev_power]\ntopic='meter/b'\nscale=1000\n")
    s = load(path)
    assert [(m.name, m.priority, m.line) for m in s.members()] == [("a", 0, 1), ("b", 2, 3)]
    assert s.site_rules() == SiteRules(Sharing.FAIR, 11000, 25)
    assert s.battery_rule() == BatteryRule(BatteryMode.BUFFER, 100, 40)
    assert s.ev_meters() == {"b": FeedConfig(topic="meter/b", scale=1000)}
    assert s.warnings() == []


def test_the_old_keys_keep_working(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text("[feeds.battery]\ntopic='b'\nfirst_below_soc_pct=50\n"
                    "[feeds.ev_power]\ntopic='m'\n" + TWO)
    s = load(path)
    assert s.battery_rule() == BatteryRule(BatteryMode.BATTERY_FIRST, 50)
    assert s.ev_meters() == {"a": FeedConfig(topic="m")}
    proc = _check(path)  # valid, with a word on the meter that measures one of two chargers
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (f"{path}: warning: feeds.ev_power is deprecated with several "
                           "chargers: it measures the first one (a) only; give each charger "
                           "its own [chargers.ev_power]\n")
    path.write_text("[feeds.ev_power]\ntopic='m'\n" + TWO.split("[[chargers]]\nname='b'")[0])
    assert _check(path).stderr == ""  # one charger: its meter, no warning
    assert load(path).battery_rule() == BatteryRule()


def test_the_readmes_worked_example_is_valid(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("A worked example:", 1)[1].split("```toml\n", 1)[1].split("```")[0]
    path = tmp_path / "example.toml"
    path.write_text(block)
    s = load(path)
    assert [(m.name, m.priority, m.line) for m in s.members()] == [("garage", 1, 1),
                                                                   ("carport", 0, 2)]
    assert s.site_rules() == SiteRules(Sharing.PRIORITY, 11000, 25)
    assert s.battery_rule() == BatteryRule(BatteryMode.BUFFER, 100, 40)
    assert list(s.ev_meters()) == ["carport"]


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
