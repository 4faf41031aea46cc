"""EVSEMaster driver: restart-only current control over the LAN protocol.

These units take the current with ChargeStart and keep it for the whole session (reference
§8), so the driver declares `ControlKind.RESTART`: `set_current` only stores the current for
the next start, and the controller turns a worthwhile change into stop, gap, start under the
relay guard. Reads come from the status the charger pushes every few seconds.
"""

from __future__ import annotations

import logging
import math
import random
import time
from datetime import datetime
from functools import partial

from chargers.base import ChargerError, ChargerReading
from chargers.evsemaster import protocol as p
from chargers.evsemaster.config import EVSEMasterConfig, check_password, parse_host
from chargers.evsemaster.protocol import Cmd, CurrentState, GunState, OutputState
from chargers.evsemaster.session import GUESSED_CHARGER_PORT, Session, Timing
from divert.core.capabilities import Capabilities
from divert.netconf import read_secret

log = logging.getLogger(__name__)

USER_ID = "divert"  # shown in the charger's charge records
CONNECT_TIMEOUT_S = 8.0  # first connect: a charger broadcasts Login about every 5 s
STATUS_MAX_AGE_S = 30.0  # pushed every 5–10 s; older is not a reading
SINGLE_PHASE_CHARGE_TYPE = 11
_ACTIVE = (CurrentState.CHARGING, CurrentState.RESERVATION)  # a session ChargeStop would end


