"""A go-eCharger as divert's OCPP server sees it: the `ocpp` package's v16 ChargePoint on its
own thread and event loop, talking over a real websocket.

It validates every request against the OCPP 1.6 schemas (the `ocpp` package does), answers as
the go-e does, keeps the profiles it is given, and its "car" draws what the active profile
allows: the TxProfile of the running transaction, else the TxDefaultProfile.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect

T = TypeVar("T")
PASSWORD = "correct-horse-battery"  # 21 characters: a valid OCPP Basic-auth password


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Received:
    """What divert sent, oldest first (payloads as the `ocpp` package passes them)."""

    profiles: list[dict[str, Any]] = field(default_factory=list)
    config: list[tuple[str, str]] = field(default_factory=list)
    clears: int = 0
    triggers: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)  # every frame as it arrived
    refused: list[str] = field(default_factory=list)  # the CALLERRORs it answered


class _GoE(ChargePoint):
    def __init__(self, box_id: str, connection: ClientConnection, fake: FakeGoE) -> None:
        super().__init__(box_id, connection)
        self.fake = fake

    async def route_message(self, raw_msg: str) -> None:
        with self.fake.lock:
            self.fake.received.frames.append(raw_msg)
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        if message.startswith("[4,"):  # a CALLERROR: a request it refused, e.g. invalid
            with self.fake.lock:
                self.fake.received.refused.append(message)
        await super()._send(message)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int,
                                cs_charging_profiles: dict[str, Any]) -> Any:
        with self.fake.lock:
            if self.fake.profile_error is not None:
                raise self.fake.profile_error
            self.fake.received.profiles.append(cs_charging_profiles)
        return call_result.SetChargingProfile(status=self.fake.profile_answer)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> Any:
        with self.fake.lock:
            self.fake.received.config.append((key, value))
        if self.fake.config_error is not None:
            raise self.fake.config_error  # the `ocpp` package answers it with a CALLERROR
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **_: Any) -> Any:
        with self.fake.lock:
            self.fake.received.clears += 1
            if self.fake.clear_error is not None:
                raise self.fake.clear_error
            self.fake.received.profiles.clear()
        return call_result.ClearChargingProfile(status="Accepted")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        with self.fake.lock:
            self.fake.received.triggers.append(requested_message)
        return call_result.TriggerMessage(status="Accepted")


class FakeGoE:
    """Sync control of one emulated go-e. `connect()` raises what websockets raises when
    the server refuses (e.g. InvalidStatus with the HTTP status)."""

    def __init__(self, url: str, box_id: str, password: str | None = PASSWORD,
                 ssl_context: ssl.SSLContext | None = None,
                 subprotocols: list[str] | None = None) -> None:
        self.url, self.box_id = url, box_id
        self.password = password
        self.ssl_context = ssl_context
        self.subprotocols = ["ocpp1.6"] if subprotocols is None else subprotocols
        self.lock = threading.Lock()
        self.received = Received()
        self.profile_answer = "Accepted"
        self.config_error: OCPPError | None = None  # answer ChangeConfiguration with this
        self.clear_error: OCPPError | None = None  # … and ClearChargingProfile
        self.profile_error: OCPPError | None = None  # … and SetChargingProfile
        self.transaction_id: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._cp: _GoE | None = None
        self._serving: asyncio.Future[Any] | None = None

    def _run(self, job: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(job, self._loop).result(timeout_s)

    def connect(self) -> None:
        self._run(self._connect())

    async def _connect(self) -> None:
        headers = basic(self.box_id, self.password) if self.password is not None else {}
        ws = await connect(self.url, subprotocols=self.subprotocols, additional_headers=headers,
                           ssl=self.ssl_context, open_timeout=5)
        self._cp = _GoE(self.box_id, ws, self)
        self._serving = asyncio.ensure_future(self._cp.start())
        # start() ends with ConnectionClosed when either side closes: expected, not an error.
        self._serving.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _call(self, payload: Any) -> Any:
        assert self._cp is not None, "not connected"
        return self._run(self._cp.call(payload, suppress=False))

    def receive(self, frame: str) -> None:
        """Handle `frame` as if it had come over the websocket (answers go to divert)."""
        assert self._cp is not None, "not connected"
        self._run(self._cp.route_message(frame))

    def boot(self) -> Any:
        return self._call(call.BootNotification(charge_point_model="Gemini flex",
                                                charge_point_vendor="go-e",
                                                firmware_version="56.8"))

    def heartbeat(self) -> Any:
        return self._call(call.Heartbeat())

    def status(self, status: str, error_code: str = "NoError", info: str | None = None) -> None:
        self._call(call.StatusNotification(connector_id=1, error_code=error_code,
                                           status=status, info=info, timestamp=_now()))

    def start_transaction(self, meter_start_wh: int = 0) -> int:
        result = self._call(call.StartTransaction(connector_id=1, id_tag="go-e",
                                                  meter_start=meter_start_wh, timestamp=_now()))
        self.transaction_id = int(result.transaction_id)
        return self.transaction_id

    def stop_transaction(self, meter_stop_wh: int) -> None:
        assert self.transaction_id is not None
        self._call(call.StopTransaction(meter_stop=meter_stop_wh, timestamp=_now(),
                                        transaction_id=self.transaction_id,
                                        reason="EVDisconnected"))
        self.transaction_id = None

    def meter(self, currents_a: tuple[float, float, float], voltage_v: float = 230.0,
              energy_wh: float = 0.0, offered_a: float | None = None) -> None:
        """One MeterValues sample as the go-e sends it (power = Σ V·I)."""
        values: list[dict[str, Any]] = [
            {"value": f"{energy_wh:.0f}", "measurand": "Energy.Active.Import.Register",
             "unit": "Wh", "context": "Sample.Periodic"},
            {"value": f"{sum(currents_a) * voltage_v:.0f}", "measurand": "Power.Active.Import",
             "unit": "W"},
            {"value": "50.0", "measurand": "Frequency"},
        ]
        for i, current in enumerate(currents_a, start=1):
            values.append({"value": f"{current:.2f}", "measurand": "Current.Import",
                           "phase": f"L{i}", "unit": "A"})
            values.append({"value": f"{voltage_v:.1f}", "measurand": "Voltage",
                           "phase": f"L{i}-N", "unit": "V"})
        if offered_a is not None:
            values.append({"value": f"{offered_a:.1f}", "measurand": "Current.Offered",
                           "unit": "A"})
        self._call(call.MeterValues(connector_id=1, transaction_id=self.transaction_id,
                                    meter_value=[{"timestamp": _now(),
                                                  "sampledValue": values}]))

    def active_profile(self) -> dict[str, Any] | None:
        """The profile in force: the running transaction's TxProfile, else the default."""
        with self.lock:
            profiles = list(self.received.profiles)
        for purpose in ("TxProfile", "TxDefaultProfile"):
            for p in reversed(profiles):
                if p["charging_profile_purpose"] == purpose and (
                        purpose == "TxDefaultProfile"
                        or p.get("transaction_id") == self.transaction_id):
                    return p
        return None

    def limit(self) -> tuple[float, int] | None:
        """(limit in A, phases) of the profile in force."""
        p = self.active_profile()
        if p is None:
            return None
        period = p["charging_schedule"]["charging_schedule_period"][0]
        return float(period["limit"]), int(period.get("number_phases", 3))

    def draw(self, car_max_a: float = 16.0, energy_wh: float = 0.0) -> tuple[float, int]:
        """Report what a car drawing as much as the profile allows draws; returns it."""
        limit = self.limit()
        assert limit is not None, "no profile"
        current_a, phases = min(limit[0], car_max_a), limit[1]
        currents = tuple(current_a if i < phases else 0.0 for i in range(3))
        self.meter((currents[0], currents[1], currents[2]), energy_wh=energy_wh,
                   offered_a=limit[0])
        return current_a, phases

    def disconnect(self) -> None:
        if self._cp is not None:
            self._run(self._cp._connection.close())
            self._cp = None

    def close(self) -> None:
        try:
            self.disconnect()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
