"""The go-e driver against an emulated go-e (the `ocpp` package's v16 ChargePoint) over real
websockets on loopback: boot, transactions, meter values, profiles, security, bad frames."""

from __future__ import annotations

import base64
import json
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from daemon_support import wait_for
from ocpp.exceptions import InternalError
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from chargers.base import ChargerError
from chargers.goe_ocpp.config import OcppConfig
from chargers.goe_ocpp.driver import GoEOcppCharger
from divert.core.capabilities import ControlKind
from goe_ocpp.chargepoint import PASSWORD, FakeGoE, basic

from .conftest import Rig, booted, goe_config


def _periods(fake: FakeGoE) -> list[tuple[str, float, int]]:
    with fake.lock:
        profiles = list(fake.received.profiles)
    return [(p["charging_profile_purpose"],
             float(p["charging_schedule"]["charging_schedule_period"][0]["limit"]),
             int(p["charging_schedule"]["charging_schedule_period"][0]["number_phases"]))
            for p in profiles]


def test_boot_sets_sample_interval_and_a_conservative_default(rig: Rig) -> None:
    driver = rig.driver(goe_config())
    caps = driver.connect()  # connecting twice is harmless
    assert (caps.control, caps.step_a, caps.phases, caps.phase_switching) == (
        ControlKind.CURRENT, 1.0, 3, True)
    with pytest.raises(ChargerError, match=r"goe-1 is not connected .* has not connected yet"):
        driver.read()
    fake = rig.goe()
    fake.connect()
    reply = fake.boot()
    assert (reply.status, reply.interval) == ("Accepted", 300)
    wait_for(lambda: fake.limit() is not None, what="the boot profile")
    assert fake.received.config == [("MeterValueSampleInterval", "2")]
    assert fake.received.clears == 1
    assert _periods(fake) == [("TxDefaultProfile", 0.0, 3)]
    # After a boot the go-e reports its status by itself; unknown until it does.
    assert fake.received.triggers == []
    assert driver.read().state == "status unknown"
    fake.status("Available")
    reading = driver.read()
    assert (reading.vehicle_connected, reading.charging, reading.power_w, reading.state) == (
        False, False, 0.0, "no vehicle")


def _vendor_error() -> InternalError:
    """A CALLERROR whose code OCPP does not name (the `ocpp` package has no class for it)."""
    error = InternalError(description="busy")
    error.code = "VendorBusy"
    return error


@pytest.mark.parametrize(("failing", "code"), [
    ("config", "InternalError"), ("clear", "InternalError"), ("config", "VendorBusy")])
def test_boot_profile_arrives_when_the_charger_answers_callerror(rig: Rig, failing: str,
                                                                 code: str) -> None:
    """A go-e that answers ChangeConfiguration (or ClearChargingProfile) with a CALLERROR,
    even one with a code OCPP does not name, still gets the 0 A default profile, and nothing
    else before it."""
    driver = rig.driver(goe_config())
    fake = rig.goe()
    error = InternalError(description="not today") if code == "InternalError" else \
        _vendor_error()
    if failing == "config":
        fake.config_error = error
    else:
        fake.clear_error = error
    fake.connect()
    fake.boot()
    wait_for(lambda: fake.limit() is not None, what="the boot profile")
    assert fake.received.config == [("MeterValueSampleInterval", "2")]
    assert fake.received.clears == 1
    assert _periods(fake) == [("TxDefaultProfile", 0.0, 3)]
    assert fake.limit() == (0.0, 3)
    driver.set_current(8.0)
    driver.enable(True)
    assert _periods(fake)[-1] == ("TxDefaultProfile", 8.0, 3)


def test_reconnect_without_boot_clears_and_sets_the_default_first(rig: Rig) -> None:
    driver, fake = booted(rig)
    fake.disconnect()
    again = rig.goe()
    again.clear_error = InternalError(description="busy")
    again.connect()
    again.heartbeat()  # an accepted charger speaks first; divert answers, then sets up
    wait_for(lambda: again.limit() is not None, what="the default profile")
    assert again.received.clears == 1
    assert _periods(again)[0] == ("TxDefaultProfile", 0.0, 3)
    assert driver.read().state != ""


