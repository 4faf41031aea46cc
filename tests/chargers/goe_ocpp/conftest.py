"""The go-e rig: divert's OCPP server with drivers, and emulated go-es connected to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import free_port
from daemon_support import wait_for

from chargers.goe_ocpp.config import GoEOcppConfig, OcppConfig
from chargers.goe_ocpp.driver import GoEOcppCharger
from goe_ocpp.chargepoint import PASSWORD, FakeGoE


class Clock:
    """A monotonic clock the test moves (for the driver's repeat window and follow check)."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def goe_config(box_id: str = "goe-1", **keys: Any) -> GoEOcppConfig:
    return GoEOcppConfig(name=box_id, charge_box_id=box_id, password=PASSWORD, phases=3,
                         **keys)


class Rig:
    """divert's OCPP server with one or more drivers, and the emulated go-es connected to it."""

    def __init__(self, ocpp: OcppConfig, scheme: str = "ws") -> None:
        self.ocpp = ocpp
        self.base = f"{scheme}://127.0.0.1:{ocpp.listen.rpartition(':')[2]}"
        self.clock = Clock()
        self.drivers: dict[str, GoEOcppCharger] = {}
        self.fakes: list[FakeGoE] = []

    def driver(self, config: GoEOcppConfig) -> GoEOcppCharger:
        d = GoEOcppCharger(config, self.ocpp, interval_s=2.0, clock=self.clock)
        d.connect()
        self.drivers[config.charge_box_id] = d
        return d

    def goe(self, box_id: str = "goe-1", path: str | None = None, **kw: Any) -> FakeGoE:
        fake = FakeGoE(f"{self.base}/{path or box_id}", box_id, **kw)
        self.fakes.append(fake)
        return fake

    def close(self) -> None:
        for fake in self.fakes:
            fake.close()
        for d in self.drivers.values():
            d.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(OcppConfig(listen=f"127.0.0.1:{free_port()}"))
    yield r
    r.close()


def booted(rig: Rig, config: GoEOcppConfig | None = None) -> tuple[GoEOcppCharger, FakeGoE]:
    """A driver and its go-e, connected and through the boot sequence."""
    config = config or goe_config()
    driver = rig.driver(config)
    fake = rig.goe(config.charge_box_id)
    fake.connect()
    fake.boot()
    wait_for(lambda: fake.limit() is not None, what="the boot profile")
    fake.status("Available")
    return driver, fake
