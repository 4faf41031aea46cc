"""divert's OCPP 1.6-J central system: a websocket server on its own thread and event loop.

One server per `[ocpp]` table, shared by all go-e chargers of a config. A connection is only
upgraded to a websocket when all of this holds, else it is refused at the handshake and
logged, so nothing unauthenticated ever reaches the OCPP handlers:
* the URL's last path segment is a configured charge-box id (`ws://host:8887/<id>`);
* the client offers the `ocpp1.6` subprotocol;
* HTTP Basic auth with that id as user name and its password (OCPP security profile 1);
* with `tls_cert` set, the server speaks TLS only (profile 2): a plain-text client fails the
  TLS handshake.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import logging
import ssl
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import parse_authorization_basic, parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chargers.base import ChargerError
from chargers.goe_ocpp.central import CentralChargePoint, Station
from chargers.goe_ocpp.config import OcppConfig
from divert.netconf import listen_address

log = logging.getLogger(__name__)

SUBPROTOCOL = Subprotocol("ocpp1.6")
_START_TIMEOUT_S = 10.0
_T = TypeVar("_T")


class _LoggedHandshake(ssl.SSLObject):
    """asyncio drops failed TLS handshakes silently; a refused client deserves a log line."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            hint = " (plain ws:// to divert's wss:// port?)" if exc.reason == "HTTP_REQUEST" else ""
            log.warning("OCPP: refused a connection: TLS handshake failed: %s%s",
                        exc.reason or exc, hint)
            raise


def tls_context(config: OcppConfig) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or newer, as OCPP security profile 2 requires)."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ChargerError(f"ocpp.tls_cert/tls_key: cannot load {config.tls_cert} and "
                           f"{config.tls_key}: {exc}") from None
    ctx.sslobject_class = _LoggedHandshake
    return ctx


def charge_box_id(path: str) -> str:
    """The last segment of the request path: the go-e's URL ends in its id."""
    return unquote(urlsplit(path).path.rstrip("/").rpartition("/")[2])