def test_transaction_meter_values_and_profiles_that_follow(rig: Rig) -> None:
    driver, fake = booted(rig)
    fake.status("Preparing")
    # The daemon's start: phases, current, then enable; one profile reaches the charger.
    driver.set_phases(3)
    driver.set_current(10.9)  # the go-e takes whole amperes: rounded down
    driver.enable(True)
    assert _periods(fake)[-1] == ("TxDefaultProfile", 10.0, 3)
    n = len(_periods(fake))
    tx = fake.start_transaction(meter_start_wh=1000)
    fake.status("Charging")
    assert fake.draw(energy_wh=1500) == (10.0, 3)
    r = driver.read()
    assert (r.power_w, r.current_a, r.voltage_v, r.phases, r.energy_wh) == (
        pytest.approx(10.0 * 230 * 3, abs=1), 10.0, 230.0, 3, 1500.0)
    assert (r.charging, r.vehicle_connected, r.state) == (True, True, "charging")
    assert _periods(fake)[n:] == []  # the transaction started under the default profile
    # During the transaction each change also goes out as the transaction's TxProfile.
    rig.clock.now_s += 1
    driver.set_current(7.0)
    assert _periods(fake)[n:] == [("TxDefaultProfile", 7.0, 3), ("TxProfile", 7.0, 3)]
    assert fake.active_profile()["transaction_id"] == tx  # type: ignore[index]
    fake.draw()
    assert driver.read().power_w == pytest.approx(7.0 * 230 * 3, abs=1)
    # A phase switch at low surplus: one phase, through numberPhases.
    driver.set_phases(1)
    assert fake.limit() == (7.0, 1)
    fake.draw()
    r = driver.read()
    assert (r.power_w, r.phases) == (pytest.approx(7.0 * 230, abs=1), 1)
    # Pause: a 0 A limit, then resume at the set current.
    driver.enable(False)
    assert fake.limit() == (0.0, 1)
    fake.status("SuspendedEVSE")
    fake.draw()
    assert driver.read().power_w == 0.0
    assert driver.read().state == "paused by the charger"
    driver.enable(True)
    assert fake.limit() == (7.0, 1)
    # The transaction ends: later changes go to the default profile only.
    fake.stop_transaction(meter_stop_wh=2000)
    fake.status("Finishing")
    n = len(_periods(fake))
    driver.set_current(8.0)
    assert _periods(fake)[n:] == [("TxDefaultProfile", 8.0, 1)]
    r = driver.read()
    assert (r.vehicle_connected, r.charging) == (True, False)


def test_repeated_commands_collapse_then_reassert(rig: Rig) -> None:
    driver, fake = booted(rig)
    driver.set_current(9.0)
    driver.enable(True)
    n = len(_periods(fake))
    driver.set_current(9.0)  # the same step: nothing new
    driver.enable(True)
    assert len(_periods(fake)) == n
    rig.clock.now_s += 60  # the daemon's re-assert: sent again
    driver.enable(True)
    assert _periods(fake)[n:] == [("TxDefaultProfile", 9.0, 3)]
    driver.set_current(40.0)  # never above the configured maximum
    assert fake.limit() == (16.0, 3)


