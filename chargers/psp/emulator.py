"""A PSP EVSE controller on a loopback port: the documented WebAPI v1 over real HTTP.

For tests and trying divert without hardware. The JSON shapes, endpoints and access methods
are the vendor guide's (shared/reference/psp-evse-webapi.md); so are the semantics it states:
`ChargeStartToggle` flips the session, `EVSEPowerAvailable` (W) sets the available power when
`ControlStrategy` is 1, `ActualEnergy` counts Ws, the service codes restart the controller.

Where the guide is silent the emulator picks one plausible behaviour and says so here:
* below the power of `MIN_CURRENT_A` on the configured phases the EV is paused (pilot state B);
  until a system writes `EVSEPowerAvailable` after boot, 0 W is available;
* `ControlLimit` is ignored (it is the limit for meters the emulator does not model);
* a write is answered `{"<key>": "Performing"}` like the guide's service-code example, a bad
  write with HTTP 400 and `{"Error": "…"}`, a wrong method with 405, an unknown path with 404;
* `StartStopAllowed` is true while a vehicle is plugged in and no fault is active; a toggle
  sent while it is false is answered but does nothing.

Faults for tests: `inject()` makes the next matching requests slow, lose their reply (the
request is applied, then the connection closes), or answer truncated or non-JSON bodies;
`set_fault()` puts the EVSE into a fault state; SystemConfig values are set at construction.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chargers.psp.webapi import (
    BASE_PATH,
    EVSE_CTRL,
    STATUS,
    SYSTEM_CONFIG,
    SYSTEM_INFO,
    EvseState,
    is_fault,
)

MIN_CURRENT_A = 6.0  # IEC 61851: the lowest pilot current
VOLTAGE_V = 230.0
METER1 = f"{BASE_PATH}/Meter1"
METER2 = f"{BASE_PATH}/Meter2"

# SystemConfig keys the guide documents, their JSON types, and this emulator's defaults.
DEFAULT_CONFIG: Mapping[str, int | str | bool] = {
    "ChargerMode": 0, "LockMethod": 0, "ChargeCurrent": 16, "ChargeCurrentBoost": 32,
    "Meter1Type": 0, "Meter1Ip": "", "Meter2Type": 7, "Meter2Ip": "127.0.0.1",
    "PhaseCurrentLimit": 25, "ControlStrategy": 1, "ControlLimit": 0, "ChargeAutoStart": False,
    "Charge3Phase": True,
}
_IP_METER_TYPES = {4, 5, 6}
_CTRL_KEYS: Mapping[str, type] = {"ChargeStartToggle": bool, "ChargeBoostToggle": bool,
                                  "EVSEPowerAvailable": float}
_SERVICE_CODES = {"Reset", "FactoryDefault", "WiFiSetToAP"}


class Fault(Enum):
    """How the reply to one request goes wrong. The request itself is always applied."""

    SLOW = "slow"  # the reply waits `delay_s` (or until the emulator closes)
    LOST = "lost"  # the connection closes without a reply
    TRUNCATED = "truncated"  # the JSON body is cut in half (the HTTP framing is correct)
    GARBAGE = "garbage"  # HTTP 200 with an HTML page instead of JSON


@dataclass
class _Injection:
    fault: Fault
    method: str | None
    path: str | None
    count: int
    delay_s: float


@dataclass(frozen=True)
class Request:
    """One request as the emulator received it; `body` is the parsed JSON of a POST."""

    method: str
    path: str
    body: Any = None


class PSPEmulator:
    """The controller's model and its HTTP server. Powers in W, currents in A, times in s."""

    def __init__(self, config: Mapping[str, int | str | bool] | None = None,
                 clock: Callable[[], float] = time.monotonic, toggle_delay_s: float = 0.0,
                 ) -> None:
        unknown = sorted(set(config or {}) - set(DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"not SystemConfig keys: {unknown}")
        self.config: dict[str, int | str | bool] = {**DEFAULT_CONFIG, **(config or {})}
        self._clock = clock
        self.toggle_delay_s = toggle_delay_s  # a toggle shows in ChargerStarted this late
        self.requests: list[Request] = []
        self.service_requests: list[dict[str, Any]] = []  # every POST to SystemInfo
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends SLOW replies at close
        self._injections: list[_Injection] = []
        self._boot_s = clock()
        self._last_s = self._boot_s
        self._plugged = False
        self._fault: EvseState | None = None
        self._started = False  # ChargerStarted
        self._boosted = False
        self._pending_toggles: list[float] = []  # clock times at which toggles take effect
        self._power_available_w: float | None = None  # last EVSEPowerAvailable since boot
        self._energy_ws = 0.0  # ActualEnergy: this session
        self._total_energy_ws = 0.0
        self._session_s = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()  # open keep-alive connections

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PSPEmulator:
        """Listen on a free loopback port; `url` is then the base URL."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="psp-emulator", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:  # like a controller that went away: open connections die too
            for conn in self._connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()

    def __enter__(self) -> PSPEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a test does to the charger -----------------------------------------------------

    def plug_in(self) -> None:
        with self._model():
            self._plugged = True
            self._energy_ws = self._session_s = 0.0
            self._started = bool(self.config["ChargeAutoStart"])

    def unplug(self) -> None:
        with self._model():
            self._plugged = False
            self._started = self._boosted = False
            self._pending_toggles.clear()

    def set_fault(self, state: EvseState | None) -> None:
        """Put the EVSE into a fault state (one whose name ends in _F or _ERR), or clear it."""
        if state is not None and not is_fault(state):
            raise ValueError(f"{state.name} is not a fault state")
        with self._model():
            self._fault = state

    def inject(self, fault: Fault, path: str | None = None, method: str | None = None,
               count: int = 1, delay_s: float = 5.0) -> None:
        """Spoil the replies to the next `count` requests matching `method` and `path`."""
        with self._lock:
            self._injections.append(_Injection(fault, method, path, count, delay_s))

    def clear_faults(self) -> None:
        """Forget injected reply faults not used up yet."""
        with self._lock:
            self._injections.clear()

    def writes(self, key: str) -> list[Any]:
        """The values POSTed for `key`, oldest first, whatever the reply was."""
        with self._lock:
            return [r.body[key] for r in self.requests
                    if r.method == "POST" and isinstance(r.body, dict) and key in r.body]

    @property
    def power_w(self) -> float:
        """ActualPower now, W."""
        with self._model():
            return self._power_w()

    @property
    def started(self) -> bool:
        """ChargerStarted now."""
        with self._model():
            return self._started

    @property
    def power_available_w(self) -> float | None:
        """The last EVSEPowerAvailable written since boot, W."""
        with self._model():
            return self._power_available_w

    @property
    def energy_ws(self) -> float:
        """ActualEnergy now, Ws."""
        with self._model():
            return self._energy_ws

    # -- the model ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _model(self) -> Iterator[None]:
        """Hold the lock with time advanced to now: energy integrated, toggles applied."""
        with self._lock:
            now = self._clock()
            due = [t for t in self._pending_toggles if t <= now]
            for t in sorted(due):
                self._integrate(t)
                self._started = not self._started
            self._pending_toggles = [t for t in self._pending_toggles if t > now]
            self._integrate(now)
            yield

    def _integrate(self, now: float) -> None:
        dt_s = max(0.0, now - self._last_s)
        power_w = self._power_w()
        self._energy_ws += power_w * dt_s
        self._total_energy_ws += power_w * dt_s
        if self._started:
            self._session_s += dt_s
        self._last_s = now

    def _phases(self) -> int:
        return 3 if self.config["Charge3Phase"] else 1

    def _max_power_w(self) -> float:
        max_a = float(self.config["ChargeCurrentBoost" if self._boosted else "ChargeCurrent"])
        return max_a * VOLTAGE_V * self._phases()

    def _available_w(self) -> float:
        if self.config["ControlStrategy"] != 1:
            return self._max_power_w()
        return min(self._max_power_w(), self._power_available_w or 0.0)

    def _current_a(self) -> float:
        if not (self._plugged and self._started) or self._fault is not None:
            return 0.0
        per_phase_a = self._available_w() / (VOLTAGE_V * self._phases())
        current_a = math.floor(per_phase_a * 10 + 1e-9) / 10  # the pilot's 0.1 A steps
        return current_a if current_a >= MIN_CURRENT_A else 0.0

    def _power_w(self) -> float:
        return self._current_a() * VOLTAGE_V * self._phases()

    def _evse_state(self) -> EvseState:
        if self._fault is not None:
            return self._fault
        if not self._plugged:
            return EvseState.IDLE_A1_A2
        return EvseState.EV_CHARGE_C1_C2 if self._current_a() > 0 else \
            EvseState.EV_CONNECTED_B1_B2

    def _timestamp_ms(self) -> int:
        return int((self._clock() - self._boot_s) * 1000)

    def _status(self) -> dict[str, Any]:
        secs = int(self._session_s)
        status: dict[str, Any] = {
            "TimeStamp": self._timestamp_ms(), "SystemVersion": "1.1.0",
            "WiFiInfo": "emulator:100%", "EvseState": int(self._evse_state()),
            "ThreePhaseCharging": self._phases() == 3, "ActualCurrent": self._current_a(),
            "ActualPower": self._power_w(), "ActualEnergy": round(self._energy_ws),
            "ActualDuration": f"{secs // 3600:02d}h:{secs // 60 % 60:02d}m:{secs % 60:02d}s",
            "ActualDurationTotalSeconds": secs,
            "AutoStartAllowed": self.config["ChargeAutoStart"],
            "StartStopAllowed": self._plugged and self._fault is None,
            "BoostAllowed": self._plugged and self._fault is None,
            "ChargerStarted": self._started, "ChargeBoosted": self._boosted,
            "Meter1Status": 0, "Meter2Status": 0,
        }
        if self.config["ChargerMode"] == 1:  # socket: the cable's PP resistor codes a current
            status["PPCodedCurrent"] = 32
        if self.config["ControlStrategy"] == 1:
            status["ActualPowerAvailable"] = self._available_w()
        return status

    def _meter(self, name: str, present: bool) -> dict[str, Any]:
        valid = "Valid" if present else "Not available"
        total_kwh = self._total_energy_ws / 3.6e6
        registers = [("0x04_0x0034", "TotalSystemPower[W]", self._power_w()),
                     ("0x04_0x0048", "TotalImport[kWh]", total_kwh),
                     ("0x04_0x004a", "TotalExport[kWh]", 0.0),
                     ("0x04_0x0156", "Total[kWh]", total_kwh)]
        return {name: {"TimeStamp": self._timestamp_ms(), "ModbusData": {
            reg: {"Desc": desc, "ErrCounter": 0, "Value": value if present else 0,
                  "DataStatus": valid} for reg, desc, value in registers}}}

    def _system_info(self) -> dict[str, Any]:
        return {"TimeStamp": self._timestamp_ms(), "SystemVersion": "1.1.0",
                "ProductType": "01100200", "MAC": "02:00:00:00:00:01",
                "WiFiInfo": "emulator,RSSI:-40dB/100%", "HeapInfo": "0x022DF0/0x02D230",
                "GeneralInfo": "System: no faults" if self._fault is None else
                f"System: {self._fault.vendor_name}",
                "OTAMsg": "", "OTACheckAllowed": False, "OTAUpdateAllowed": False}

    def _reboot(self) -> None:
        self._boot_s = self._clock()
        self._started = self._boosted = False
        self._pending_toggles.clear()
        self._power_available_w = None
        self._energy_ws = self._session_s = 0.0

    # -- requests ----------------------------------------------------------------------------

    def _get(self, path: str) -> tuple[int, dict[str, Any]]:
        with self._model():
            if path == STATUS:
                return 200, self._status()
            if path == SYSTEM_CONFIG:
                return 200, {"TimeStamp": self._timestamp_ms(), "SystemVersion": "1.1.0",
                             **self.config}
            if path == SYSTEM_INFO:
                return 200, self._system_info()
            if path == METER1:
                return 200, self._meter("Meter1", self.config["Meter1Type"] != 0)
            if path == METER2:
                return 200, self._meter("Meter2", self.config["Meter2Type"] not in (0, 7))
        raise _Reply(405 if path == EVSE_CTRL else 404)

    def _post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if path in (STATUS, METER1, METER2):
            raise _Reply(405)
        if path not in (EVSE_CTRL, SYSTEM_CONFIG, SYSTEM_INFO):
            raise _Reply(404)
        if not isinstance(body, dict) or not body:
            raise _Reply(400, "expected a JSON object")
        with self._model():
            if path == EVSE_CTRL:
                return self._evse_ctrl(body)
            if path == SYSTEM_CONFIG:
                return self._set_config(body)
            return self._service(body)

    def _evse_ctrl(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        for key, value in body.items():
            _check_type(key, value, _CTRL_KEYS)
        if "EVSEPowerAvailable" in body and body["EVSEPowerAvailable"] < 0:
            raise _Reply(400, "EVSEPowerAvailable must be >= 0")
        if "EVSEPowerAvailable" in body:
            self._power_available_w = float(body["EVSEPowerAvailable"])
        allowed = self._plugged and self._fault is None
        if body.get("ChargeStartToggle") is True and allowed:
            if self.toggle_delay_s > 0:
                self._pending_toggles.append(self._clock() + self.toggle_delay_s)
            else:
                self._started = not self._started
        if body.get("ChargeBoostToggle") is True and allowed:
            self._boosted = not self._boosted
        return 200, {key: "Performing" for key in body}

    def _set_config(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        types = {k: type(v) if not isinstance(v, int) or isinstance(v, bool) else float
                 for k, v in DEFAULT_CONFIG.items()}
        for key, value in body.items():
            _check_type(key, value, types)
        for n in (1, 2):
            if body.get(f"Meter{n}Type") in _IP_METER_TYPES:
                try:
                    ipaddress.ip_address(body.get(f"Meter{n}Ip", ""))
                except ValueError:
                    raise _Reply(400, f"Meter{n}Type {body[f'Meter{n}Type']} needs a valid "
                                      f"Meter{n}Ip") from None
        self.config.update(body)
        return 200, {key: "Performing" for key in body}

    def _service(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.service_requests.append(body)
        code = body.get("SCode", body.get("Scode"))  # the guide's example spells it "Scode"
        if code is not None:
            if code not in _SERVICE_CODES:
                raise _Reply(400, f"unknown service code {code!r}")
            if code in ("Reset", "FactoryDefault"):
                if code == "FactoryDefault":
                    self.config = dict(DEFAULT_CONFIG)
                self._reboot()
            return 200, {code: "Performing"}
        toggles = {k: v for k, v in body.items() if k in ("UpdateCheckToggle", "UpdateRunToggle")}
        if not toggles:
            raise _Reply(400, "expected SCode, UpdateCheckToggle or UpdateRunToggle")
        return 200, {key: "Performing" for key in toggles}

    def _take_injection(self, method: str, path: str) -> _Injection | None:
        with self._lock:
            for inj in self._injections:
                if inj.method in (None, method) and inj.path in (None, path):
                    inj.count -= 1
                    if inj.count <= 0:
                        self._injections.remove(inj)
                    return inj
        return None


class _Reply(Exception):
    """An error answer: HTTP status and the reason for the `Error` field."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _check_type(key: str, value: Any, types: Mapping[str, type]) -> None:
    if key not in types:
        raise _Reply(400, f"unknown object {key!r}")
    want = types[key]
    if want is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) \
            and math.isfinite(value)
    else:
        ok = isinstance(value, want)
    if not ok:
        raise _Reply(400, f"{key} should be a {'number' if want is float else want.__name__}")