class OcppServer:
    """The websocket server and its thread. Runs while at least one station is registered."""

    def __init__(self, config: OcppConfig) -> None:
        self.config = config
        self._life = threading.Lock()  # start and stop; never taken on the loop
        self._lock = threading.Lock()  # the stations; never held while waiting on the loop
        self._stations: dict[str, Station] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None

    def register(self, station: Station) -> None:
        """Accept connections for `station`; starts the server with the first one."""
        with self._life:
            with self._lock:
                if station.charge_box_id in self._stations:
                    raise ChargerError(f"charge_box_id {station.charge_box_id!r} is "
                                       f"configured twice")
            if self._loop is None:
                self._start()
            with self._lock:
                self._stations[station.charge_box_id] = station

    def unregister(self, station: Station) -> None:
        """Stop accepting `station`; closes its connection, and the server after the last."""
        with self._life:
            with self._lock:
                if self._stations.get(station.charge_box_id) is not station:
                    return
                del self._stations[station.charge_box_id]
                last = not self._stations
            if last:
                self._stop()
            else:
                self.run(station.disconnect(), _START_TIMEOUT_S)

    def run(self, job: Coroutine[Any, Any, _T], timeout_s: float) -> _T:
        """Run `job` on the server's loop and wait for it (from any other thread)."""
        loop = self._loop
        if loop is None:
            job.close()
            raise ChargerError("the OCPP server is not running")
        future = asyncio.run_coroutine_threadsafe(job, loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            raise ChargerError(f"no answer within {timeout_s:.0f} s") from None

    # --- lifecycle (caller holds _life) ---------------------------------------------------

    def _start(self) -> None:
        ctx = tls_context(self.config)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="ocpp-server", daemon=True)
        thread.start()
        host, port = listen_address(self.config.listen)
        try:
            self._server = asyncio.run_coroutine_threadsafe(
                self._open(host, port, ctx), loop).result(_START_TIMEOUT_S)
        except OSError as exc:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise ChargerError(f"ocpp.listen: cannot listen on {self.config.listen}: "
                               f"{exc.strerror or exc}") from None
        self._loop, self._thread = loop, thread
        log.info("OCPP central system listening on %s (%s)", self.config.listen,
                 "wss, TLS" if ctx else "ws, no TLS")

    async def _open(self, host: str, port: int, ctx: ssl.SSLContext | None) -> Server:
        return await serve(self._session, host, port, subprotocols=[SUBPROTOCOL],
                           process_request=self._check, ssl=ctx, server_header=None,
                           max_size=2**16, open_timeout=10, close_timeout=2)

    def _stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(_START_TIMEOUT_S)
        except TimeoutError:
            log.warning("OCPP server did not close in time")
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = self._server = None
        log.info("OCPP central system on %s stopped", self.config.listen)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- connections (loop) ---------------------------------------------------------------

    def _refuse(self, connection: ServerConnection, status: http.HTTPStatus, why: str,
                headers: Headers | None = None) -> Response:
        log.warning("OCPP: refused %s from %s: %s", connection.request.path
                    if connection.request else "?", _peer(connection), why)
        response = connection.respond(status, f"{why}\n")
        for key, value in (headers or Headers()).raw_items():
            response.headers[key] = value
        return response

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        """The handshake gate: id, subprotocol, then Basic auth. None lets the client in."""
        box_id = charge_box_id(request.path)
        with self._lock:
            station = self._stations.get(box_id)
        if station is None:
            return self._refuse(connection, http.HTTPStatus.NOT_FOUND,
                                f"unknown charge box id {box_id!r}")
        try:
            offered = [p for h in request.headers.get_all("Sec-WebSocket-Protocol")
                       for p in parse_subprotocol(h)]
        except InvalidHeader:
            return self._refuse(connection, http.HTTPStatus.BAD_REQUEST,
                                "unreadable Sec-WebSocket-Protocol header")
        if SUBPROTOCOL not in offered:
            return self._refuse(connection, http.HTTPStatus.BAD_REQUEST,
                                f"subprotocol {SUBPROTOCOL} required, offered {offered}")
        challenge = Headers({"WWW-Authenticate": 'Basic realm="divert", charset="UTF-8"'})
        headers = request.headers.get_all("Authorization")
        if not headers:
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED,
                                "no credentials (HTTP Basic auth required)", challenge)
        if len(headers) > 1:
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED,
                                "more than one Authorization header", challenge)
        try:
            user, password = parse_authorization_basic(headers[0])
            # websockets keeps bytes that are not UTF-8 as surrogates: encoding refuses them
            given = user.encode(), password.encode()
        except (InvalidHeader, UnicodeError):
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED,
                                "unreadable credentials", challenge)
        ok_user = hmac.compare_digest(given[0], box_id.encode())
        ok_password = hmac.compare_digest(given[1], station.password.encode())
        if not (ok_user and ok_password):
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED,
                                "wrong user name or password", challenge)
        connection.username = box_id
        return None

    async def _session(self, connection: ServerConnection) -> None:
        with self._lock:
            station = self._stations.get(getattr(connection, "username", ""))
        if station is None:  # unregistered since the handshake
            await connection.close(1008, "charge box no longer configured")
            return
        cp = CentralChargePoint(station, connection)
        await station.attach(cp)
        try:
            await cp.start()
        except ConnectionClosed as exc:
            log.debug("%s: connection closed: %s", station.charge_box_id, exc)
        finally:
            station.detach(cp)


def _peer(connection: ServerConnection) -> str:
    try:
        host, port = connection.remote_address[:2]
    except (TypeError, ValueError, OSError):
        return "?"
    return f"{host}:{port}"


_servers: dict[OcppConfig, OcppServer] = {}
_servers_lock = threading.Lock()


def server_for(config: OcppConfig) -> OcppServer:
    """The one server for this `[ocpp]` table (not started until a station registers)."""
    with _servers_lock:
        return _servers.setdefault(config, OcppServer(config))
