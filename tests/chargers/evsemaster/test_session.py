"""EVSEMaster session against the strict emulator over real loopback UDP: login, wrong
password, keep-alive, lapse and re-login, offline, malformed and paired datagrams. And the
emulator's own strictness, seen from a raw socket."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from conftest import free_udp_port

from chargers.base import ChargerError
from chargers.evsemaster import protocol as p
from chargers.evsemaster.emulator import BS20, EmulatorTiming, EVSEMasterEmulator, Fault
from chargers.evsemaster.protocol import Cmd
from chargers.evsemaster.session import Session, Timing, discover

SERIAL = "9181102751219513"
PIN = "739184"
CHARGER_CLOCKS = EmulatorTiming(login_interval_s=0.1, heading_interval_s=0.2,
                                status_interval_s=0.2, session_timeout_s=4.0)
APP_CLOCKS = Timing(offline_after_s=1.0, session_lapse_s=3.0, login_retry_s=0.2,
                    password_retry_s=0.5, reply_timeout_s=1.0, tick_s=0.05)
WAIT_S = 10.0  # deadline for anything that should happen


def until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def port() -> int:
    return free_udp_port()


@pytest.fixture
def charger(port: int) -> Iterator[EVSEMasterEmulator]:
    with EVSEMasterEmulator(SERIAL, PIN, broadcast_to=("127.0.0.1", port),
                            timing=CHARGER_CLOCKS) as emulator:
        yield emulator


@pytest.fixture
def open_session(port: int) -> Iterator[Callable[..., Session]]:
    sessions: list[Session] = []

    def make(password: str = PIN, **kwargs: object) -> Session:
        kwargs.setdefault("timing", APP_CLOCKS)
        session = Session(SERIAL, password, port=port, bind_host="127.0.0.1",
                          **kwargs)  # type: ignore[arg-type]
        session.start()
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def test_login_keepalive_and_acks(charger: EVSEMasterEmulator,
                                  open_session: Callable[..., Session]) -> None:
    session = open_session()
    assert session.wait_logged_in(WAIT_S)
    assert session.info == BS20 and session.online
    assert charger.wait(lambda c: c.heading_answers >= 3 and c.status_acks >= 3
                        and c.charging_status_acks >= 3, WAIT_S)
    latest = session.status()
    assert latest is not None
    assert latest[0].current_state == p.CurrentState.READY_TO_CHARGE
    assert session.logged_in and charger.kinds() == ["login"]


def test_wrong_password_is_reported_not_retried_fast(
        charger: EVSEMasterEmulator, open_session: Callable[..., Session],
        caplog: pytest.LogCaptureFixture) -> None:
    session = open_session("000000", timing=Timing(password_retry_s=60, reply_timeout_s=0.5,
                                                   tick_s=0.05))
    assert not session.wait_logged_in(WAIT_S)
    assert session.password_rejected and not session.logged_in
    assert charger.kinds() == ["password_error"]  # one attempt, then the long back-off
    assert "the password was rejected" in caplog.text
    with pytest.raises(ChargerError, match="not logged in"):
        session.request(p.get_version, Cmd.VERSION_RESPONSE)


def test_password_changed_on_the_charger_and_back(charger: EVSEMasterEmulator,
                                                  open_session: Callable[..., Session]) -> None:
    session = open_session()
    assert session.wait_logged_in(WAIT_S) and charger.wait(lambda c: c.logged_in, WAIT_S)
    charger.password = "111111"  # the next ack or ping answer is refused
    assert until(lambda: session.password_rejected)
    assert not session.logged_in
    charger.password = PIN
    assert until(lambda: session.logged_in and not session.password_rejected)


def test_relogin_after_the_charger_forgets_the_session(
        charger: EVSEMasterEmulator, open_session: Callable[..., Session]) -> None:
    session = open_session()
    assert charger.wait(lambda c: c.logged_in, WAIT_S)
    charger.reboot()  # its next ack is answered with PasswordError
    assert charger.wait(lambda c: c.kinds().count("login") >= 2, WAIT_S), charger.kinds()
    assert until(lambda: session.logged_in)


def test_relogin_when_pings_stop(port: int, open_session: Callable[..., Session],
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    quiet = EmulatorTiming(login_interval_s=0.1, heading_interval_s=60, status_interval_s=0.2,
                           session_timeout_s=60)
    with EVSEMasterEmulator(SERIAL, PIN, broadcast_to=("127.0.0.1", port),
                            timing=quiet) as charger:
        open_session(timing=Timing(session_lapse_s=0.5, login_retry_s=0.2, tick_s=0.05))
        assert charger.wait(lambda c: c.kinds().count("login") >= 2, WAIT_S)
    assert "session lapsed" in caplog.text


def test_offline_and_back(charger: EVSEMasterEmulator, open_session: Callable[..., Session],
                          caplog: pytest.LogCaptureFixture) -> None:
    session = open_session()
    assert session.wait_logged_in(WAIT_S) and charger.wait(lambda c: c.logged_in, WAIT_S)
    charger.silent = True
    assert until(lambda: not session.online)
    assert until(lambda: "offline (nothing heard for 1 s)" in caplog.text)
    charger.silent = False
    assert until(lambda: session.online and session.logged_in)


def test_truncated_and_corrupted_datagrams_are_dropped(
        charger: EVSEMasterEmulator, open_session: Callable[..., Session],
        caplog: pytest.LogCaptureFixture) -> None:
    session = open_session()
    assert session.wait_logged_in(WAIT_S)
    charger.inject(Fault.TRUNCATE, 3)
    charger.inject(Fault.CORRUPT, 3)
    assert charger.wait(lambda c: c.faults_left() == 0, WAIT_S)
    acks = charger.status_acks
    assert charger.wait(lambda c: c.status_acks >= acks + 2, WAIT_S)  # still served
    assert caplog.text.count("dropped a malformed packet") == 6
    assert "truncated" in caplog.text and "checksum mismatch" in caplog.text
    assert session.logged_in


def test_paired_datagrams_from_the_emulator(charger: EVSEMasterEmulator,
                                            open_session: Callable[..., Session],
                                            caplog: pytest.LogCaptureFixture) -> None:
    session = open_session()
    assert session.wait_logged_in(WAIT_S)
    charger.inject(Fault.PAIR, 4)
    assert charger.wait(lambda c: c.faults_left() == 0, WAIT_S)
    acks = charger.status_acks + charger.charging_status_acks
    assert charger.wait(lambda c: c.status_acks + c.charging_status_acks >= acks + 4, WAIT_S)
    assert "malformed" not in caplog.text and session.logged_in


class RawPeer:
    """A bare UDP socket on loopback, to play one side of the protocol by hand."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(data, to)

    def collect(self, wanted: set[int], timeout_s: float = WAIT_S,
                ) -> tuple[list[p.Datagram], tuple[str, int]]:
        """Datagrams until every command in `wanted` was seen (or time is up)."""
        got: list[p.Datagram] = []
        source = ("", 0)
        deadline = time.monotonic() + timeout_s
        while not wanted <= {d.command for d in got} and time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            got.extend(p.iter_datagrams(data))
            source = (addr[0], addr[1])
        return got, source

    def close(self) -> None:
        self.sock.close()


