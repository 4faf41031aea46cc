"""A logged-in UDP conversation with one EVSEMaster charger, kept alive by a thread.

The charger broadcasts Login while nobody is logged in; the session learns its address from
any datagram with its serial (replies always go to the last source address and port: the
charger's port is not fixed), logs in (RequestLogin → LoginResponse → LoginConfirm),
answers every Heading ping, acknowledges status pushes and logs in again when the session
lapses. The charger counts as offline when nothing was heard for `offline_after_s`.

The password stays inside this object: datagrams are logged with the field masked.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from chargers.base import ChargerError
from chargers.evsemaster import protocol as p
from chargers.evsemaster.protocol import Cmd, ProtocolError

log = logging.getLogger(__name__)

# Where to send a RequestLogin to a configured host before the charger has been heard from
# (two implementations guess this port); its first datagram then gives the real one.
GUESSED_CHARGER_PORT = 7248

Build = Callable[[str, str], bytes]  # (serial, password) → one framed datagram


@dataclass(frozen=True)
class Timing:
    """Session clocks, in s; defaults follow emproto and emproto4go."""

    offline_after_s: float = 11.0  # nothing heard this long: offline
    session_lapse_s: float = 15.0  # no Heading answered this long: log in again
    login_retry_s: float = 5.0
    password_retry_s: float = 60.0  # after a PasswordError answer to a login
    reply_timeout_s: float = 5.0  # ChargeStart/Stop and settings
    tick_s: float = 0.5  # housekeeping period
    status_request_s: float = 3.0  # logged in, no status pushed this long: ask for one


@dataclass(frozen=True)
class Seen:
    """A charger heard on the LAN: its Login broadcast and where it came from."""

    serial: str
    info: p.LoginInfo
    address: tuple[str, int]


_REPLIES = frozenset({
    Cmd.CHARGE_START_RESPONSE, Cmd.CHARGE_STOP_RESPONSE, Cmd.CHARGING_STATUS_RESPONSE,
    Cmd.SYSTEM_TIME_RESPONSE, Cmd.VERSION_RESPONSE, Cmd.MAX_CURRENT_RESPONSE,
    Cmd.NICKNAME_RESPONSE, Cmd.OFFLINE_CHARGE_RESPONSE, Cmd.ALARM_STRATEGY_RESPONSE,
    Cmd.LANGUAGE_RESPONSE,
    Cmd.TEMPERATURE_UNIT_RESPONSE})


def open_socket(bind_host: str, port: int) -> socket.socket:
    """The app-side UDP socket. Bound to all interfaces ("") it also receives broadcasts.

    No address reuse: a second listener on the port would silently take the unicast
    replies of the first, so a busy port is an error instead."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((bind_host, port))
    except OSError:
        sock.close()
        raise
    return sock


def discover(timeout_s: float, port: int = p.APP_PORT, bind_host: str = "") -> list[Seen]:
    """Chargers whose Login broadcast arrives within `timeout_s`, by serial. Raises OSError
    when the port cannot be bound."""
    seen: dict[str, Seen] = {}
    with open_socket(bind_host, port) as sock:
        deadline = time.monotonic() + timeout_s
        while (left_s := deadline - time.monotonic()) > 0:
            sock.settimeout(left_s)
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                break
            try:
                for d in p.iter_datagrams(data):
                    if d.command in (Cmd.LOGIN, Cmd.LOGIN_RESPONSE):
                        seen[d.serial] = Seen(d.serial, p.LoginInfo.from_payload(d.payload),
                                              (addr[0], addr[1]))
            except ProtocolError as exc:
                log.debug("discover: dropped a packet from %s: %s", addr[0], exc)
    return sorted(seen.values(), key=lambda s: s.serial)


