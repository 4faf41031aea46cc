"""The actuator: commands only on change, setpoint before enable, re-assert, errors retried."""

from __future__ import annotations

import pytest

from chargers.base import ChargerError
from chargers.simulated import SimulatedCharger, SimulatedConfig
from divert.core.capabilities import Capabilities, ControlKind
from divert.core.controller import Decision
from divert.core.reasons import Reason
from divert.daemon.actuator import Actuator


def _charger(**kw: object) -> SimulatedCharger:
    return SimulatedCharger(SimulatedConfig.model_validate({"name": "c", **kw}))


def _on(current_a: float, phases: int = 1) -> Decision:
    return Decision(True, current_a, current_a * 230 * phases, phases, "test", Reason.CHARGING)


OFF = Decision(False, 0.0, 0.0, 1, "test", Reason.WAITING)


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def _sent(charger: SimulatedCharger, since: int = 0) -> list[tuple[str, float]]:
    return [(c.kind, c.value) for c in charger.commands[since:]]


def test_only_changes_are_sent_and_reassert_sends_all() -> None:
    charger, clock = _charger(), Clock()
    act = Actuator(charger, charger.connect(), reassert_s=60.0, clock=clock)
    assert act.apply(OFF).ok
    assert _sent(charger) == [("enable", 0.0)]  # the first decision: a known state
    assert act.apply(OFF).ok
    assert _sent(charger, 1) == []
    act.apply(_on(10))
    assert _sent(charger, 1) == [("current", 10.0), ("enable", 1.0)]  # setpoint first
    act.apply(_on(10))
    act.apply(_on(12))
    assert _sent(charger, 3) == [("current", 12.0)]
    clock.now_s = 59.0
    act.apply(_on(12))
    assert _sent(charger, 4) == []
    clock.now_s = 60.0  # a rebooted charger gets everything back
    act.apply(_on(12))
    assert _sent(charger, 4) == [("current", 12.0), ("enable", 1.0)]
    act.apply(OFF)
    assert _sent(charger, 6) == [("enable", 0.0)]


def test_power_chargers_get_watts_and_phases_follow() -> None:
    charger = _charger(control="power", phases=3, phase_switching=True)
    act = Actuator(charger, charger.connect(), reassert_s=60.0, clock=Clock())
    act.apply(_on(6, phases=3))
    assert _sent(charger) == [("phases", 3.0), ("power", 6 * 230 * 3.0), ("enable", 1.0)]
    act.apply(_on(8, phases=1))
    assert _sent(charger, 3) == [("phases", 1.0), ("power", 8 * 230.0)]


class Flaky(SimulatedCharger):
    """The simulated charger, refusing commands while `down`."""

    down = False

    def set_current(self, current_a: float) -> None:
        if self.down:
            raise ChargerError("no answer")
        super().set_current(current_a)


def test_a_failed_command_is_counted_and_everything_resent() -> None:
    charger = Flaky(SimulatedConfig(name="c"))
    errors: list[str] = []
    act = Actuator(charger, charger.connect(), reassert_s=60.0, on_error=errors.append,
                   clock=Clock())
    act.apply(_on(10))
    charger.down = True
    assert not act.apply(_on(11)).ok
    assert errors == ["setpoint"]
    charger.down = False
    n = len(charger.commands)
    assert act.apply(_on(11)).ok
    assert _sent(charger, n) == [("current", 11.0), ("enable", 1.0)]


def test_shutdown_states() -> None:
    charger = _charger()
    act = Actuator(charger, charger.connect(), reassert_s=60.0, clock=Clock())
    act.apply(_on(14))
    assert not act.shutdown("leave") and charger.enabled and charger.current_a == 14
    assert not act.shutdown("minimum") and charger.enabled and charger.current_a == 6
    assert act.shutdown("pause") and not charger.enabled


def test_a_driver_that_cannot_do_what_it_declares_is_refused() -> None:
    class NoPower:
        name = "bad"

    caps = Capabilities(ControlKind.POWER)
    with pytest.raises(TypeError, match="declares power control but has no set_power"):
        Actuator(NoPower(), caps, 60.0)  # type: ignore[arg-type]