def test_session_answers_both_datagrams_of_one_packet(
        port: int, open_session: Callable[..., Session]) -> None:
    peer = RawPeer()
    try:
        session = open_session()
        login = p.encode(SERIAL, None, Cmd.LOGIN, BS20.to_payload())
        peer.send(login, ("127.0.0.1", port))
        got, app = peer.collect({Cmd.REQUEST_LOGIN})
        assert got[-1].password == PIN
        peer.send(p.encode(SERIAL, None, Cmd.LOGIN_RESPONSE, BS20.to_payload()), app)
        peer.collect({Cmd.LOGIN_CONFIRM, Cmd.SYSTEM_TIME})
        assert session.logged_in
        status = p.ACStatus(1, 230.0, 0.0, 0, 1.0, 25.0, None, 0, 2, 2, 13, 0)
        packet = (p.encode(SERIAL, None, Cmd.HEADING)
                  + p.encode(SERIAL, None, Cmd.AC_STATUS, status.to_payload()))
        peer.send(packet, app)
        got, _ = peer.collect({Cmd.HEADING_RESPONSE, Cmd.AC_STATUS_ACK})
        assert {Cmd.HEADING_RESPONSE, Cmd.AC_STATUS_ACK} <= {d.command for d in got}
        assert until(lambda: session.status() is not None)
    finally:
        peer.close()


