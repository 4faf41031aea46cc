"""What a policy sees and says, and how presets (`policies/*.toml`) become policies.

A policy decides only in `solar` and `min-solar` modes: whether it wants to charge and at
what current. The controller owns modes, capabilities and the relay guard around it.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from divert.capabilities import Capabilities
from divert.guard import RelayLimits
from divert.modes import Mode

if TYPE_CHECKING:
    from divert.config import RelayConfig


@dataclass(frozen=True)
class Observation:
    """One control step as a policy sees it. Powers in W, currents in A, times in s."""

    time_s: float
    dt_s: float  # since the previous step; 0 at the first
    surplus_w: float  # power the EV could take without import (its own draw added back)
    from_grid_meter: bool  # surplus came from a grid meter (True) or solar − load (False)
    voltage_v: float  # per phase
    phases: int  # phases in use
    charging: bool  # relay closed by us
    setpoint_a: float  # the current in force while charging
    since_change_s: float | None  # time since the last start or stop
    mode: Mode
    caps: Capabilities


@dataclass(frozen=True)
class Desire:
    """A policy's wish; the controller may hold it back (guard) or adapt it (capabilities)."""

    charge: bool
    current_a: float  # per phase; meaningful also when charge is False (used while holding)
    reason: str


class Policy(Protocol):
    def decide(self, obs: Observation) -> Desire: ...


@dataclass(frozen=True)
class Preset:
    """A parsed preset: which policy, its parameters and the relay limits it is tuned for."""

    name: str
    kind: str  # "surplus" (divert's own) or "openevse" (the firmware's algorithm)
    params: dict[str, Any]
    relay: RelayLimits

    def limits(self, overrides: RelayConfig | None = None) -> RelayLimits:
        """The preset's relay limits with the config's `[relay]` keys on top."""
        if overrides is None:
            return self.relay
        given = {k: v for k, v in overrides.model_dump().items() if v is not None}
        return replace(self.relay, **given)

    def make_policy(self) -> Policy:
        if self.kind == "openevse":
            from divert.openevse_policy import OpenEVSEParams, OpenEVSEPolicy

            return OpenEVSEPolicy(OpenEVSEParams(**self.params))
        from divert.surplus_policy import SurplusParams, SurplusPolicy

        return SurplusPolicy(SurplusParams(**self.params))


class PresetError(ValueError):
    """A preset that cannot be found or does not parse."""


def presets_dir() -> Path:
    """policies/ of a source checkout, else the copy a package install put in share/."""
    checkout = Path(__file__).resolve().parents[1] / "policies"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "divert" / "policies"


def preset_names() -> list[str]:
    """The presets shipped in policies/, by name."""
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_preset(name_or_path: str) -> Preset:
    """A shipped preset by name (`balanced`), or a TOML file by path."""
    is_path = name_or_path.endswith(".toml") or "/" in name_or_path
    path = Path(name_or_path) if is_path else presets_dir() / f"{name_or_path}.toml"
    if not is_path and not path.is_file():
        raise PresetError(f"no preset {name_or_path!r}; shipped: {', '.join(preset_names())}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PresetError(f"cannot read policy file {path}: {exc}") from None
    name = path.stem
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"policy {name}: invalid TOML: {exc}") from None
    return parse_preset(name, data)


def parse_preset(name: str, data: dict[str, Any]) -> Preset:
    unknown = set(data) - {"policy", "relay"}
    if unknown:
        raise PresetError(f"policy {name}: unknown table(s) {', '.join(sorted(unknown))}")
    params = dict(data.get("policy", {}))
    kind = str(params.pop("kind", "surplus"))
    if kind not in ("surplus", "openevse"):
        raise PresetError(f"policy {name}: policy.kind must be 'surplus' or 'openevse'")
    try:
        relay = RelayLimits(**data.get("relay", {}))
        preset = Preset(name, kind, params, relay)
        preset.make_policy()  # validates the parameters
    except (TypeError, ValueError) as exc:
        raise PresetError(f"policy {name}: {exc}") from None
    return preset
