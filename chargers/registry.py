"""Config `type` → config model and driver. Driver modules are imported only when used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from chargers.evsemaster.config import EVSEMasterConfig
from chargers.goe_ocpp.config import GoEOcppConfig
from chargers.openevse.config import OpenEVSEConfig
from chargers.psp.config import PSPConfig
from chargers.simulated import SimulatedConfig

if TYPE_CHECKING:
    from chargers.base import Charger
    from divert.config import Settings

# Every driver's config model: pydantic picks the member by `type`.
AnyChargerConfig = Annotated[SimulatedConfig | GoEOcppConfig | OpenEVSEConfig | PSPConfig
                             | EVSEMasterConfig,
                             Field(discriminator="type")]


def create(config: AnyChargerConfig, settings: Settings) -> Charger:
    """A driver for one `[[chargers]]` entry (not yet connected)."""
    if isinstance(config, SimulatedConfig):
        from chargers.simulated import SimulatedCharger

        return SimulatedCharger(config)
    if isinstance(config, GoEOcppConfig):
        from chargers.goe_ocpp.driver import GoEOcppCharger

        return GoEOcppCharger(config, settings.ocpp, settings.interval_s)
    if isinstance(config, OpenEVSEConfig):
        from chargers.openevse.driver import OpenEVSECharger
        from chargers.openevse.transports import make_transport

        return OpenEVSECharger(config, make_transport(config, settings.mqtt))
    if isinstance(config, PSPConfig):
        from chargers.psp.driver import PSPCharger

        return PSPCharger(config)
    if isinstance(config, EVSEMasterConfig):
        from chargers.evsemaster.driver import EVSEMasterCharger

        return EVSEMasterCharger(config)
    raise ValueError(f"no driver for charger type {config.type!r}")
