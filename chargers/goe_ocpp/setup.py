"""Point a go-eCharger at divert's OCPP server through its local HTTP API v2.

The API (enabled in the go-e app) takes `/api/set?key=value` with JSON-encoded values and
answers `{key: true}` per key, or an error text for the key; `/api/status?filter=k1,k2` reads
keys. Used here: `ocppe` (OCPP enabled), `ocppu` (server URL), `ocppsc` and `ocppg` (the
certificate to trust instead of the global CA store, for wss:// with divert's own
certificate), and the read-only `ocppc` (connected), `ocppa` (connected and accepted) and
`ocpple` (last error).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

STATUS_KEYS = ("ocppe", "ocppu", "ocppc", "ocppa", "ocpple")
POLL_S = 1.0


class SetupError(Exception):
    """The go-e could not be reached or refused a setting; the message is for the user."""


def redact(url: str) -> str:
    """`url` with the password of its user-info replaced by ****."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username}:****@{parts.hostname}{port}"))


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise SetupError(f"--url must be ws://host:port/<charge-box-id> or wss://…, got "
                         f"{redact(url)!r}")
    if not parts.path.rstrip("/").rpartition("/")[2]:
        raise SetupError("--url must end in the charger's charge_box_id, e.g. "
                         "ws://divert-host:8887/goe-1")


class GoEApi:
    """The go-e's local HTTP API v2."""

    def __init__(self, host: str, timeout_s: float = 5.0) -> None:
        self.base = host if host.startswith(("http://", "https://")) else f"http://{host}"
        self.client = httpx.Client(base_url=self.base, timeout=timeout_s)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = self.client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise SetupError(f"cannot reach the go-e at {self.base}: {exc}") from None
        try:
            data = response.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            data = None
        if not isinstance(data, dict):
            raise SetupError(f"{self.base}{path}: HTTP {response.status_code}, not a JSON "
                             f"object (is the local HTTP API v2 enabled in the go-e app?)")
        return data

    def set(self, values: dict[str, Any]) -> None:
        """Write keys; SetupError naming every key the go-e refused."""
        answer = self._get("/api/set", {k: json.dumps(v) for k, v in values.items()})
        refused = [f"{k}: {answer.get(k, 'no answer')}" for k in values
                   if answer.get(k) is not True]
        if refused:
            raise SetupError("the go-e refused " + "; ".join(refused))

    def status(self, keys: tuple[str, ...] = STATUS_KEYS) -> dict[str, Any]:
        return self._get("/api/status", {"filter": ",".join(keys)})

    def close(self) -> None:
        self.client.close()


def setup(api: GoEApi, url: str | None, server_cert: Path | None, wait_s: float,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Write the settings given (if any), then read the status until the go-e is accepted
    by its server or `wait_s` seconds have passed; returns the last status."""
    values: dict[str, Any] = {}
    if server_cert is not None:
        try:
            pem = server_cert.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise SetupError(f"--server-cert: cannot read {server_cert}: {exc}") from None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise SetupError(f"--server-cert: {server_cert} is not a PEM certificate")
        values.update(ocppsc=pem, ocppg=False)
    if url is not None:
        check_url(url)
        values.update(ocppe=True, ocppu=url)
    if values:
        api.set(values)
    deadline_s = clock() + wait_s
    while True:
        status = api.status()
        if status.get("ocppa") is True or clock() >= deadline_s:
            return status
        sleep(POLL_S)