def test_other_chargers_are_left_alone(port: int, charger: EVSEMasterEmulator,
                                       open_session: Callable[..., Session]) -> None:
    with EVSEMasterEmulator("0123456789abcdef", PIN, broadcast_to=("127.0.0.1", port),
                            timing=CHARGER_CLOCKS) as other:
        open_session()
        assert charger.wait(lambda c: c.logged_in, WAIT_S)
        assert charger.kinds() == ["login"] and other.kinds() == []


def test_configured_host_needs_no_broadcast(open_session: Callable[..., Session]) -> None:
    with EVSEMasterEmulator(SERIAL, PIN, broadcast_to=("127.0.0.1", free_udp_port()),
                            timing=CHARGER_CLOCKS) as charger:
        session = open_session(host=charger.address)
        assert session.wait_logged_in(WAIT_S)


def test_unanswered_request_fails_without_resending(
        charger: EVSEMasterEmulator, open_session: Callable[..., Session]) -> None:
    session = open_session(timing=Timing(reply_timeout_s=0.3, tick_s=0.05))
    assert session.wait_logged_in(WAIT_S)
    charger.silent = True
    start = partial(p.charge_start, current_a=10, user_id="divert", charge_id="1",
                    start_at=datetime.now(UTC))
    with pytest.raises(ChargerError, match=r"no CHARGE_START_RESPONSE within 0\.3 s"):
        session.request(start, Cmd.CHARGE_START_RESPONSE)
    assert charger.starts() == []


