"""Config `type` → config model and driver. Driver modules are imported only when used.

pydantic picks a `[[chargers]]` entry's model by its `type`; `create` looks the model's
class up in one table of factories, each importing its driver on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from chargers.config import ChargerConfig
from chargers.evsemaster.config import EVSEMasterConfig
from chargers.goe_ocpp.config import GoEOcppConfig, OcppConfig
from chargers.openevse.config import OpenEVSEConfig
from chargers.psp.config import PSPConfig
from chargers.simulated import SimulatedCharger, SimulatedConfig
from divert.netconf import MqttConfig

if TYPE_CHECKING:
    from chargers.base import Charger

# Every driver's config model: pydantic picks the member by `type`.
AnyChargerConfig = Annotated[SimulatedConfig | GoEOcppConfig | OpenEVSEConfig | PSPConfig
                             | EVSEMasterConfig,
                             Field(discriminator="type")]


@dataclass(frozen=True)
class DriverEnv:
    """What drivers share beyond their own entry: the broker, the OCPP server, the loop
    period in s."""

    mqtt: MqttConfig
    ocpp: OcppConfig
    interval_s: float


def _goe(config: GoEOcppConfig, env: DriverEnv) -> Charger:
    from chargers.goe_ocpp.driver import GoEOcppCharger

    return GoEOcppCharger(config, env.ocpp, env.interval_s)


def _openevse(config: OpenEVSEConfig, env: DriverEnv) -> Charger:
    from chargers.openevse.driver import OpenEVSECharger
    from chargers.openevse.transports import make_transport

    return OpenEVSECharger(config, make_transport(config, env.mqtt))


def _psp(config: PSPConfig, _env: DriverEnv) -> Charger:
    from chargers.psp.driver import PSPCharger

    return PSPCharger(config)


def _evsemaster(config: EVSEMasterConfig, _env: DriverEnv) -> Charger:
    from chargers.evsemaster.driver import EVSEMasterCharger

    return EVSEMasterCharger(config)


def _simulated(config: SimulatedConfig, _env: DriverEnv) -> Charger:
    return SimulatedCharger(config)


_FACTORIES: dict[type[ChargerConfig], Callable[[Any, DriverEnv], Charger]] = {
    SimulatedConfig: _simulated, GoEOcppConfig: _goe, OpenEVSEConfig: _openevse,
    PSPConfig: _psp, EVSEMasterConfig: _evsemaster}


def create(config: ChargerConfig, env: DriverEnv) -> Charger:
    """A driver for one `[[chargers]]` entry (not yet connected)."""
    return _FACTORIES[type(config)](config, env)
