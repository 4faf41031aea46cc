"""`divert goe-setup` against an emulated go-e HTTP API v2 on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import free_port
from daemon_support import http_answering

from divert.cli import main

URL = "ws://goe-1:correct-horse-battery@192.168.0.10:8887/goe-1"
_WRITABLE: dict[str, type] = {"ocppe": bool, "ocppu": str, "ocppg": bool, "ocppcn": bool,
                              "ocppss": bool, "ocppsc": str, "ocpph": int, "ocppi": int}
_READ_ONLY = {"ocpps", "ocppc", "ocppa", "ocpple", "ocppca", "ocppaa"}


class GoEHttp:
    """The go-e's /api/set and /api/status, strict as the device: values must be JSON of
    the key's type (an unquoted URL is refused), read-only keys cannot be written."""

    def __init__(self, server_accepts: bool = True) -> None:
        self.keys: dict[str, Any] = {"ocppe": False, "ocppu": "", "ocppg": True,
                                     "ocppsc": "", "ocpps": False, "ocppc": False,
                                     "ocppa": False, "ocpple": None}
        self.server_accepts = server_accepts
        self.sets: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                if url.path == "/api/set":
                    code, body = fake.set(query)
                elif url.path == "/api/status":
                    keys = query.get("filter", "").split(",")
                    code, body = 200, {k: fake.keys[k] for k in keys if k in fake.keys}
                else:
                    code, body = 404, {"error": "not found"}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def set(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.sets.append(query)
        answer: dict[str, Any] = {}
        for key, raw in query.items():
            if key in _READ_ONLY:
                answer[key] = f"{key}: api key is read-only"
                continue
            if key not in _WRITABLE:
                answer[key] = f"{key}: api key not found"
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                answer[key] = f"{key}: tried to set api key with invalid json InvalidInput ({raw})"
                continue
            if type(value) is not _WRITABLE[key]:
                answer[key] = f"{key}: wrong type"
                continue
            self.keys[key] = value
            answer[key] = True
        self._connect()
        return (200 if all(v is True for v in answer.values()) else 400), answer

    def _connect(self) -> None:
        on = self.keys["ocppe"] and bool(self.keys["ocppu"])
        self.keys.update(ocpps=on, ocppc=on and self.server_accepts,
                         ocppa=on and self.server_accepts,
                         ocpple=None if not on or self.server_accepts else
                         "esp_ws_handshake_status_code=401")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def goe() -> Iterator[GoEHttp]:
    g = GoEHttp()
    yield g
    g.close()


def test_writes_the_url_and_reads_back_accepted(goe: GoEHttp,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["goe-setup", "--host", goe.host, "--url", URL]) == 0
    assert (goe.keys["ocppe"], goe.keys["ocppu"]) == (True, URL)
    assert goe.sets == [{"ocppe": "true", "ocppu": json.dumps(URL)}]
    out = capsys.readouterr().out
    assert "server URL (ocppu): ws://goe-1:****@192.168.0.10:8887/goe-1" in out
    assert "correct-horse-battery" not in out
    assert "connected (ocppc): yes\naccepted (ocppa): yes" in out


def test_reading_only_reports_and_fails_when_not_accepted(
        goe: GoEHttp, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["goe-setup", "--host", goe.host]) == 1
    assert goe.sets == []
    captured = capsys.readouterr()
    assert "OCPP enabled (ocppe): no" in captured.out
    assert "give --url to point it at divert" in captured.err


def test_a_refusing_server_shows_the_go_e_s_last_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    g = GoEHttp(server_accepts=False)
    try:
        assert main(["goe-setup", "--host", g.host, "--url", URL, "--wait", "0"]) == 1
    finally:
        g.close()
    captured = capsys.readouterr()
    assert "last error (ocpple): esp_ws_handshake_status_code=401" in captured.out
    assert "not connected to an OCPP server that accepted it" in captured.err


def test_server_certificate_for_wss(goe: GoEHttp, tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    cert = tmp_path / "cert.pem"
    cert.write_text(pem)
    url = "wss://goe-1:correct-horse-battery@divert.local:8887/goe-1"
    assert main(["goe-setup", "--host", f"http://{goe.host}", "--url", url,
                 "--server-cert", str(cert)]) == 0
    assert (goe.keys["ocppsc"], goe.keys["ocppg"], goe.keys["ocppu"]) == (pem, False, url)


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "http://divert:8887/goe-1"], "--url must be ws://host:port/<charge-box-id>"),
    (["--url", "ws://divert:8887/"], "--url must end in the charger's charge_box_id"),
    (["--server-cert", "/nonexistent.pem"], "--server-cert: cannot read /nonexistent.pem"),
])
def test_bad_arguments_are_one_line(goe: GoEHttp, capsys: pytest.CaptureFixture[str],
                                    args: list[str], message: str) -> None:
    assert main(["goe-setup", "--host", goe.host, *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("divert goe-setup: ") and message in err
    assert "Traceback" not in err and goe.sets == []


def test_an_unreachable_or_foreign_host_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["goe-setup", "--host", f"127.0.0.1:{free_port()}", "--url", URL]) == 1
    assert "divert goe-setup: cannot reach the go-e at http://127.0.0.1:" in (
        capsys.readouterr().err)


def test_a_reply_nested_too_deeply_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with http_answering(200, {"Content-Type": "application/json"}, b"[" * 100_000) as url:
        assert main(["goe-setup", "--host", url]) == 1
    assert "/api/status: HTTP 200, not a JSON object" in capsys.readouterr().err


def test_a_refused_key_is_named(goe: GoEHttp, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_WRITABLE, "ocppu", int)  # a firmware that wants something else
    assert main(["goe-setup", "--host", goe.host, "--url", URL]) == 1
    assert "the go-e refused ocppu: ocppu: wrong type" in capsys.readouterr().err
