"""Policy presets (`policies/*.toml`): reading them, and the policy each one makes.

Reading a preset is I/O, so it lives here and not in the core.
"""

from __future__ import annotations

import math
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
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
from divert.textfile import UnreadableFile, read_text


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


MAX_PRESET_BYTES = 64 * 1024  # the shipped ones are 2–3 KiB
_KINDS = {"surplus": SurplusParams, "openevse": OpenEVSEParams, "predictive": PredictiveParams}
# [relay] keys: (low, high, whole number). The same bounds as the config's [relay] table.
_RELAY_KEYS: dict[str, tuple[float, float, bool]] = {
    "min_on_s": (0, 86400, False), "min_off_s": (0, 86400, False),
    "max_starts_per_hour": (1, 60, True), "max_starts_per_day": (1, 1000, True),
    "min_phase_switch_s": (0, 86400, False), PHASE_TAU_KEY: (0, 86400, False),
}


def presets_dir() -> Path:
    """policies/ of a source checkout, else the copy a package install put in share/."""
    checkout = Path(__file__).resolve().parents[2] / "policies"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "divert" / "policies"


def preset_names() -> list[str]:
    """The presets shipped in policies/, by name."""
    return sorted(p.stem for p in presets_dir().glob("*.toml"))


def load_preset(name_or_path: str) -> Preset:
    """A shipped preset by name (`balanced`), or a TOML file by path: a regular file of at
    most MAX_PRESET_BYTES. Raises PresetError, nothing else."""
    is_path = name_or_path.endswith(".toml") or "/" in name_or_path
    if not is_path and name_or_path not in preset_names():
        raise PresetError(f"no preset {_preview(name_or_path)}; shipped: "
                          f"{', '.join(preset_names())}")
    path = Path(name_or_path) if is_path else presets_dir() / f"{name_or_path}.toml"
    try:
        text = read_text(path, MAX_PRESET_BYTES)
    except UnreadableFile as exc:
        raise PresetError(f"cannot read policy file {_preview(str(path), 200)}: {exc}") from None
    name = path.stem[:60]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"policy {name}: invalid TOML: {exc}") from None
    except ValueError:  # an integer of more digits than Python converts
        raise PresetError(f"policy {name}: invalid TOML: a number with too many digits") \
            from None
    except RecursionError:
        raise PresetError(f"policy {name}: invalid TOML: nested too deeply") from None
    return parse_preset(name, data)


def parse_preset(name: str, data: dict[str, Any]) -> Preset:
    """A preset from its parsed TOML: every value a finite number of the right kind."""
    unknown = set(data) - {"policy", "relay"}
    if unknown:
        raise PresetError(f"policy {name}: unknown table(s) "
                          f"{', '.join(sorted(unknown))[:60]}")
    params = _table(name, data, "policy")
    relay = _table(name, data, "relay")
    kind = params.pop("kind", "surplus")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise PresetError(f"policy {name}: policy.kind must be one of {', '.join(_KINDS)}")
    known = {f.name for f in fields(_KINDS[kind])}
    for key, value in params.items():
        if key not in known:
            raise PresetError(f"policy {name}: policy.{key[:60]}: unknown for kind {kind}")
        _number(name, key, value)
    for key, value in relay.items():
        if key not in _RELAY_KEYS:
            raise PresetError(f"policy {name}: relay.{key[:60]}: unknown key")
        low, high, whole = _RELAY_KEYS[key]
        _number(name, key, value)
        if not low <= value <= high or (whole and value != int(value)):
            raise PresetError(f"policy {name}: {key} must be a{' whole' if whole else ''} "
                              f"number from {low} to {high}, got {value}")
        if whole:
            relay[key] = int(value)
    try:
        phase = PhaseParams(relay.pop(PHASE_TAU_KEY)) if PHASE_TAU_KEY in relay else PhaseParams()
        preset = Preset(name, kind, params, RelayLimits(**relay), phase)
        preset.make_policy()  # validates the parameters
    except (TypeError, ValueError) as exc:
        raise PresetError(f"policy {name}: {exc}") from None
    return preset


def _table(name: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise PresetError(f"policy {name}: [{key}] must be a table, got {_preview(table)}")
    return dict(table)


def _number(name: str, key: str, value: Any) -> None:
    """A finite int or float (TOML's `true` is no number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PresetError(f"policy {name}: {key} must be a number, got {_preview(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise PresetError(f"policy {name}: {key} must be a finite number, got {value}")
    if not -1e15 <= value <= 1e15:  # compared, never float(): a huge int would overflow
        raise PresetError(f"policy {name}: {key} must be within ±1e15, got {_preview(value)}")


def _preview(value: Any, limit: int = 60) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge integer, a deeply nested array
        text = type(value).__name__
    return text if len(text) <= limit else text[:limit] + "…"
