"""EVSEMaster protocol: the reference's real captures and generated vectors (§12), framing
faults, the clock convention, and a fuzz test of the decoders."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargers.evsemaster import protocol as p
from chargers.evsemaster.protocol import Cmd, ProtocolError

AMS = ZoneInfo("Europe/Amsterdam")  # the zone the reference decoded and generated them in
BS20 = "9181102751219513"
OTHER = "4957917243506489"

# §12.1: real captures from a Besen BS20.
CAPTURES = {
    1: "06010032009181102751219513ffffffffffff000401092e00000000000000024081589258920102020d"
       "000000000b7b0f02",
    2: "06010019009181102751219513ffffffffffff000308800f02",
    3: "0601001b009181102751219513ffffffffffff0112020108950f02",
    4: "0601003d009181102751219513ffffffffffff0106432e333235322e313132413030380000432e3332"
       "35322e31313241303038000042296d480f780f02",
    5: "0601005f009181102751219513ffffffffffff000101424553454e0000000000000000000000425332"
       "30000000000000000000000000432e333235322e31313241303038000000001b80205757572e455653"
       "452e434f4d00000000122f0f02",
    6: "06010063009181102751219513ffffffffffff0005010d313634393435333532383631383234390101"
       "ffffffffffff62505578383630303739373938353738393234330d62505578000000490002407b0002"
       "408000000005000000050100641ac10f02",
    7: "0601001e009181102751219513ffffffffffff01010162505cdc0a6f0f02",
    8: "0601001e009181102751219513ffffffffffff00070100010010089b0f02",
    9: "0601001e009181102751219513ffffffffffff01010162505cd40a670f02",
    10: "060100480091811027512195133132333435368008013836303037393739383537383932343300000000"
        "000000000000000000000000000000000000000000000000000007cc0f02",
    11: "0601004800495791724350648931323334353680080138363037373134303836373836323433000000"
        "000000000000000000000000000000000000000000000000000000087d0f02",
    12: "06010048009181102751219513313233343536800701383630303739373938353738393234333136343934"
        "35353432313238383039360062505cdd0101ffffffffffff10130c0f02",
    13: "060100480049579172435064893132333435368007013836303737313430383637383632343331363439"
        "343532313538323430303533006250501e0101ffffffffffff1012e30f02",
}

# §12.3: synthetic charger → app datagrams.
THREE_PHASE_STATUS = ("0601003a00918110275121951300000000000000040108fc03e800001af40001e240"
                      "59d8ffff0004010e00001001090603e908f203e70cfb0f02")
PASSWORD_ERROR = "06010019009181102751219513000000000000015502d90f02"
STOP_REPLY = "0601001c009181102751219513000000000000000801010002900f02"
MAX_CURRENT_SET_REPLY = "0601001b0091811027512195130000000000000107010a02980f02"
MAX_CURRENT_GET_REPLY = "0601001b00918110275121951300000000000001070210029f0f02"


def one(hex_text: str) -> p.Datagram:
    datagrams = list(p.iter_datagrams(bytes.fromhex(hex_text)))
    assert len(datagrams) == 1
    return datagrams[0]


def decoded(hex_text: str) -> p.Message | None:
    return p.decode(one(hex_text), AMS)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- §12.1 captures --------------------------------------------------------------------------

def test_capture_1_single_phase_status() -> None:
    d = one(CAPTURES[1])
    assert (d.serial, d.command, d.password) == (BS20, Cmd.AC_STATUS, None)
    assert p.decode(d) == p.ACStatus(
        line_id=1, l1_voltage_v=235.0, l1_current_a=0.0, power_w=0, energy_total_kwh=1475.85,
        inner_temperature_c=26.74, outer_temperature_c=26.74, emergency_button=1,
        gun_state=p.GunState.CONNECTED, output_state=p.OutputState.IDLE,
        current_state=p.CurrentState.READY_TO_CHARGE, errors=0)


def test_capture_2_heading_has_no_payload() -> None:
    d = one(CAPTURES[2])
    assert (d.command, d.payload) == (Cmd.HEADING, b"")
    assert p.decode(d) is None


def test_capture_3_temperature_unit() -> None:
    assert decoded(CAPTURES[3]) == p.ByteSetting(action=p.Action.GET, value=1)


def test_capture_4_short_version_reply() -> None:
    assert decoded(CAPTURES[4]) == p.VersionInfo("C.3252.112A008", "C.3252.112A008",
                                                 0x42296D48, None)


def test_capture_5_login_broadcast() -> None:
    info = decoded(CAPTURES[5])
    assert info == p.LoginInfo(1, "BESEN", "BS20", "C.3252.112A008", 7040, 32, "WWW.EVSE.COM")
    assert isinstance(info, p.LoginInfo)
    assert info.phases == 1 and not info.can_force_single_phase


def test_capture_6_charging_status() -> None:
    at = utc(2022, 4, 8, 21, 32, 8)
    assert decoded(CAPTURES[6]) == p.ChargingStatus(
        port=1, current_state=13, charge_id="1649453528618249", start_type=1, charge_type=1,
        max_duration_min=None, max_energy_kwh=None, param3=None, reservation_at=at,
        user_id="8600797985789243", max_current_a=13, started_at=at, duration_s=73,
        start_energy_kwh=1475.79, energy_now_kwh=1475.84, session_energy_kwh=0.05,
        charge_price=0.05, fee_type=1, charge_fee=1.0)


def test_captures_7_and_9_system_time() -> None:
    assert decoded(CAPTURES[7]) == p.SystemTime(1, utc(2022, 4, 8, 22, 3, 40))
    assert decoded(CAPTURES[9]) == p.SystemTime(1, utc(2022, 4, 8, 22, 3, 32))
    assert p.em_time(utc(2022, 4, 8, 22, 3, 40), AMS) == 0x62505CDC


def test_capture_8_charge_start_reply() -> None:
    reply = decoded(CAPTURES[8])
    assert reply == p.ChargeStartReply(1, 0, 1, 0, 16)
    assert isinstance(reply, p.ChargeStartReply) and reply.ok


@pytest.mark.parametrize(("n", "serial", "user"), [(10, BS20, "8600797985789243"),
                                                   (11, OTHER, "8607714086786243")])
def test_captures_10_11_oem_charge_stop_and_the_encoder(n: int, serial: str, user: str) -> None:
    d = one(CAPTURES[n])
    assert (d.serial, d.command, d.password) == (serial, Cmd.CHARGE_STOP, "123456")
    assert d.payload[17:] == bytes(30)
    assert p.decode(d) == p.ChargeStopRequest(1, user)
    assert p.charge_stop(serial, "123456", user_id=user).hex() == CAPTURES[n]


@pytest.mark.parametrize(("n", "serial", "user", "charge_id", "at"), [
    (12, BS20, "8600797985789243", "1649455421288096", utc(2022, 4, 8, 22, 3, 41)),
    (13, OTHER, "8607714086786243", "1649452158240053", utc(2022, 4, 8, 21, 9, 18)),
])
def test_captures_12_13_oem_charge_start_and_the_encoder(
        n: int, serial: str, user: str, charge_id: str, at: datetime) -> None:
    d = one(CAPTURES[n])
    assert (d.serial, d.command, d.password) == (serial, Cmd.CHARGE_START, "123456")
    assert p.decode(d, AMS) == p.ChargeStartRequest(
        line_id=1, user_id=user, charge_id=charge_id, reservation=False, start_at=at,
        start_type=1, charge_type=1, max_duration_min=None, max_energy_kwh=None,
        param3=0xFFFF, max_current_a=16)
    again = p.charge_start(serial, "123456", current_a=16, user_id=user, charge_id=charge_id,
                           start_at=at, tz=AMS)
    assert again.hex() == CAPTURES[n]


def test_every_capture_checks_with_both_checksum_variants() -> None:
    for hex_text in CAPTURES.values():
        raw = bytes.fromhex(hex_text)
        total = sum(raw[:-4])
        assert total < 65535  # short datagrams: both variants agree
        assert int.from_bytes(raw[-4:-2], "big") == total % 65536 == total % 65535


@pytest.mark.parametrize("n", [1, 3, 4, 5, 6, 7, 8])
def test_charger_side_encoders_reproduce_the_captures(n: int) -> None:
    """The emulator encodes with these; they must write what real units write."""
    d = one(CAPTURES[n])
    message = p.decode(d, AMS)
    assert message is not None
    assert p.encode(d.serial, None, d.command, message.to_payload(AMS)).hex() == CAPTURES[n]


def test_two_datagrams_in_one_packet() -> None:
    packet = bytes.fromhex(CAPTURES[2] + CAPTURES[1])
    assert [d.command for d in p.iter_datagrams(packet)] == [Cmd.HEADING, Cmd.AC_STATUS]


# --- §12.2 generated by emproto: reproduced byte for byte -------------------------------------

SERIAL = "0123456789abcdef"
PIN = "123456"
NOON = utc(2025, 1, 1, 12)
JUNE = utc(2025, 6, 1, 10)


@pytest.mark.parametrize(("built", "expected"), [
    (p.request_login(SERIAL, PIN), "0601001a000123456789abcdef31323334353680020005980f02"),
    (p.login_confirm(SERIAL, PIN), "0601001a000123456789abcdef31323334353680010005970f02"),
    (p.heading_response(SERIAL, PIN), "0601001a000123456789abcdef31323334353680030005990f02"),
    (p.status_ack(SERIAL, PIN), "0601001a000123456789abcdef313233343536800401059b0f02"),
    (p.get_version(SERIAL, PIN), "06010019000123456789abcdef3132333435368106059c0f02"),
    (p.get_setting(SERIAL, PIN, Cmd.MAX_CURRENT),
     "0601001b000123456789abcdef3132333435368107020005a10f02"),
    (p.set_setting(SERIAL, PIN, Cmd.MAX_CURRENT, 10),
     "0601001b000123456789abcdef3132333435368107010a05aa0f02"),
    (p.set_system_time(SERIAL, PIN, NOON, AMS),
     "0601001e000123456789abcdef3132333435368101016774cbd008130f02"),
    (p.charge_start(SERIAL, PIN, current_a=16, user_id="emmgr", charge_id="2025010112001234",
                    start_at=NOON, tz=AMS),
     "06010048000123456789abcdef313233343536800701656d6d67720000000000000000000000323032353031"
     "3031313230303132333400" "6774cbd00101ffffffffffff10137e0f02"),
    (p.charge_start(SERIAL, PIN, current_a=10, user_id="solarsvc",
                    charge_id="20250601ABCDEFGH", start_at=JUNE, line_id=2, max_duration_min=90,
                    max_energy_kwh=7.5, tz=AMS),
     "06010048000123456789abcdef313233343536800702736f6c61727376630000000000000000323032353036"
     "3031414243444546474800683bd0400101005a02eeffff0a11f50f02"),
    (p.charge_start(SERIAL, PIN, current_a=10, user_id="solarsvc",
                    charge_id="20250601ABCDEFGH", start_at=JUNE, line_id=2, max_duration_min=90,
                    max_energy_kwh=7.5, tz=UTC),
     "06010048000123456789abcdef313233343536800702736f6c61727376630000000000000000323032353036"
     "3031414243444546474800683bb4200101005a02eeffff0a11b90f02"),
    (p.charge_stop(SERIAL, PIN, user_id="emmgr"),
     "06010048000123456789abcdef313233343536800801656d6d67720000000000000000000000000000000000"
     "00000000000000000000000000000000000000000000000007e50f02"),
    (p.request_charging_status(SERIAL, PIN),
     "0601001a000123456789abcdef313233343536800600059c0f02"),
], ids=["request-login", "login-confirm", "heading-response", "status-ack", "get-version",
        "get-max-current", "set-max-current", "set-time", "start-16A", "start-10A-limits",
        "start-10A-utc", "stop", "request-charging-status"])
def test_generated_vectors_byte_for_byte(built: bytes, expected: str) -> None:
    assert built.hex() == expected
    d = one(expected)  # and they decode back
    assert (d.serial, d.password) == (SERIAL, PIN)


def test_generated_charge_start_decodes_to_its_parameters() -> None:
    d = one("06010048000123456789abcdef313233343536800702736f6c617273766300000000000000003230"
            "323530363031414243444546474800683bd0400101005a02eeffff0a11f50f02")
    assert p.decode(d, AMS) == p.ChargeStartRequest(
        line_id=2, user_id="solarsvc", charge_id="20250601ABCDEFGH", reservation=False,
        start_at=JUNE, start_type=1, charge_type=1, max_duration_min=90, max_energy_kwh=7.5,
        param3=0xFFFF, max_current_a=10)


# --- §12.3 synthetic ---------------------------------------------------------------------------

def test_three_phase_status() -> None:
    status = decoded(THREE_PHASE_STATUS)
    assert status == p.ACStatus(
        line_id=1, l1_voltage_v=230.0, l1_current_a=10.0, power_w=6900,
        energy_total_kwh=1234.56, inner_temperature_c=30.0, outer_temperature_c=None,
        emergency_button=0, gun_state=4, output_state=1, current_state=14, errors=0x1001,
        l2_voltage_v=231.0, l2_current_a=10.01, l3_voltage_v=229.0, l3_current_a=9.99)
    assert isinstance(status, p.ACStatus) and status.error_bits == (0, 12)
    assert one(THREE_PHASE_STATUS).password is None  # zero filler, like 0xFF
    assert status.to_payload() == one(THREE_PHASE_STATUS).payload


def test_synthetic_replies() -> None:
    d = one(PASSWORD_ERROR)
    assert (d.command, d.payload, p.decode(d)) == (Cmd.PASSWORD_ERROR, b"", None)
    assert decoded(STOP_REPLY) == p.ChargeStopReply(1, 1, 0)
    assert decoded(MAX_CURRENT_SET_REPLY) == p.MaxCurrentSetting(p.Action.SET, 10)
    assert decoded(MAX_CURRENT_GET_REPLY) == p.MaxCurrentSetting(p.Action.GET, 16)


# --- framing faults and variants ----------------------------------------------------------------

def _reframe(raw: bytes, checksum: int) -> bytes:
    return raw[:-4] + checksum.to_bytes(2, "big") + raw[-2:]


def test_long_datagrams_pass_with_either_checksum_variant() -> None:
    raw = p.encode(BS20, None, Cmd.CURRENT_CHARGE_RECORD, b"\xff" * 300)
    total = sum(raw[:-4])
    assert total % 65535 != total % 65536
    for variant in (total % 65536, total % 65535):
        assert one(_reframe(raw, variant).hex()).payload == b"\xff" * 300
    with pytest.raises(ProtocolError, match="checksum"):
        one(_reframe(raw, (total + 7) % 65536).hex())


@pytest.mark.parametrize(("packet", "message"), [
    (bytes.fromhex(CAPTURES[2])[:24], "too short"),
    (b"\x07" + bytes.fromhex(CAPTURES[2])[1:], "bad header"),
    (bytes.fromhex(CAPTURES[1])[:40], "truncated"),
    (bytes.fromhex(CAPTURES[2])[:-2] + b"\x0f\x03", "bad tail"),
    (bytes.fromhex(CAPTURES[2])[:3] + b"\x10" + bytes.fromhex(CAPTURES[2])[4:], "length field"),
    (bytes.fromhex(CAPTURES[2]) + b"\x06\x01\x00", "too short"),
    (bytes.fromhex(CAPTURES[2])[:21] + b"\x00" + bytes.fromhex(CAPTURES[2])[22:], "checksum"),
])
def test_malformed_packets_raise_protocol_error(packet: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        list(p.iter_datagrams(packet))


def test_datagrams_before_a_fault_are_kept() -> None:
    packet = bytes.fromhex(CAPTURES[2] + CAPTURES[1])[:-3]
    seen = []
    with pytest.raises(ProtocolError, match="truncated"):
        for d in p.iter_datagrams(packet):
            seen.append(d.command)
    assert seen == [Cmd.HEADING]


@pytest.mark.parametrize(("command", "payload"), [
    (Cmd.AC_STATUS, bytes(24)), (Cmd.CHARGING_STATUS, bytes(73)), (Cmd.LOGIN, bytes(69)),
    (Cmd.CHARGE_START_RESPONSE, bytes(4)), (Cmd.CHARGE_STOP_RESPONSE, bytes(2)),
    (Cmd.VERSION_RESPONSE, bytes(35)), (Cmd.SYSTEM_TIME_RESPONSE, bytes(4)),
    (Cmd.CHARGE_START, bytes(46)), (Cmd.CHARGE_STOP, bytes(48)),
])
def test_short_payloads_raise_protocol_error(command: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        p.decode(one(p.encode(BS20, None, command, payload).hex()))


def test_login_variants() -> None:
    base = p.LoginInfo(22, "TELESTAR", "EC311S", "hw", 11000, 16, "www.example.com")
    raw = base.to_payload()
    assert len(raw) == 70
    long_hotline = raw[:54] + b"support line with a very long".ljust(64, b"\0")
    assert p.LoginInfo.from_payload(long_hotline).hotline == "support line with a very long"
    with_byte70 = p.LoginInfo(22, "TELESTAR", "EC311S", "hw", 11000, 16,
                              "support.example.com/evse", byte70=5)
    raw119 = with_byte70.to_payload()
    assert len(raw119) == 119
    assert p.LoginInfo.from_payload(raw119) == with_byte70
    assert with_byte70.phases == 3 and with_byte70.can_force_single_phase
    raw151 = raw119 + b" CHARGERS".ljust(16, b"\0") + b"-PLUS".ljust(16, b"\0")
    wide = p.LoginInfo.from_payload(raw151)
    assert (wide.brand, wide.model) == ("TELESTAR CHARGERS", "EC311S-PLUS")


def test_em_time_follows_the_local_clock_and_dst() -> None:
    winter, summer = utc(2025, 1, 1, 12), utc(2025, 7, 1, 12)
    assert p.em_time(winter, AMS) == int(winter.timestamp()) + 3600 - 8 * 3600
    assert p.em_time(summer, AMS) == int(summer.timestamp()) + 7200 - 8 * 3600
    assert p.em_time(summer, UTC) == int(summer.timestamp()) - 8 * 3600
    for when in (winter, summer):
        assert p.from_em_time(p.em_time(when, AMS), AMS) == when
        assert p.from_em_time(p.em_time(when)) == when  # the system zone both ways
    assert p.from_em_time(0) is None and p.from_em_time(0xFFFFFFFF) is None


def test_encoders_refuse_what_the_charger_cannot_take() -> None:
    with pytest.raises(ValueError, match="6–32 A"):
        p.charge_start(SERIAL, PIN, current_a=5, user_id="x", charge_id="y", start_at=NOON)
    with pytest.raises(ValueError, match="longer than 16"):
        p.charge_stop(SERIAL, PIN, user_id="a user name that is too long")
    with pytest.raises(ValueError, match="6 ASCII"):
        p.request_login(SERIAL, "12345")
    with pytest.raises(ValueError, match="16 hex"):
        p.request_login("0123", PIN)


def test_redacted_hex_masks_the_password() -> None:
    text = p.redacted_hex(p.request_login(SERIAL, "739184"))
    assert "373339313834" not in text and "*" * 12 in text
    assert text.startswith("0601001a000123456789abcdef")


# --- fuzz ------------------------------------------------------------------------------------

def _decode_all(packet: bytes) -> None:
    """What the session does with a packet: frame, then decode every payload."""
    try:
        for d in p.iter_datagrams(packet):
            p.decode(d, AMS)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(packet: bytes) -> None:
    _decode_all(packet)
    _decode_all(b"\x06\x01" + packet)


known_commands = st.sampled_from([int(c) for c in Cmd] + [0x0000, 0x7FFF, 0xFFFF])


@settings(max_examples=300, deadline=None)
@given(command=known_commands, payload=st.binary(max_size=160))
def test_fuzz_well_framed_random_payloads(command: int, payload: bytes) -> None:
    """Valid framing, so every payload decoder sees arbitrary bytes."""
    _decode_all(p.encode(BS20, None, command, payload))


@settings(max_examples=300, deadline=None)
@given(capture=st.sampled_from([*sorted(CAPTURES.values()), THREE_PHASE_STATUS]),
       edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1,
                      max_size=6),
       cut=st.integers(0, 110), reframe=st.booleans(), doubled=st.booleans())
def test_fuzz_mutated_captures(capture: str, edits: list[tuple[int, int]], cut: int,
                               reframe: bool, doubled: bool) -> None:
    raw = bytearray(bytes.fromhex(capture))
    for at, value in edits:
        raw[at % len(raw)] = value
    mutated = bytes(raw)
    if reframe:  # fix length and checksum so the mutation reaches the payload decoder
        payload = mutated[21:-4][:cut] if cut < len(mutated) - 25 else mutated[21:-4]
        mutated = p.encode(BS20, None, int.from_bytes(mutated[19:21], "big"), payload)
    else:
        mutated = mutated[:cut] if cut < len(mutated) else mutated
    _decode_all(mutated + bytes.fromhex(capture) if doubled else mutated)


@pytest.mark.parametrize("offset, raw", [(1, b"\xff\xff"), (3, b"\xff\xff"),
                                          (5, b"\x7f\xff\xff\xff")])
def test_implausible_ac_status_is_refused(offset: int, raw: bytes) -> None:
    """6553.5 V, 655.35 A or 2 GW in a well-formed datagram: refused, not used."""
    good = bytes.fromhex("01092e00000000000000024081589258920102020d00000000")
    assert p.ACStatus.from_payload(good).l1_voltage_v == 235.0
    bad = good[:offset] + raw + good[offset + len(raw):]
    with pytest.raises(ProtocolError, match="implausible"):
        p.ACStatus.from_payload(bad)