class Session:
    """One charger's session. `start()` binds the port and starts the thread; everything
    after is answered from the thread, and `request()` waits for a command's reply."""

    def __init__(self, serial: str, password: str, *, port: int = p.APP_PORT,
                 bind_host: str = "", host: tuple[str, int] | None = None,
                 timing: Timing | None = None) -> None:
        p.serial_bytes(serial)  # ValueError now rather than in the thread
        self.serial = serial
        self._password = password
        self._port = port
        self._bind_host = bind_host
        self.timing = timing or Timing()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        # All below is guarded by _cond.
        self._address = host
        self._last_rx_s: float | None = None
        self._online = False
        self._info: p.LoginInfo | None = None
        self._confirmed = False
        self._confirmed_s = 0.0
        self._last_heading_answer_s = 0.0
        self._login_sent_s: float | None = None  # a RequestLogin awaits its answer
        self._login_refused = False  # a PasswordError came while it waited
        self._next_login_s = 0.0
        self._rejected = False
        self._refusals = 0  # PasswordErrors seen: a pending request() fails fast on one
        self._status: tuple[p.ACStatus, float] | None = None
        self._status_asked_s: float | None = None
        self._charging: tuple[p.ChargingStatus, float] | None = None
        self._replies: dict[int, p.Message | None] = {}

    def __repr__(self) -> str:
        return f"Session(serial={self.serial!r}, port={self._port})"

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the app port and start the thread. ChargerError if the port is taken."""
        try:
            self._sock = open_socket(self._bind_host, self._port)
        except OSError as exc:
            raise ChargerError(f"cannot listen on UDP port {self._port}: {exc.strerror} (is "
                               f"another EVSEMaster app running on this host?)") from None
        self._sock.settimeout(self.timing.tick_s)
        self._thread = threading.Thread(target=self._run, name=f"evsemaster-{self.serial}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()
        with self._cond:
            self._cond.notify_all()

    # --- state, read by the driver ----------------------------------------------------------

    def _logged_in(self, now_s: float) -> bool:
        return self._confirmed and now_s - self._last_heading_answer_s <= \
            self.timing.session_lapse_s

    @property
    def logged_in(self) -> bool:
        with self._cond:
            return self._logged_in(time.monotonic())

    @property
    def online(self) -> bool:
        """Heard from within `offline_after_s`."""
        with self._cond:
            last_s = self._last_rx_s
        return last_s is not None and time.monotonic() - last_s <= self.timing.offline_after_s

    @property
    def password_rejected(self) -> bool:
        """The charger answered our last login with PasswordError."""
        with self._cond:
            return self._rejected

    @property
    def info(self) -> p.LoginInfo | None:
        with self._cond:
            return self._info

    def status(self) -> tuple[p.ACStatus, float] | None:
        """The latest AC status and its age in s."""
        with self._cond:
            if self._status is None:
                return None
            status, at_s = self._status
        return status, time.monotonic() - at_s

    def charging_status(self) -> tuple[p.ChargingStatus, float] | None:
        """The latest charging (session) status and its age in s."""
        with self._cond:
            if self._charging is None:
                return None
            status, at_s = self._charging
        return status, time.monotonic() - at_s

    def wait_logged_in(self, timeout_s: float) -> bool:
        """Block until logged in (True), the password is rejected or time is up (False)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._logged_in(time.monotonic()) or self._rejected
                or self._stop.is_set(), timeout_s) and self._logged_in(time.monotonic())

    def wait_status(self, timeout_s: float) -> p.ACStatus | None:
        with self._cond:
            self._cond.wait_for(lambda: self._status is not None or self._stop.is_set(),
                                timeout_s)
            return None if self._status is None else self._status[0]

    def request(self, build: Build, reply: Cmd, timeout_s: float | None = None) -> p.Message:
        """Send a command and wait for its reply (`reply`: the expected command id).

        ChargerError when not logged in, refused (PasswordError) or unanswered. Never resent:
        an unanswered start may still have started."""
        timeout_s = self.timing.reply_timeout_s if timeout_s is None else timeout_s
        with self._cond:
            if not self._logged_in(time.monotonic()):
                raise ChargerError("not logged in")
            refusals = self._refusals
            self._replies.pop(reply, None)
            self._send(build(self.serial, self._password))
            self._cond.wait_for(lambda: reply in self._replies or self._refusals != refusals
                                or self._stop.is_set(), timeout_s)
            if reply in self._replies:
                message = self._replies.pop(reply)
                if message is None:
                    raise ChargerError(f"malformed {reply.name} reply")
                return message
            if self._refusals != refusals:
                raise ChargerError("refused the command (the session had lapsed; logging "
                                   "in again)")
            raise ChargerError(f"no {reply.name} within {timeout_s:g} s")

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                data = b""
            except OSError as exc:
                if self._stop.is_set():
                    break
                log.warning("charger %s: receive failed: %s", self.serial, exc)
                self._stop.wait(self.timing.tick_s)
                data = b""
            try:
                with self._cond:
                    if data:
                        self._on_packet(data, (addr[0], addr[1]))
                    self._housekeeping(time.monotonic())
            except Exception:  # a bug must not end the session thread
                log.exception("charger %s: unexpected error in the session thread",
                              self.serial)

    def _send(self, data: bytes) -> None:
        if self._sock is None or self._address is None:
            return
        log.debug("charger %s: send %s to %s:%d", self.serial, p.redacted_hex(data),
                  *self._address)
        try:
            self._sock.sendto(data, self._address)
        except OSError as exc:
            log.warning("charger %s: send to %s:%d failed: %s", self.serial, *self._address, exc)

    def _on_packet(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            for d in p.iter_datagrams(data):
                self._on_datagram(d, addr)
        except ProtocolError as exc:
            log.warning("charger %s: dropped a malformed packet (%d bytes) from %s: %s",
                        self.serial, len(data), addr[0], exc)

    def _on_datagram(self, d: p.Datagram, addr: tuple[str, int]) -> None:
        if d.serial != self.serial or not d.from_charger:
            log.debug("ignoring %#06x from %s (serial %s)", d.command, addr[0], d.serial)
            return
        now_s = time.monotonic()
        self._last_rx_s = now_s
        self._address = addr  # the charger's port changes; always answer the last one
        log.debug("charger %s: received %#06x %s", self.serial, d.command, d.payload.hex())
        try:
            message = p.decode(d)
        except ProtocolError as exc:
            log.warning("charger %s: malformed %#06x payload: %s", self.serial, d.command, exc)
            if d.command in _REPLIES:  # fail the waiting request now, not at its timeout
                self._replies[d.command] = None
                self._cond.notify_all()
            return
        cmd = d.command
        if cmd == Cmd.HEADING:
            self._send(p.heading_response(self.serial, self._password))
            self._last_heading_answer_s = now_s
        elif isinstance(message, p.ACStatus):
            self._status = (message, now_s)
            self._send(p.status_ack(self.serial, self._password))
        elif isinstance(message, p.ChargingStatus):
            self._charging = (message, now_s)
            self._send(p.charging_status_ack(self.serial, self._password))
        elif isinstance(message, p.LoginInfo):
            self._info = message
            if cmd == Cmd.LOGIN_RESPONSE:
                self._on_login_response(message, now_s)
            else:
                self._on_login_broadcast(now_s)
        elif cmd == Cmd.PASSWORD_ERROR:
            self._on_password_error(now_s)
        if cmd in _REPLIES:
            self._replies[cmd] = message
        self._cond.notify_all()

    def _on_login_response(self, info: p.LoginInfo, now_s: float) -> None:
        self._send(p.login_confirm(self.serial, self._password))
        was_logged_in = self._logged_in(now_s)
        self._confirmed, self._confirmed_s = True, now_s
        self._rejected = False
        self._login_sent_s, self._login_refused = None, False
        self._last_heading_answer_s = now_s  # the first Heading has a full lapse to arrive
        # Put the charger's clock on ours, as the phone app does: start times are its clock.
        self._send(p.set_system_time(self.serial, self._password, datetime.now(UTC)))
        if not was_logged_in:
            log.info("charger %s: logged in (%s %s, %s, %d A max)", self.serial, info.brand,
                     info.model, "3-phase" if info.phases == 3 else "1-phase",
                     info.max_current_a)

    def _on_login_broadcast(self, now_s: float) -> None:
        # A charger broadcasts only while nobody is logged in (a reboot, a lapse on its
        # side); a few right after our confirm are normal.
        if self._confirmed and now_s - self._confirmed_s > self.timing.reply_timeout_s:
            log.info("charger %s: broadcasting again, so the session has ended; logging in "
                     "again", self.serial)
            self._confirmed = False
        self._maybe_login(now_s)

    def _on_password_error(self, now_s: float) -> None:
        # PasswordError carries nothing to say what it answers: while a login waits, it may
        # still be the answer to an ack sent before. Only a login that gets no
        # LoginResponse within the reply time counts as a rejected password.
        self._refusals += 1
        if self._login_sent_s is not None:
            self._login_refused = True
            return
        if self._confirmed:
            log.info("charger %s: not logged in any more; logging in again", self.serial)
        self._confirmed = False
        self._next_login_s = now_s

    def _maybe_login(self, now_s: float) -> None:
        if self._address is None or self._logged_in(now_s):
            return
        if self._confirmed:
            log.info("charger %s: session lapsed (no keep-alive for %g s); logging in again",
                     self.serial, self.timing.session_lapse_s)
            self._confirmed = False
        if now_s < self._next_login_s or self._login_sent_s is not None:
            return
        self._send(p.request_login(self.serial, self._password))
        self._login_sent_s = now_s
        self._next_login_s = now_s + self.timing.login_retry_s

    def _housekeeping(self, now_s: float) -> None:
        online = (self._last_rx_s is not None
                  and now_s - self._last_rx_s <= self.timing.offline_after_s)
        if online != self._online:
            if online:
                log.info("charger %s: online at %s", self.serial, self._address)
            else:
                log.warning("charger %s: offline (nothing heard for %g s)", self.serial,
                            self.timing.offline_after_s)
            self._online = online
        if (self._login_sent_s is not None
                and now_s - self._login_sent_s > self.timing.reply_timeout_s):
            if self._login_refused:
                if not self._rejected:
                    log.error("charger %s: the password was rejected (check password or "
                              "password_file); trying again every %g s", self.serial,
                              self.timing.password_retry_s)
                self._rejected = True
                self._next_login_s = now_s + self.timing.password_retry_s
                self._cond.notify_all()
            self._login_sent_s, self._login_refused = None, False
        self._maybe_login(now_s)
        self._maybe_ask_status(now_s)

    def _maybe_ask_status(self, now_s: float) -> None:
        """Most units push their status every few seconds; one that does not is asked, with
        both requests the app's table has (0x800D for the AC status, 0x8006 for the
        session)."""
        every_s = self.timing.status_request_s
        if not self._logged_in(now_s):
            return
        last_s = self._status[1] if self._status is not None else self._confirmed_s
        asked_s = self._status_asked_s
        if now_s - last_s < every_s or (asked_s is not None and now_s - asked_s < every_s):
            return
        if asked_s is None:
            log.info("charger %s: no status pushed for %g s; asking for it", self.serial,
                     now_s - last_s)
        self._status_asked_s = now_s
        self._send(p.request_status(self.serial, self._password))
        self._send(p.request_charging_status(self.serial, self._password))
