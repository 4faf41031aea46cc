"""The central system's side of one go-e: its OCPP 1.6 handlers and what it has told us.

`Station` is one configured charger: identity, password, the state its messages report and
the setpoint divert wants. Its state is written by the server's event-loop thread and read by
the daemon's control thread, always under one lock. `CentralChargePoint` is one websocket
session with it (the `ocpp` package's ChargePoint, strict about malformed frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from ocpp.exceptions import (
    FormationViolationError,
    OCPPError,
    ProtocolError,
    UnknownCallErrorCodeError,
)
from ocpp.routing import after as _after
from ocpp.routing import on as _on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    ChargingProfileStatus,
    ConfigurationStatus,
    DataTransferStatus,
    MessageTrigger,
    RegistrationStatus,
)
from websockets.exceptions import ConnectionClosed

from chargers.base import ChargerError
from chargers.goe_ocpp import meter
from chargers.goe_ocpp.profiles import CONNECTOR_ID, FollowCheck, Setpoint, set_profile

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 5.0  # the go-e is on the LAN: an answer takes well under a second
FIRST_CALL_WAIT_S = 10.0  # on a new connection, wait this long for the charger to speak
_LIVE = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})
# OCPP-J 1.6 spells two error codes differently from the `ocpp` package (2.0.1 names).
_V16_ERROR_CODES = {"FormatViolation": "FormationViolation",
                    "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}

_F = TypeVar("_F", bound=Callable[..., Any])


def on(action: Action) -> Callable[[_F], _F]:
    """`ocpp.routing.on`, typed."""
    return cast(Callable[[_F], _F], _on(action))


def after(action: Action) -> Callable[[_F], _F]:
    """`ocpp.routing.after`, typed."""
    return cast(Callable[[_F], _F], _after(action))


def utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _WireLog(logging.LoggerAdapter[logging.Logger]):
    """The `ocpp` package logs every frame at INFO and every refused frame with a traceback;
    divert logs frames at DEBUG and keeps tracebacks for its own bugs."""

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        if isinstance(sys.exc_info()[1], OCPPError):
            self.debug(msg, *args, **kwargs)  # answered with a CALLERROR and logged by us
        else:
            self.error(msg, *args, exc_info=exc_info, **kwargs)


_wire_log = _WireLog(logging.getLogger(f"{__name__}.wire"))


@dataclass(frozen=True)
class Snapshot:
    """What the charger has reported, as of now. Ages in s."""

    connected: bool
    since_s: float | None  # when it connected (or last disconnected), on the station clock
    status: str | None  # connector status (StatusNotification), e.g. "Charging"
    error_code: str | None
    info: str | None
    transaction_id: int | None
    meter: meter.MeterSample | None
    meter_age_s: float | None
    problem: str | None  # why it is taken to ignore that profile

    @property
    def vehicle_connected(self) -> bool | None:
        return None if self.status is None else self.status in _LIVE


class Station:
    """One configured go-e. Methods marked "loop" run on the server's event loop."""

    def __init__(self, charge_box_id: str, password: str, default: Setpoint,
                 meter_sample_s: int, heartbeat_s: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.charge_box_id = charge_box_id
        self.password = password
        self.default = default  # the conservative profile set at every boot
        self.meter_sample_s = meter_sample_s
        self.heartbeat_s = heartbeat_s
        self._clock = clock
        self._follow = FollowCheck()
        self._lock = threading.Lock()
        self._session: CentralChargePoint | None = None
        self._since_s: float | None = None
        self._status: dict[int, tuple[str, str, str | None]] = {}
        self._transaction_id: int | None = None
        self._meter: meter.MeterSample | None = None
        self._meter_s = 0.0
        self._desired: Setpoint | None = None
        # Transaction ids: unique across restarts of divert without keeping state on disk.
        self._next_tx = itertools.count(int(time.time()) & 0x7FFFFFFF)
        self._profile_lock: asyncio.Lock | None = None  # made on the loop that uses it
        self._tasks: set[asyncio.Task[None]] = set()

    # --- read by the control thread -------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            status = self._status.get(CONNECTOR_ID) or self._status.get(0)
            return Snapshot(
                connected=self._session is not None, since_s=self._since_s,
                status=status[0] if status else None,
                error_code=status[1] if status else None, info=status[2] if status else None,
                transaction_id=self._transaction_id, meter=self._meter,
                meter_age_s=None if self._meter is None else self._clock() - self._meter_s,
                problem=self._follow.problem)

    # --- session lifecycle (loop) ---------------------------------------------------------

    async def attach(self, session: CentralChargePoint) -> None:
        """A new authenticated connection: it replaces any earlier one (a charger that lost
        its network reconnects before the old socket times out)."""
        with self._lock:
            old, self._session = self._session, session
            self._since_s = self._clock()
            self._follow.forget()
        if old is not None:
            log.info("%s: new connection replaces the previous one", self.charge_box_id)
            self.background(old.close())
        log.info("%s: connected", self.charge_box_id)
        self.background(self._resume(session))

    async def disconnect(self) -> None:
        """Close the current connection, if any (the station is being unregistered)."""
        with self._lock:
            session = self._session
        if session is not None:
            await session.close()

    def detach(self, session: CentralChargePoint) -> None:
        with self._lock:
            if self._session is not session:
                return
            self._session = None
            self._since_s = self._clock()
            self._follow.forget()
        log.warning("%s: disconnected; the charger keeps its last profile", self.charge_box_id)

    def background(self, job: Coroutine[Any, Any, None]) -> None:
        """Run `job` on the loop without waiting; its failure is logged, never lost."""
        task = asyncio.get_running_loop().create_task(self._guarded(job))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except ChargerError as exc:
            log.warning("%s: %s", self.charge_box_id, exc)
        except Exception:
            log.exception("%s: background job failed", self.charge_box_id)

    async def _resume(self, session: CentralChargePoint) -> None:
        """On a connection without a reboot: ask for the current status (so `read` is right
        at once after divert restarts), then divert's profiles as after a boot.

        A charger speaks first on a new connection (OCPP 1.6: nothing is sent to it before its
        BootNotification is accepted); after a BootNotification, `setup` does the work."""
        # An already accepted charger may stay silent until its next Heartbeat: go ahead.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.heard.wait(), FIRST_CALL_WAIT_S)
        if session.booted:
            return
        for what in (MessageTrigger.status_notification, MessageTrigger.meter_values):
            await self._optional(session, call.TriggerMessage(requested_message=what,
                                                               connector_id=CONNECTOR_ID))
        await self._own_profiles(session, "reconnected")

    async def setup(self, session: CentralChargePoint) -> None:
        """After every BootNotification: the sample interval (optional: a refusal or error
        is logged, never stops the rest), then divert's profiles."""
        status = await self._optional(session, call.ChangeConfiguration(
            key="MeterValueSampleInterval", value=str(self.meter_sample_s)))
        if status is not None and status.status != ConfigurationStatus.accepted:
            log.warning("%s: MeterValueSampleInterval=%d s not accepted (%s): readings may "
                        "be late", self.charge_box_id, self.meter_sample_s, status.status)
        await self._own_profiles(session, "booted")

    async def _own_profiles(self, session: CentralChargePoint, event: str) -> None:
        """Only divert's profiles: clear what another backend may have left, the
        conservative default, then divert's setpoint if it has one. A charger that refuses
        the clear still gets the default (it replaces a profile of the same id)."""
        async with self._profiles():
            await self._optional(session, call.ClearChargingProfile())
            await self._set(session, self.default)
            log.info("%s: %s; default profile %s", self.charge_box_id, event, self.default)
            if self._desired is not None:
                await self._push(session)

    async def _optional(self, session: CentralChargePoint, payload: Any) -> Any:
        """A call whose failure is logged and otherwise ignored; its reply, or None."""
        try:
            return await self._call(session, payload)
        except ChargerError as exc:
            log.warning("%s (going on)", exc)
            return None

    def _profiles(self) -> asyncio.Lock:
        # Profile changes are serialised, and each reads the setpoint inside the lock, so
        # the last one to run always sends the newest setpoint.
        if self._profile_lock is None:
            self._profile_lock = asyncio.Lock()
        return self._profile_lock

    # --- commands (loop) ------------------------------------------------------------------

    async def apply(self, setpoint: Setpoint) -> None:
        """Make `setpoint` divert's wish and send it; ChargerError if the charger is not
        connected (it gets the setpoint when it connects) or refuses it."""
        with self._lock:
            self._desired = setpoint
            session = self._session
        if session is None:
            raise ChargerError(f"{self.charge_box_id} is not connected to divert's OCPP server;"
                               f" it gets {setpoint} when it connects")
        async with self._profiles():
            await self._push(session)

    async def _push(self, session: CentralChargePoint) -> None:
        with self._lock:
            setpoint, tx = self._desired, self._transaction_id
        assert setpoint is not None
        await self._set(session, setpoint)
        if tx is not None:
            # A changed TxDefaultProfile may only apply to the next transaction.
            await self._set(session, setpoint, tx)

    async def _set(self, session: CentralChargePoint, setpoint: Setpoint,
                   transaction_id: int | None = None) -> None:
        reply = await self._call(session, set_profile(setpoint, datetime.now(UTC),
                                                      transaction_id))
        kind = "default profile" if transaction_id is None else f"TxProfile ({transaction_id})"
        if reply.status != ChargingProfileStatus.accepted:
            raise ChargerError(f"{self.charge_box_id} answered {reply.status} to the {kind} "
                               f"{setpoint}")
        with self._lock:
            self._follow.expect(setpoint, self._clock())
        log.debug("%s: %s %s accepted", self.charge_box_id, kind, setpoint)

    async def _call(self, session: CentralChargePoint, payload: Any) -> Any:
        action = type(payload).__name__
        try:
            return await session.call(payload, suppress=False)
        except OCPPError as exc:
            raise ChargerError(f"{self.charge_box_id} refused {action}: {exc.code} "
                               f"{exc.description}") from None
        except UnknownCallErrorCodeError as exc:  # a CALLERROR with a code OCPP does not name
            raise ChargerError(f"{self.charge_box_id} refused {action}: {exc}") from None
        except TimeoutError:
            raise ChargerError(f"{self.charge_box_id} did not answer {action} within "
                               f"{CALL_TIMEOUT_S:.0f} s") from None
        except ConnectionClosed as exc:
            raise ChargerError(f"{self.charge_box_id} disconnected during {action}: "
                               f"{exc}") from None

    # --- what the charger reports (loop, from the handlers) -------------------------------

    def on_boot(self, vendor: str, model: str, firmware: str | None) -> None:
        with self._lock:
            self._transaction_id = None  # a reboot ends any transaction
            self._follow.forget()
        log.info("%s: BootNotification from %s %s%s", self.charge_box_id, vendor, model,
                 f" (firmware {firmware})" if firmware else "")

    def on_status(self, connector_id: int, status: str, error_code: str,
                  info: str | None) -> None:
        with self._lock:
            self._status[connector_id] = (status, error_code, info)
        if status == "Faulted":
            log.warning("%s: connector %d faulted: %s %s", self.charge_box_id, connector_id,
                        error_code, info or "")

    def start_transaction(self) -> int:
        tx = next(self._next_tx)
        with self._lock:
            self._transaction_id = tx
        log.info("%s: transaction %d started", self.charge_box_id, tx)
        return tx

    def stop_transaction(self, transaction_id: int, reason: str | None) -> None:
        with self._lock:
            known = self._transaction_id == transaction_id
            if known:
                self._transaction_id = None
        log.info("%s: transaction %d stopped (%s)%s", self.charge_box_id, transaction_id,
                 reason or "Local", "" if known else "; it was not the current one")

    def on_meter(self, values: list[Mapping[str, Any]], transaction_id: int | None) -> None:
        sample = meter.parse(values)
        if sample.skipped:
            log.warning("%s: unusable meter values skipped: %s", self.charge_box_id,
                        ", ".join(sample.skipped))
        with self._lock:
            if transaction_id is not None and self._transaction_id is None:
                self._transaction_id = transaction_id  # a transaction from before a restart
            self._meter, self._meter_s = sample, self._clock()
            was = self._follow.problem
            new = self._follow.observe(sample, self._meter_s)
            cleared = was is not None and self._follow.problem is None
        if new is not None:
            log.warning("%s: %s", self.charge_box_id, new)
        elif cleared:
            log.info("%s: follows the profile again", self.charge_box_id)


class CentralChargePoint(ChargePoint):  # type: ignore[misc]  # `ocpp` ships no type hints
    """One websocket session with a go-e: the central system's OCPP 1.6 handlers."""

    def __init__(self, station: Station, connection: Any) -> None:
        super().__init__(station.charge_box_id, connection, response_timeout=CALL_TIMEOUT_S,
                         logger=_wire_log)
        self.station = station
        self._connection = connection
        self.heard = asyncio.Event()  # the charger has sent a request on this connection
        self.booted = False  # … and one of them was a BootNotification

    async def close(self) -> None:
        await self._connection.close()

    # --- framing: every malformed frame gets its CALLERROR; nothing ends the session ------

    async def route_message(self, raw_msg: str | bytes) -> None:
        try:
            await self._route(raw_msg)
        except Exception:  # one bad frame must not end the session: log, keep serving
            log.exception("%s: error while handling %r", self.id, _excerpt(raw_msg))

    async def _route(self, raw_msg: str | bytes) -> None:
        try:
            frame = json.loads(raw_msg)
        except (ValueError, UnicodeDecodeError):
            await self._refuse(raw_msg, None, FormationViolationError("not valid JSON"))
            return
        except RecursionError:
            await self._refuse(raw_msg, None, FormationViolationError("nested too deeply"))
            return
        unique_id = (frame[1] if isinstance(frame, list) and len(frame) > 1
                     and isinstance(frame[1], str) else None)
        kind = frame[0] if isinstance(frame, list) and frame else None
        if kind in (3, 4):
            if _is_reply(frame):
                await super().route_message(raw_msg)
            else:  # never answer a reply with an error: drop it
                log.warning("%s: malformed reply dropped: %r", self.id, _excerpt(raw_msg))
            return
        if kind != 2 or unique_id is None or len(frame) != 4 or not isinstance(frame[2], str):
            await self._refuse(raw_msg, unique_id, ProtocolError(
                "expected [2, uniqueId, action, {payload}]"))
            return
        if not isinstance(frame[3], dict):
            await self._refuse(raw_msg, unique_id, FormationViolationError(
                "the payload must be a JSON object"))
            return
        await super().route_message(raw_msg)  # unknown actions, schema errors: CALLERRORs
        self.heard.set()

    async def _refuse(self, raw_msg: str | bytes, unique_id: str | None,
                      error: OCPPError) -> None:
        log.warning("%s: answered %s (%s) to %r", self.id, error.code, error.description,
                    _excerpt(raw_msg))
        # A frame without a readable id is answered with "-1", as OCPP 2.0.1 specifies.
        await super()._send(json.dumps([4, unique_id or "-1", error.code, error.description,
                                        {}]))

    async def _send(self, message: str) -> None:
        if message.startswith("[4,"):
            frame = json.loads(message)
            if frame[2] in _V16_ERROR_CODES:
                frame[2] = _V16_ERROR_CODES[frame[2]]
                message = json.dumps(frame, separators=(",", ":"))
            log.warning("%s: answered %s (%s) %s", self.id, frame[2], frame[3], frame[4])
        await super()._send(message)

    # --- handlers -------------------------------------------------------------------------

    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str,
                             **kwargs: Any) -> call_result.BootNotification:
        self.booted = True
        self.station.on_boot(charge_point_vendor, charge_point_model,
                             kwargs.get("firmware_version"))
        return call_result.BootNotification(current_time=utc_now_iso(),
                                            interval=self.station.heartbeat_s,
                                            status=RegistrationStatus.accepted)

    @after(Action.boot_notification)
    def after_boot_notification(self, **_: Any) -> None:
        self.station.background(self.station.setup(self))

    @on(Action.heartbeat)
    def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=utc_now_iso())

    @on(Action.status_notification)
    def on_status_notification(self, connector_id: int, error_code: str, status: str,
                               **kwargs: Any) -> call_result.StatusNotification:
        self.station.on_status(connector_id, status, error_code, kwargs.get("info"))
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> call_result.Authorize:
        # divert steers power, it does not decide who may charge: the go-e's own access
        # control (RFID cards, app) stays in charge of that.
        return call_result.Authorize(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int,
                             timestamp: str, **_: Any) -> call_result.StartTransaction:
        return call_result.StartTransaction(
            transaction_id=self.station.start_transaction(),
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int,
                            **kwargs: Any) -> call_result.StopTransaction:
        self.station.stop_transaction(transaction_id, kwargs.get("reason"))
        return call_result.StopTransaction(
            id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted)
            if kwargs.get("id_tag") else None)

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[Mapping[str, Any]],
                        **kwargs: Any) -> call_result.MeterValues:
        self.station.on_meter(meter_value, kwargs.get("transaction_id"))
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str) -> call_result.FirmwareStatusNotification:
        log.info("%s: firmware update: %s", self.id, status)
        return call_result.FirmwareStatusNotification()


def _is_reply(frame: list[Any]) -> bool:
    if frame[0] == 3:
        return len(frame) == 3 and isinstance(frame[1], str) and isinstance(frame[2], dict)
    return (len(frame) == 5 and all(isinstance(x, str) for x in frame[1:4])
            and isinstance(frame[4], dict))


def _excerpt(raw_msg: str | bytes, limit: int = 200) -> str | bytes:
    return raw_msg if len(raw_msg) <= limit else raw_msg[:limit]
