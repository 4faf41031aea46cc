"""Prometheus metrics: names with units and the `divert_` prefix, one registry per daemon;
and the HTTP listener that serves them, beside the status page and `/api/state`.

Counters are exposed with `_total` appended by prometheus-client. The listener is read-only:
GET and HEAD only.
"""

from __future__ import annotations

import logging
import platform
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    make_wsgi_app,
)

from divert import __version__
from divert.core.modes import Mode
from divert.core.reasons import Reason
from divert.netconf import listen_address

log = logging.getLogger(__name__)

Page = Callable[[], tuple[int, str, bytes]]  # () -> HTTP status, content type, body
# The pages are self-contained: nothing may be loaded from elsewhere (the Pi may be offline).
PAGE_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; "
                 "style-src 'unsafe-inline'; connect-src 'self'; img-src data:")]

def blocked_label(code: Reason) -> str | None:
    """The `reason` label of a start the relay guard held back, None if it was not blocked."""
    return code.value.removeprefix("blocked_") if code.blocked else None


class Metrics:
    def __init__(self, chargers: Iterable[str], feeds: Iterable[str]) -> None:
        r = self.registry = CollectorRegistry()
        self.grid_w = Gauge("divert_grid_power_watts",
                            "Grid power, + import / - export (NaN when stale)", registry=r)
        self.solar_w = Gauge("divert_solar_power_watts", "PV production (NaN when stale)",
                             registry=r)
        self.surplus_w = Gauge("divert_surplus_power_watts",
                               "Power the EVs could draw without import (NaN when unknown)",
                               registry=r)
        self.site_limit_w = Gauge("divert_site_import_limit_watts",
                                  "The site's import limit, house plus chargers (NaN: none)",
                                  registry=r)
        self.site_limited = Gauge("divert_site_limited",
                                  "1 while the site limit holds chargers back", registry=r)
        self.share_w = Gauge("divert_charger_share_watts",
                             "The site's surplus offered to the charger (NaN when unknown)",
                             ["charger"], registry=r)
        self.setpoint_a = Gauge("divert_charger_setpoint_amperes",
                                "Commanded current per phase, 0 when paused", ["charger"],
                                registry=r)
        self.power_w = Gauge("divert_charger_power_watts", "Measured power into the EV",
                             ["charger"], registry=r)
        self.charging = Gauge("divert_charger_charging", "1 while divert has the charger on",
                              ["charger"], registry=r)
        self.connected = Gauge("divert_charger_connected", "1 while the charger answers its reads",
                               ["charger"], registry=r)
        self.starts = Counter("divert_charger_relay_starts",
                              "Charging starts (relay cycles) commanded", ["charger"],
                              registry=r)
        self.blocked = Counter("divert_charger_starts_blocked",
                               "Starts the relay guard held back, once per blocked spell",
                               ["charger", "reason"], registry=r)
        self.command_errors = Counter("divert_charger_command_errors",
                                      "Charger commands or reads that failed",
                                      ["charger", "command"], registry=r)
        self.resends = Counter("divert_charger_resends",
                               "Commands sent again at once because a reading contradicted "
                               "them", ["charger", "reason"], registry=r)
        self.save_errors = Counter("divert_state_save_errors",
                                   "State file writes that failed", registry=r)
        self.feed_age_s = Gauge("divert_feed_age_seconds",
                                "Time since the feed's last good value (NaN before the first)",
                                ["feed"], registry=r)
        self.feed_errors = Counter("divert_feed_payload_errors",
                                   "Payloads ignored because they held no finite number",
                                   ["feed"], registry=r)
        self.ev_surplus_wh = Counter("divert_ev_energy_from_surplus_watt_hours",
                                     "Energy into the EV covered by surplus", ["charger"],
                                     registry=r)
        self.ev_grid_wh = Counter("divert_ev_energy_from_grid_watt_hours",
                                  "Energy into the EV not covered by surplus (or unknown)",
                                  ["charger"], registry=r)
        self.loop_s = Histogram("divert_control_loop_duration_seconds",
                                "Duration of one control cycle over all chargers",
                                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5, 1.0, 2.5, 5.0, 10.0), registry=r)
        self.mode = Enum("divert_mode", "The active charging mode", ["charger"],
                         states=[m.value for m in Mode], registry=r)
        self.mqtt_connected = Gauge("divert_mqtt_connected", "1 while connected to the broker",
                                    registry=r)
        self.starts_left = Gauge("divert_charger_starts_left",
                                 "Starts the relay guard allows in the rolling window",
                                 ["charger", "window"], registry=r)
        self.commands = Counter("divert_mqtt_commands", "MQTT commands, accepted or refused",
                                ["command", "result"], registry=r)
        Info("divert_build", "divert version", registry=r).info(
            {"version": __version__, "python": platform.python_version()})
        for name in chargers:  # present from the start, so rates and alerts see a 0
            for metric in (self.starts, self.ev_surplus_wh, self.ev_grid_wh):
                metric.labels(name)
            for command in ("read", "setpoint", "enable", "phases", "connect", "timeout"):
                self.command_errors.labels(name, command)
            for reason in ("charging_while_paused", "above_setpoint"):
                self.resends.labels(name, reason)
        for feed in feeds:
            self.feed_errors.labels(feed)
        for command in ("mode", "min_current", "max_current", "boost", "plan"):
            for result in ("accepted", "refused"):
                self.commands.labels(command, result)
        self._server: WSGIServer | None = None

    def serve(self, listen: str, pages: Mapping[str, Page] | None = None) -> None:
        """Serve /metrics and `pages` (path → page) on `host:port`; OSError if the address
        is taken."""
        host, port = listen_address(listen)
        server = make_server(host, port, _app(make_wsgi_app(self.registry), pages or {}),
                             _server_class(host), _QuietHandler)
        threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
        self._server = server
        log.info("metrics on http://%s/metrics, status page on http://%s/", listen, listen)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _server_class(host: str) -> type[WSGIServer]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return type("_Server", (_ThreadingServer,), {"address_family": family})


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per scrape is noise
        pass


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _app(metrics_app: WsgiApp, pages: Mapping[str, Page]) -> WsgiApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            status, ctype, body = 405, "text/plain", b"read-only: GET and HEAD only\n"
            extra = [("Allow", "GET, HEAD")]
        elif path == "/metrics":
            yield from metrics_app(environ, start_response)
            return
        elif path in pages:
            status, ctype, body = pages[path]()
            extra = PAGE_HEADERS
        else:
            status, ctype, body = 404, "text/plain", b"not found\n"
            extra = []
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra])
        if environ.get("REQUEST_METHOD") != "HEAD":
            yield body

    return app