def test_a_charger_that_ignores_profiles_is_reported(rig: Rig,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    driver, fake = booted(rig)
    # Judged after 20 s, reported after two breaking samples (FollowCheck's defaults).
    driver.set_current(6.0)
    driver.enable(True)
    fake.start_transaction()
    fake.status("Charging")
    for _ in range(3):
        rig.clock.now_s += 10
        fake.meter((16.0, 16.0, 16.0), offered_a=16.0)
    state = driver.read().state
    assert state == "charging; ignores the profile (6 A on 3 phases): offers 16.0 A"
    assert "goe-1: ignores the profile" in caplog.text
    rig.clock.now_s += 10
    fake.meter((6.0, 6.0, 6.0), offered_a=6.0)
    assert driver.read().state == "charging"


def test_a_refused_profile_is_an_error(rig: Rig) -> None:
    driver, fake = booted(rig)
    fake.profile_answer = "Rejected"
    with pytest.raises(ChargerError,
                       match=re.escape("answered Rejected to the default profile 0 A")):
        driver.set_current(8.0)
    fake.profile_error = _vendor_error()
    with pytest.raises(ChargerError, match=r"refused SetChargingProfile: .*VendorBusy"):
        driver.enable(True)


def test_disconnect_reconnect_and_reboot(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    driver, fake = booted(rig, goe_config(default_current_a=6.0))
    driver.set_current(12.0)
    driver.enable(True)
    fake.disconnect()
    wait_for(lambda: "disconnected" in caplog.text, what="the disconnect")
    with pytest.raises(ChargerError, match=r"is not connected to divert's OCPP server \(lost"):
        driver.read()
    # A command while it is away fails, and reaches the charger when it is back.
    with pytest.raises(ChargerError, match=re.escape("gets 8 A on 3 phases when it connects")):
        driver.set_current(8.0)
    fake.connect()  # reconnects without a reboot: once it speaks, the setpoint follows
    assert fake.received.triggers == []
    fake.status("Charging")
    wait_for(lambda: fake.limit() == (8.0, 3), what="the setpoint after reconnecting")
    assert fake.received.triggers == ["StatusNotification", "MeterValues"]
    # A reboot: the conservative default first, then divert's setpoint.
    fake.received.profiles.clear()
    fake.boot()
    wait_for(lambda: len(_periods(fake)) == 2, what="the boot profiles")
    assert _periods(fake) == [("TxDefaultProfile", 6.0, 3), ("TxDefaultProfile", 8.0, 3)]
    # A second connection under the same id replaces the first.
    second = rig.goe()
    second.connect()
    second.status("Charging")
    wait_for(lambda: second.limit() == (8.0, 3), what="the setpoint on the new connection")


def test_chargers_share_one_server(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    d1, f1 = booted(rig, goe_config("goe-1"))
    d2, f2 = booted(rig, goe_config("goe-2"))
    d1.set_current(6.5)
    d1.enable(True)
    d2.set_current(11.0)
    d2.enable(True)
    assert (f1.limit(), f2.limit()) == ((6.0, 3), (11.0, 3))
    d1.close()
    del rig.drivers["goe-1"]
    wait_for(lambda: "goe-1: disconnected" in caplog.text, what="goe-1 dropped")
    d2.set_current(12.0)
    assert f2.limit() == (12.0, 3)


# --- security: refused at the handshake, logged, never reaching the handlers ---------------


@pytest.mark.parametrize(("path", "box_id", "password", "protocols", "status", "why"), [
    ("goe-9", "goe-9", PASSWORD, None, 404, "unknown charge box id 'goe-9'"),
    ("goe-1", "goe-1", "wrong-password-123", None, 401, "wrong user name or password"),
    ("goe-1", "goe-2", PASSWORD, None, 401, "wrong user name or password"),
    ("goe-1", "goe-1", None, None, 401, "no credentials"),
    ("goe-1", "goe-1", PASSWORD, ["ocpp2.0.1"], 400, "subprotocol ocpp1.6 required"),
])
def test_refused_at_the_handshake(rig: Rig, caplog: pytest.LogCaptureFixture, path: str,
                                  box_id: str, password: str | None,
                                  protocols: list[str] | None, status: int, why: str) -> None:
    driver = rig.driver(goe_config())
    intruder = rig.goe(box_id, path=path, password=password, subprotocols=protocols)
    with pytest.raises(InvalidStatus) as err:
        intruder.connect()
    assert err.value.response.status_code == status
    assert f"OCPP: refused /{path} from 127.0.0.1:" in caplog.text
    assert why in caplog.text
    with pytest.raises(ChargerError, match="is not connected to divert"):
        driver.read()


def test_credentials_that_are_not_utf8_get_401(rig: Rig) -> None:
    rig.driver(goe_config())
    token = base64.b64encode(b"goe-1:\xff\xfe-not-utf8").decode()
    with pytest.raises(InvalidStatus) as err, ws_connect(
            f"{rig.base}/goe-1", subprotocols=[Subprotocol("ocpp1.6")],
            additional_headers={"Authorization": f"Basic {token}"}, open_timeout=5):
        pass
    assert err.value.response.status_code == 401


def test_deeply_nested_frame_gets_a_callerror(rig: Rig) -> None:
    rig.driver(goe_config("goe-2"))
    with ws_connect(f"{rig.base}/goe-2", subprotocols=[Subprotocol("ocpp1.6")],
                    additional_headers=basic("goe-2", PASSWORD), open_timeout=5) as ws:
        ws.send("[" * 20_000 + "]" * 20_000)  # within the 64 KiB frame limit
        reply = json.loads(ws.recv(timeout=5))
        assert reply[:3] == [4, "-1", "FormationViolation"]
        ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
        assert json.loads(ws.recv(timeout=5))[:2] == [3, "h1"]  # the session goes on


def test_the_id_is_the_last_path_segment(rig: Rig) -> None:
    rig.driver(goe_config())
    fake = rig.goe(path="ocpp/chargers/goe-1")
    fake.connect()
    assert fake.boot().status == "Accepted"


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        from cryptography import x509  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl CLI is installed")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
        return cert, key
    return _with_cryptography(cert, key)


def _with_cryptography(cert: Path, key: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(pk.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.SubjectAlternativeName(
             [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
         .sign(pk, hashes.SHA256()))
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cert, key


def test_tls_only_when_a_certificate_is_configured(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    rig = Rig(OcppConfig(listen=f"127.0.0.1:{port}", tls_cert=cert, tls_key=key), "wss")
    try:
        driver = rig.driver(goe_config())
        trusting = ssl.create_default_context(cafile=str(cert))
        fake = rig.goe(ssl_context=trusting)
        fake.connect()
        assert fake.boot().status == "Accepted"
        # Plain text to the TLS port: refused in the TLS handshake, and logged.
        plain = FakeGoE(f"ws://127.0.0.1:{port}/goe-1", "goe-1")
        rig.fakes.append(plain)
        with pytest.raises((InvalidMessage, OSError)):
            plain.connect()
        wait_for(lambda: "TLS handshake failed: HTTP_REQUEST (plain ws://" in caplog.text,
                 what="the refusal in the log")
        # TLS with a wrong password is still refused.
        wrong = rig.goe(password="not-the-password-1", ssl_context=trusting)
        with pytest.raises(InvalidStatus):
            wrong.connect()
        driver.read()  # the good connection is unaffected
    finally:
        rig.close()


def test_unusable_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    rig = Rig(OcppConfig(listen=f"127.0.0.1:{free_port()}", tls_cert=tmp_path / "none.pem",
                         tls_key=tmp_path / "none.key"))
    with pytest.raises(ChargerError, match=re.escape("ocpp.tls_cert/tls_key: cannot load")):
        rig.driver(goe_config())


def test_listen_address_in_use_is_a_clear_error(rig: Rig) -> None:
    rig.driver(goe_config())
    other = GoEOcppCharger(goe_config("goe-2"), OcppConfig(listen=rig.ocpp.listen,
                                                         heartbeat_s=60), 1.0)
    with pytest.raises(ChargerError, match=re.escape("ocpp.listen: cannot listen on")):
        other.connect()


# --- malformed frames: CALLERRORs, and the server keeps serving ---------------------------


def _raw(rig: Rig, box_id: str) -> Any:
    return ws_connect(f"{rig.base}/{box_id}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                      additional_headers=basic(box_id, PASSWORD), open_timeout=5)


def _answer(ws: Any, frame: str) -> list[Any]:
    ws.send(frame)
    while True:
        reply = json.loads(ws.recv(timeout=5))
        if reply[0] != 2:  # skip the server's own requests (TriggerMessage on connect)
            return list(reply)
        ws.send(json.dumps([4, reply[1], "NotImplemented", "", {}]))


@pytest.mark.parametrize(("frame", "answer"), [
    ("not json", ["-1", "FormationViolation"]),
    ('{"a": 1}', ["-1", "ProtocolError"]),
    ("[]", ["-1", "ProtocolError"]),
    ('[2, "u1", "Heartbeat"]', ["u1", "ProtocolError"]),
    ('[2, "u2", ["Heartbeat"], {}]', ["u2", "ProtocolError"]),
    ('[2, "u3", "Heartbeat", "x"]', ["u3", "FormationViolation"]),
    ('[7, "u4", "Heartbeat", {}]', ["u4", "ProtocolError"]),
    ('[2, "u5", "FancyAction", {}]', ["u5", "NotSupported"]),
    ('[2, "u6", "ReserveNow", {}]', ["u6", "NotImplemented"]),
    ('[2, "u7", "BootNotification", {"chargePointVendor": 5, "chargePointModel": "m"}]',
     ["u7", "TypeConstraintViolation"]),
    ('[2, "u8", "Heartbeat", {"extra": 1}]', ["u8", "FormationViolation"]),
    ('[2, "u9", "MeterValues", {"connectorId": 1}]', ["u9", "ProtocolError"]),
])
def test_malformed_frames_get_callerrors(rig: Rig, frame: str, answer: list[str]) -> None:
    driver = rig.driver(goe_config())
    rig.driver(goe_config("goe-2"))
    other = rig.goe("goe-2")
    other.connect()
    with _raw(rig, "goe-1") as ws:
        reply = _answer(ws, frame)
        assert reply[0] == 4 and reply[1:3] == answer, reply
        # The same session and the other charger are still served.
        assert _answer(ws, '[2, "ok", "Heartbeat", {}]')[:2] == [3, "ok"]
        assert other.boot().status == "Accepted"
        ws.send('[3, "nobody-asked", {}]')  # a stray reply: dropped, never answered
        ws.send('[4, "x"]')
        assert _answer(ws, '[2, "ok2", "Heartbeat", {}]')[:2] == [3, "ok2"]
        driver.read()
