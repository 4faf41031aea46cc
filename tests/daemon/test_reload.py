"""Reload: a removed charger gets its shutdown state and keeps its relay history for 24 h;
counters carry over. Emulated OpenEVSEs over HTTP, real mosquitto, a hand-moved clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon_support import Publisher, toml_text

from chargers.openevse.rapi import EvseState
from divert.daemon.reload import reload
from divert.daemon.sdnotify import Notifier
from divert.daemon.service import Daemon

from .harness import Rig, controls, rig

RELAY = {"min_on_s": 300, "min_off_s": 300, "max_starts_per_hour": 2, "max_starts_per_day": 6}


def _reload(r: Rig, *names: str) -> Daemon:
    """Rewrite the config with only `names` as chargers and reload it."""
    assert r.daemon is not None
    path = r.tmp_path / "divert.toml"
    r.data["chargers"] = [r.entry(n) for n in names]
    path.write_text(toml_text(r.data))
    r.daemon = reload(r.daemon, path, Notifier(), loop=False)
    return r.daemon


def _saved(r: Rig) -> dict[str, Any]:
    return dict(json.loads((r.tmp_path / "state.json").read_text())["chargers"])


def _starts_total(daemon: Daemon, name: str) -> float | None:
    return daemon.metrics.registry.get_sample_value("divert_charger_relay_starts_total",
                                                    {"charger": name})


def test_a_removed_charger_is_paused_and_its_history_kept(tmp_path: Path, mosquitto: Any,
                                                          publisher: Publisher) -> None:
    with rig(tmp_path, mosquitto, publisher, "a", "b", relay=RELAY) as r:
        daemon = r.start()
        a, b = r.evses["a"], r.evses["b"]
        r.grid(-12000)  # enough for both: a takes its 32 A, b the rest
        r.tick()
        assert a.state == b.state == EvseState.CHARGING
        assert _starts_total(daemon, "a") == _starts_total(daemon, "b") == 1
        sent_to_a = len(controls(a))

        daemon = _reload(r, "a")
        # b leaves divert's control paused (shutdown "pause"), a is left as it was.
        assert b.state == EvseState.SLEEPING and controls(b)[-1] == "FS"
        assert a.state == EvseState.CHARGING and len(controls(a)) == sent_to_a
        assert _starts_total(daemon, "a") == 1  # the counter carries over
        r.grid(-12000)
        r.tick(60)
        assert "b" in _saved(r) and "retired_at" in _saved(r)["b"]

        # b comes back within 24 h: its start and its pause are still there.
        daemon = _reload(r, "a", "b")
        assert _starts_total(daemon, "b") == 1
        r.grid(-12000)
        r.tick()
        assert daemon.last_decisions["b"].reason == "blocked: minimum off-time, 4 min left"
        assert r.until(lambda: b.state == EvseState.CHARGING, 10) <= 240
        assert daemon.controllers["b"].guard.starts_within(r.clock.control_s(), 3600) == 2

        # Removed again, it is forgotten 24 h later.
        daemon = _reload(r, "a")
        r.clock.advance(86400)
        daemon.save()
        assert "b" in _saved(r)
        r.clock.advance(1)
        daemon.save()
        assert set(_saved(r)) == {"a"}