class EVSEMasterCharger:
    """Implements Charger and CurrentLimiter (applied at the next start)."""

    def __init__(self, config: EVSEMasterConfig, *, timing: Timing | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.name = config.name
        self._config = config
        self._timing = timing
        self._connect_timeout_s = connect_timeout_s
        self._session: Session | None = None
        self._caps: Capabilities | None = None
        self._line_id = 1
        self._charge_type = 1
        self._next_current_a = int(config.min_current_a)
        self._started_s: float | None = None  # monotonic time of our last accepted start
        self._stopped_s: float | None = None  # and stop
        self._told_mismatch: tuple[int, int] | None = None  # logged once per pair

    def _password(self) -> str:
        c = self._config
        if c.password is not None:
            return c.password.get_secret_value()
        assert c.password_file is not None
        try:
            text = read_secret(c.password_file)
        except ValueError as exc:
            raise ChargerError(str(exc)) from None
        try:
            return check_password(text)
        except ValueError as exc:
            raise ChargerError(f"password_file {c.password_file}: {exc}") from None

    def _open(self) -> tuple[Session, float]:
        """The session, and how long connect may wait for its login: the first time long
        enough for a Login broadcast; a retry does not block the daemon's loop, because the
        session kept listening since."""
        if self._session is not None:
            return self._session, 0.0
        c = self._config
        host = None
        if c.host is not None:
            address, port = parse_host(c.host)
            host = (address, port or GUESSED_CHARGER_PORT)
        session = Session(c.serial, self._password(), port=c.port, host=host,
                          timing=self._timing)
        session.start()
        self._session = session
        return session, self._connect_timeout_s

    def connect(self) -> Capabilities:
        session, wait_s = self._open()
        if not session.wait_logged_in(wait_s):
            if session.password_rejected:
                raise ChargerError(f"charger {session.serial} rejected the password")
            where = (f"at {self._config.host}" if self._config.host else
                     "on the LAN (is its Login broadcast reaching this host?)")
            raise ChargerError(f"not logged in to charger {session.serial} {where} yet")
        info = session.info
        assert info is not None
        c = self._config
        phases = min(c.phases, info.phases)
        if phases != c.phases:
            log.warning("%s: %s %s is a 1-phase unit; using phases = 1", self.name,
                        info.brand, info.model)
        self._line_id, self._charge_type = 1, 1
        if info.phases == 3 and phases == 3:
            # Line 2 = all phases, as emproto and emproto4go send (the OEM app and the
            # `evsemaster` package send 1; no capture of a three-phase start settles it).
            self._line_id = 2
        elif info.phases == 3 and info.can_force_single_phase:
            self._charge_type = SINGLE_PHASE_CHARGE_TYPE
        elif info.phases == 3:
            self._check_single_phase_wiring(session)
        self._caps = c.capabilities(phases).limited(max_current_a=min(32, info.max_current_a),
                                                    min_current_a=6)
        return self._caps

    def _check_single_phase_wiring(self, session: Session) -> None:
        """phases = 1 on a three-phase unit that cannot be told to use one phase: it will
        charge on every live phase, so only a unit wired to one phase is safe."""
        status = session.wait_status(self._connect_timeout_s)
        if status is None:
            raise ChargerError("no status from the charger")
        if sum(1 for v in status.phase_voltages_v if v > 0) > 1:
            raise ChargerError("this 3-phase unit cannot be limited to one phase and has "
                               "more than one phase live; set phases = 3")

    def _live(self) -> Session:
        session = self._session
        if session is None:
            raise ChargerError("not connected")
        if session.password_rejected and not session.logged_in:
            raise ChargerError("charger rejected the password")
        if not session.online:
            raise ChargerError(f"charger {session.serial} is offline (nothing heard for "
                               f"{session.timing.offline_after_s:g} s)")
        return session

    def _fresh_status(self, session: Session) -> p.ACStatus:
        latest = session.status()
        if latest is None:
            raise ChargerError("no status from the charger yet")
        status, age_s = latest
        if age_s > STATUS_MAX_AGE_S:
            raise ChargerError(f"last status is {age_s:.0f} s old")
        return status

    def read(self) -> ChargerReading:
        status = self._fresh_status(self._live())
        currents_a = status.phase_currents_a
        power_w = max(status.power_w, sum(v * i for v, i in zip(status.phase_voltages_v,
                                                                 currents_a, strict=True)))
        drawing = sum(1 for i in currents_a if i >= 0.5)
        return ChargerReading(
            power_w=power_w, current_a=max(currents_a), voltage_v=status.l1_voltage_v or None,
            charging=status.output_state == OutputState.CHARGING,
            vehicle_connected=_plugged(status.gun_state), phases=drawing or None,
            energy_wh=status.energy_total_kwh * 1000, state=_describe(status))

    def set_current(self, current_a: float) -> None:
        """Store the current (A) for the next start; a running session keeps its own."""
        caps = self._caps
        amps = math.floor(current_a + 1e-9)
        if caps is not None:
            amps = int(caps.clamp(amps))
        self._next_current_a = amps

    def _note_running_current(self, session: Session) -> None:
        """Say once when the running session charges at another current than the one set
        (a session started by someone else, or before a restart of divert)."""
        latest = session.charging_status()
        pair = None
        if latest is not None and latest[0].current_state in _ACTIVE:
            pair = (latest[0].max_current_a, self._next_current_a)
        if pair is not None and pair[0] != pair[1] and pair != self._told_mismatch:
            log.info("%s: the running session charges at %d A; %d A applies from the next "
                     "start", self.name, *pair)
        self._told_mismatch = pair

    def _active(self, session: Session) -> bool | None:
        """Whether a session runs: our own start or stop until a newer status confirms it,
        else the charger's status. None: no status to go by."""
        latest = session.status()
        if latest is None:
            return None
        status, age_s = latest
        for since_s, answer in ((self._started_s, True), (self._stopped_s, False)):
            if since_s is not None and age_s >= _age(since_s):
                return answer
        return status.current_state in _ACTIVE or status.output_state == OutputState.CHARGING

    def enable(self, on: bool) -> None:
        session = self._live()
        active = self._active(session)
        if on and active:
            self._note_running_current(session)
            return
        if not on and active is False:
            return
        if on and self._unplugged(session):
            raise ChargerError("no vehicle plugged in")
        if on:
            self._start(session)
        else:
            self._stop(session)

    def _unplugged(self, session: Session) -> bool:
        """The fresh status says no car: a ChargeStart would only be refused."""
        latest = session.status()
        return (latest is not None and latest[1] <= STATUS_MAX_AGE_S
                and latest[0].gun_state == GunState.DISCONNECTED)

    def _start(self, session: Session) -> None:
        amps = self._next_current_a
        now = datetime.now().astimezone()
        charge_id = now.strftime("%Y%m%d%H%M") + f"{random.randrange(10_000):04d}"
        build = partial(p.charge_start, current_a=amps, user_id=USER_ID, charge_id=charge_id,
                        start_at=now, line_id=self._line_id, charge_type=self._charge_type)
        reply = session.request(build, Cmd.CHARGE_START_RESPONSE)
        assert isinstance(reply, p.ChargeStartReply)
        if reply.error_reason == p.START_ALREADY_CHARGING:
            log.info("%s: already charging", self.name)
        elif not reply.ok:
            raise ChargerError(f"charger refused to start: {reply.error}")
        else:
            log.info("%s: started at %d A", self.name, amps)
        self._started_s, self._stopped_s = time.monotonic(), None

    def _stop(self, session: Session) -> None:
        reply = session.request(partial(p.charge_stop, user_id=USER_ID),
                                Cmd.CHARGE_STOP_RESPONSE)
        assert isinstance(reply, p.ChargeStopReply)
        if not reply.ok:
            raise ChargerError(f"charger refused to stop (reason {reply.fail_reason})")
        log.info("%s: stopped", self.name)
        self._started_s, self._stopped_s = None, time.monotonic()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _age(since_s: float) -> float:
    return time.monotonic() - since_s


def _plugged(gun_state: int) -> bool | None:
    if gun_state == GunState.DISCONNECTED:
        return False
    if gun_state in (GunState.CONNECTED, GunState.CONNECTED_LOCKED):
        return True
    return None


def _describe(status: p.ACStatus) -> str:
    """The charger's state in words."""
    if status.errors:
        # Bit n = ERROR_BITS[n] counting from the least significant bit, as emproto reads
        # it; another client names them from the other end and no capture shows an error,
        # so the raw word goes beside the names.
        names = ", ".join(p.ERROR_BITS.get(b, f"error {b}") for b in status.error_bits)
        return f"fault: {names} (error word 0x{status.errors:08X})"
    state = status.current_state
    if state == CurrentState.CHARGING:
        if status.output_state == OutputState.CHARGING:
            return "charging"
        return "started, waiting for the vehicle"
    words: dict[int, str] = {CurrentState.NOT_CONNECTED: "no vehicle",
             CurrentState.READY_TO_CHARGE: "vehicle connected, not charging",
             CurrentState.COMPLETED: "session finished",
             CurrentState.COMPLETED_FULL: "session finished, vehicle full",
             CurrentState.RESERVATION: "start planned",
             CurrentState.WAITING_FOR_SWIPE: "waiting for a card",
             CurrentState.WAITING_FOR_BUTTON: "waiting for the button",
             CurrentState.EVSE_FAULT: "fault: EVSE",
             CurrentState.CHARGING_FAULT_2: "fault: charging",
             CurrentState.CHARGING_FAULT_3: "fault: charging"}
    return words.get(state, f"state {state}")