def _handler_for(emulator: PSPEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the controller's web server
        disable_nagle_algorithm = True  # headers and body go out as separate writes
        timeout = 10  # s; an idle keep-alive connection is dropped after this

        def setup(self) -> None:
            super().setup()
            with emulator._lock:
                emulator._connections.add(self.connection)

        def finish(self) -> None:
            with emulator._lock:
                emulator._connections.discard(self.connection)
            super().finish()

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            body: Any = None
            try:
                try:
                    if method == "POST":
                        body = self._read_json()
                finally:
                    with emulator._lock:
                        emulator.requests.append(Request(method, path, body))
                status, reply = (emulator._get(path) if method == "GET"
                                 else emulator._post(path, body))
            except _Reply as err:
                status, reply = err.status, {"Error": err.reason or self.responses[err.status][0]}
            self._answer(status, json.dumps(reply).encode(),
                         emulator._take_injection(method, path))

        def _read_json(self) -> Any:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise _Reply(411, "Content-Length required")
            raw = self.rfile.read(int(length))
            try:
                return json.loads(raw)
            except (UnicodeDecodeError, ValueError):
                raise _Reply(400, "body is not JSON") from None

        def _answer(self, status: int, payload: bytes, injection: _Injection | None) -> None:
            content_type = "application/json"
            if injection is not None:
                if injection.fault is Fault.LOST:
                    self.close_connection = True
                    return
                if injection.fault is Fault.SLOW:
                    emulator._release.wait(injection.delay_s)
                elif injection.fault is Fault.TRUNCATED:
                    payload = payload[:len(payload) // 2]
                elif injection.fault is Fault.GARBAGE:
                    status, content_type = 200, "text/html"
                    payload = b"<html><body><h1>Internal error</h1></body></html>"
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up waiting (a SLOW reply)
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests read `emulator.requests`, not stderr

    return Handler
