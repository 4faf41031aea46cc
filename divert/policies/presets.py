"""Policy presets (`policies/*.toml`): reading them, and the policy each one makes.

Reading a preset is I/O, so it lives here and not in the core.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from divert.core.capabilities import Capabilities
from divert.core.controller import Controller, SiteParams
from divert.core.guard import RelayLimits
from divert.core.modes import Mode
from divert.core.phases import PhaseParams
from divert.core.policy import Policy
from divert.core.site import Member, Site, SiteRules
from divert.policies.openevse import OpenEVSEParams, OpenEVSEPolicy
from divert.policies.predictive import PredictiveParams, PredictivePolicy
from divert.policies.surplus import SurplusParams, SurplusPolicy

KINDS = ("surplus", "openevse", "predictive")


@dataclass(frozen=True)
class Preset:
    """A parsed preset: which policy, its parameters and the relay limits it is tuned for."""

    name: str
    kind: str  # "surplus", "predictive" (divert's own) or "openevse" (the firmware's)
    params: dict[str, Any]
    relay: RelayLimits
    phase: PhaseParams

    def limits(self, overrides: Mapping[str, Any] | None = None) -> RelayLimits:
        """The preset's relay limits with the config's `[relay]` keys (None: not set) on top."""
        given = {k: v for k, v in (overrides or {}).items()
                 if v is not None and k != PHASE_TAU_KEY}
        return replace(self.relay, **given)

    def phase_params(self, overrides: Mapping[str, Any] | None = None) -> PhaseParams:
        """Phase switching's parameters, with the config's `[relay] phase_tau_s` on top."""
        tau_s = (overrides or {}).get(PHASE_TAU_KEY)
        return self.phase if tau_s is None else PhaseParams(tau_s=tau_s)

    def controller(self, caps: Capabilities, mode: Mode = Mode.SOLAR,
                   relay: Mapping[str, Any] | None = None,
                   site: SiteParams | None = None,
                   location: tuple[float, float] | None = None) -> Controller:
        """A controller running this preset for `caps`, with the config's `[relay]` keys on
        top of the preset's; `location` (latitude, longitude) for the predictive policy."""
        return Controller(caps, self.make_policy(location), self.limits(relay), mode, site,
                          phase=self.phase_params(relay))

    def site(self, members: Sequence[Member], caps: Mapping[str, Capabilities],
             mode: Mode = Mode.SOLAR, relay: Mapping[str, Any] | None = None,
             rules: SiteRules | None = None, params: SiteParams | None = None,
             location: tuple[float, float] | None = None) -> Site:
        """A site whose chargers (`caps` by name) all run this preset."""
        return Site(members, {m.name: self.controller(caps[m.name], mode, relay, params,
                                                      location)
                              for m in members}, rules, params)

    def make_policy(self, location: tuple[float, float] | None = None) -> Policy:
        if self.kind == "openevse":
            return OpenEVSEPolicy(OpenEVSEParams(**self.params))
        if self.kind == "predictive":
            return PredictivePolicy(PredictiveParams(**self.params), location)
        return SurplusPolicy(SurplusParams(**self.params))


# Averaging time of phase switching: a controller parameter, written in `[relay]` beside
# `min_phase_switch_s` (presets and configs keep the key where users have it).
PHASE_TAU_KEY = "phase_tau_s"


class PresetError(ValueError):
    """A preset that cannot be found or does not parse."""


def presets_dir() -> Path:
    """policies/ of a source checkout, else the copy a package install put in share/."""
    checkout = Path(__file__).resolve().parents[2] / "policies"
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
    if kind not in KINDS:
        raise PresetError(f"policy {name}: policy.kind must be one of {', '.join(KINDS)}")
    try:
        relay = dict(data.get("relay", {}))
        phase = PhaseParams(relay.pop(PHASE_TAU_KEY)) if PHASE_TAU_KEY in relay else PhaseParams()
        preset = Preset(name, kind, params, RelayLimits(**relay), phase)
        preset.make_policy()  # validates the parameters
    except (TypeError, ValueError) as exc:
        raise PresetError(f"policy {name}: {exc}") from None
    return preset