def test_busy_port_is_a_clear_error(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        session = Session(SERIAL, PIN, port=port, bind_host="127.0.0.1")
        with pytest.raises(ChargerError, match=f"cannot listen on UDP port {port}"):
            session.start()


def test_discover_lists_every_broadcasting_charger(port: int) -> None:
    telestar = p.LoginInfo(10, "TELESTAR", "EC311S", "hw", 11000, 16, "")
    with EVSEMasterEmulator(SERIAL, PIN, broadcast_to=("127.0.0.1", port),
                            timing=CHARGER_CLOCKS), \
            EVSEMasterEmulator("0123456789abcdef", PIN, info=telestar,
                               broadcast_to=("127.0.0.1", port), timing=CHARGER_CLOCKS):
        seen = discover(1.0, port=port, bind_host="127.0.0.1")
    assert [(s.serial, s.info.brand, s.info.model, s.address[0]) for s in seen] == [
        ("0123456789abcdef", "TELESTAR", "EC311S", "127.0.0.1"),
        (SERIAL, "BESEN", "BS20", "127.0.0.1")]


# --- the emulator, from a raw socket ---------------------------------------------------------

@pytest.fixture
def app(port: int) -> Iterator[RawPeer]:
    peer = RawPeer(port)
    yield peer
    peer.close()


def _logged_in(app: RawPeer, charger: EVSEMasterEmulator) -> tuple[str, int]:
    _, addr = app.collect({Cmd.LOGIN})
    app.send(p.request_login(SERIAL, PIN), addr)
    app.collect({Cmd.LOGIN_RESPONSE})
    app.send(p.login_confirm(SERIAL, PIN), addr)
    assert charger.wait(lambda c: c.logged_in, WAIT_S)
    return addr


def test_emulator_refuses_commands_before_login_and_wrong_passwords(
        app: RawPeer, charger: EVSEMasterEmulator) -> None:
    _, addr = app.collect({Cmd.LOGIN})
    app.send(p.get_version(SERIAL, PIN), addr)
    got, _ = app.collect({Cmd.PASSWORD_ERROR})
    assert Cmd.VERSION_RESPONSE not in {d.command for d in got}
    app.send(p.request_login(SERIAL, "000000"), addr)
    got, _ = app.collect({Cmd.PASSWORD_ERROR})
    assert Cmd.LOGIN_RESPONSE not in {d.command for d in got}
    assert not charger.logged_in


def test_emulator_drops_malformed_datagrams_silently(app: RawPeer,
                                                     charger: EVSEMasterEmulator) -> None:
    addr = _logged_in(app, charger)
    good = p.get_version(SERIAL, PIN)
    app.send(good[:-5] + bytes([good[-5] ^ 1]) + good[-4:], addr)  # checksum no longer fits
    app.send(good[:20], addr)
    assert charger.wait(lambda c: c.rejected == 2, WAIT_S)
    app.send(good + good, addr)  # two in one packet: both answered
    got, _ = app.collect({Cmd.VERSION_RESPONSE})
    assert [d.command for d in got].count(Cmd.VERSION_RESPONSE) >= 1


def test_emulator_drops_the_session_when_pings_go_unanswered(port: int, app: RawPeer) -> None:
    clocks = EmulatorTiming(login_interval_s=0.1, heading_interval_s=0.1,
                            status_interval_s=0.1, session_timeout_s=0.5)
    with EVSEMasterEmulator(SERIAL, PIN, broadcast_to=("127.0.0.1", port),
                            timing=clocks) as charger:
        _logged_in(app, charger)
        app.collect({Cmd.HEADING})  # and never answer it
        assert charger.wait(lambda c: "session_dropped" in c.kinds(), WAIT_S)
        assert not charger.logged_in
        app.collect({Cmd.LOGIN})  # broadcasting again


def _start(app: RawPeer, addr: tuple[str, int], current_a: int = 10,
           at: datetime | None = None) -> p.ChargeStartReply:
    app.send(p.charge_start(SERIAL, PIN, current_a=current_a, user_id="t", charge_id="1",
                            start_at=at or datetime.now(UTC)), addr)
    got, _ = app.collect({Cmd.CHARGE_START_RESPONSE})
    reply = next(p.decode(d) for d in got if d.command == Cmd.CHARGE_START_RESPONSE)
    assert isinstance(reply, p.ChargeStartReply)
    return reply


def test_emulator_start_and_stop_replies(app: RawPeer, charger: EVSEMasterEmulator) -> None:
    addr = _logged_in(app, charger)
    late = _start(app, addr, at=datetime.now(UTC) - timedelta(hours=2))
    assert (late.ok, late.error) == (False, "incorrect time")
    assert _start(app, addr, current_a=32).ok  # the BS20 takes up to 32 A
    again = _start(app, addr)
    assert (again.ok, again.error) == (False, "already charging")
    app.send(p.charge_stop(SERIAL, PIN, user_id="t"), addr)
    got, _ = app.collect({Cmd.CHARGE_STOP_RESPONSE})
    assert p.decode(got[-1]) == p.ChargeStopReply(1, 1, 0)
    charger.plugged = False
    unplugged = _start(app, addr)
    assert (unplugged.ok, unplugged.error) == (False, "plug not inserted")
    assert [(e.kind, e.current_a) for e in charger.events] == [
        ("login", 0), ("refused_start", 10), ("start", 32), ("refused_start", 10), ("stop", 0),
        ("refused_start", 10)]
