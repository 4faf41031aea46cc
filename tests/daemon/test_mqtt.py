"""MQTT options against a real mosquitto with TLS and passwords: MQTT 5 and 3.1.1, password
files, CA files, client certificates, insecure mode; a broker that refuses never crashes us."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, free_port
from daemon_support import settings, wait_for

from divert.config import MqttConfig
from divert.daemon.mqtt import MqttLink
from divert.daemon.service import Daemon


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _issue(cwd: Path, name: str, subject: str, ext: str) -> None:
    """A key and a certificate for `name`, signed by the test CA."""
    (cwd / f"{name}.ext").write_text(ext + "\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
             cwd=cwd)


@dataclass
class SecureBroker:
    """Two TLS listeners: `password_port` wants a user name and password, `cert_port` a
    client certificate. `pki` holds ca.crt, client.crt and client.key."""

    host: str
    password_port: int
    cert_port: int
    pki: Path


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (CI installs it)")
    pki = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj",
             "/CN=divert test CA", cwd=pki)
    _issue(pki, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    _issue(pki, "client", "/CN=divert", "extendedKeyUsage=clientAuth")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pki / "passwd"), "divert", "s3cret"],
                   check=True, capture_output=True, timeout=30)
    password_port, cert_port = free_port(), free_port()
    tls = (f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
           "allow_anonymous false\n")
    conf = pki / "mosquitto.conf"
    # As root, mosquitto drops to its own user before reading the keys in our private tmp.
    conf.write_text(("user root\n" if os.geteuid() == 0 else "")
                    + "per_listener_settings true\npersistence false\n"
                    + f"listener {password_port} 127.0.0.1\n{tls}password_file {pki}/passwd\n"
                    + f"listener {cert_port} 127.0.0.1\n{tls}require_certificate true\n"
                    + "use_identity_as_username true\n")
    broker = Broker("127.0.0.1", password_port, conf)
    broker.start()
    yield SecureBroker("127.0.0.1", password_port, cert_port, pki)
    broker.stop()


def _link(**mqtt: Any) -> MqttLink:
    return MqttLink(MqttConfig.model_validate({"client_id": "divert-tls-test", **mqtt}), [],
                    lambda topic, payload, retained: None)


def _connects(link: MqttLink) -> bool:
    link.start()
    try:
        wait_for(lambda: link.connected, 10, "a TLS connection")
        return True
    finally:
        link.stop()


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_tls_with_ca_and_password_file(secure_broker: SecureBroker, tmp_path: Path,
                                       protocol: str) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")  # a trailing newline, as editors and `echo` leave it
    assert _connects(_link(host=secure_broker.host, port=secure_broker.password_port,
                           protocol=protocol, tls=True, ca_file=secure_broker.pki / "ca.crt",
                           username="divert", password_file=password))


def test_tls_with_client_certificate(secure_broker: SecureBroker) -> None:
    pki = secure_broker.pki
    assert _connects(_link(host=secure_broker.host, port=secure_broker.cert_port, tls=True,
                           ca_file=pki / "ca.crt", cert_file=pki / "client.crt",
                           key_file=pki / "client.key"))


def test_tls_insecure_accepts_an_unknown_ca_and_warns(secure_broker: SecureBroker,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    assert _connects(_link(host=secure_broker.host, port=secure_broker.password_port,
                           tls=True, tls_insecure=True, username="divert",
                           password="s3cret"))
    assert "the broker's certificate is NOT checked" in caplog.text


@pytest.mark.parametrize(("mqtt", "why"), [
    ({"tls": True, "username": "divert", "password": "s3cret"},  # CA unknown
     "cannot connect to 127.0.0.1:{port} ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify"
     " failed"),
    ({"tls": True, "username": "divert", "password": "wrong", "ca_file": "ca.crt"},
     "broker 127.0.0.1:{port} refused the connection: Not authorized"),
])
def test_a_refusing_broker_is_logged_and_retried(secure_broker: SecureBroker, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture,
                                                 mqtt: dict[str, Any], why: str) -> None:
    if "ca_file" in mqtt:
        mqtt = {**mqtt, "ca_file": secure_broker.pki / "ca.crt"}
    broker = Broker(secure_broker.host, secure_broker.password_port, Path())
    daemon = Daemon(settings(tmp_path, broker, mqtt={
        "host": broker.host, "port": broker.port, "keepalive_s": 5, **mqtt},
        feeds={"grid": {"topic": "home/grid", "max_age_s": 0.5}}))
    with caplog.at_level(logging.WARNING, logger="divert.daemon.mqtt"):
        daemon.start()
        try:
            wait_for(lambda: why.format(port=broker.port) in caplog.text, 10, why)
            assert not daemon.mqtt.connected
            # The loop runs regardless (fail-safe on stale data), the charger is driven.
            wait_for(lambda: daemon.last_decisions.get("garage"), what="a decision")
        finally:
            daemon.stop()
