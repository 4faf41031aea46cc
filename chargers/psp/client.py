"""HTTP to one PSP EVSE controller: timeouts, retries with backoff, an allow-list of writes.

The controller also takes writes that must never come from an automation: service codes
(`Reset`, `FactoryDefault`, `WiFiSetToAP`), firmware-update toggles and its whole system
configuration. `post` refuses anything not on `ALLOWED_WRITES` before a byte is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from enum import Enum
from typing import TypeVar

import httpx

from chargers.base import ChargerError
from chargers.psp.webapi import EVSE_CTRL, WebAPIError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Write(Enum):
    """How a write behaves when it is repeated."""

    SETPOINT = "setpoint"  # an absolute value: repeating it is harmless, so it is retried
    TOGGLE = "toggle"  # flips the present state: sent at most once, never retried


ALLOWED_WRITES: Mapping[str, Mapping[str, Write]] = {
    EVSE_CTRL: {"EVSEPowerAvailable": Write.SETPOINT, "ChargeStartToggle": Write.TOGGLE},
}


class WebAPIClient:
    """One keep-alive HTTP client for a controller's WebAPI. Times in s."""

    def __init__(self, base_url: str, timeout_s: float, retries: int, backoff_s: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleep
        # trust_env=False: a proxy set for the internet must not carry LAN control traffic.
        self._http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout_s),
                                  headers={"Accept": "application/json"}, trust_env=False)

    def get(self, path: str, parse: Callable[[bytes], T]) -> T:
        """GET `path` and parse the body; retried on silence, 5xx and garbled replies."""
        return self._send("GET", path, None, parse, self._retries)

    def post(self, path: str, body: Mapping[str, float | bool]) -> None:
        """POST a JSON object whose every key is on the allow-list for `path`.

        Setpoints are retried like reads. A toggle goes out once: if its reply is lost the
        caller must read the state back, since the controller may have applied it."""
        allowed = ALLOWED_WRITES.get(path, {})
        refused = sorted(k for k in body if k not in allowed)
        if not body or refused:
            raise ValueError(f"refusing to POST {refused or 'nothing'} to {path}: only "
                             f"{sorted(allowed)} may be written there")
        setpoints_only = all(allowed[k] is Write.SETPOINT for k in body)
        self._send("POST", path, dict(body), lambda _: None,
                   self._retries if setpoints_only else 0)

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, body: dict[str, float | bool] | None,
              parse: Callable[[bytes], T], retries: int) -> T:
        what = f"{method} {self.base_url}{path}"
        problem = ""
        for attempt in range(retries + 1):
            if attempt:
                log.debug("%s: %s; attempt %d of %d", what, problem, attempt + 1, retries + 1)
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                reply = self._http.request(method, path, json=body)
            except httpx.TimeoutException:
                problem = f"no answer within {self._timeout_s:g} s"
                continue
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if reply.status_code >= 500:
                problem = f"HTTP {reply.status_code}"
                continue
            if not reply.is_success:
                raise ChargerError(f"{what}: refused with HTTP {reply.status_code}: "
                                   f"{reply.content[:120].decode('utf-8', 'replace')!r}")
            try:
                return parse(reply.content)
            except WebAPIError as exc:
                problem = str(exc)
        tries = f" ({retries + 1} attempts)" if retries else ""
        raise ChargerError(f"{what}: {problem}{tries}")
