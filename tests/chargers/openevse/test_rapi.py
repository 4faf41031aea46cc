"""The RAPI codec: the seeds' worked examples, strict decoding, typed replies, and fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargers.openevse import rapi
from chargers.openevse.rapi import EvseState, Frame, RapiError

# ---- worked examples from the seeds and the reference -------------------------------------


def test_seed_worked_examples() -> None:
    # Developer guide, "RAPI over HTTP": $GC^20 → $OK 6 80^1E, and $SC 24^12 → $OK 24^06.
    assert rapi.encode("GC") == "$GC^20"
    assert rapi.parse_current_range(rapi.decode("$OK 6 80^1E")) == rapi.CurrentRange(6, 80)
    assert rapi.encode("SC", ["24"]) == "$SC 24^12"
    reply = rapi.decode("$OK 24^06")
    assert reply.ok and rapi.parse_current_reply(reply) == 24


@pytest.mark.parametrize(("command", "params", "frame"), [
    # The developer guide's command tables (XOR checksums).
    ("SC", ["24", "V"], "$SC 24 V^64"),
    ("FE", [], "$FE^27"), ("FS", [], "$FS^31"), ("FD", [], "$FD^26"),
    ("GS", [], "$GS^30"), ("GG", [], "$GG^24"), ("GE", [], "$GE^26"), ("GV", [], "$GV^35"),
    ("GU", [], "$GU^36"), ("GP", [], "$GP^33"), ("SH", ["10"], "$SH 10^1E"),
    ("FB", ["7"], "$FB 7^37"), ("GM", [], "$GM^2E"),
])
def test_xor_checksums_match_the_guide(command: str, params: list[str], frame: str) -> None:
    assert rapi.encode(command, params) == frame
    assert rapi.decode(frame) == Frame(command, tuple(params), None, "xor")


@pytest.mark.parametrize("frame", [
    # rapi_proc.h v1.0.3 (seed 001): the legacy additive checksum.
    "$FD*AE", "$FE*AF", "$FS*BD", "$GS*BE", "$GG*B2", "$GV*C1", "$GC*AE", "$SE 0*0C",
    "$SE 1*0D", "$FB 7*03", "$SL A*24",
])
def test_additive_legacy_checksums_are_accepted(frame: str) -> None:
    decoded = rapi.decode(frame)
    assert decoded.checksum == "sum"
    body = frame.split("*")[0]
    assert rapi.additive_checksum(body) == int(frame[-2:], 16)


def test_reply_with_additive_checksum_and_without_any() -> None:
    body = "$OK 6 80"
    assert rapi.decode(f"{body}*{rapi.additive_checksum(body):02X}").params == ("6", "80")
    assert rapi.decode(body) == Frame("OK", ("6", "80"), None, None)
    assert rapi.decode("$OK^20\r\n") == Frame("OK", (), None, "xor")  # echo mode adds LF


def test_sequence_ids() -> None:
    frame = rapi.encode("GS", seq=0x5A)
    assert frame.startswith("$GS :5A^")
    assert rapi.decode(frame) == Frame("GS", (), 0x5A, "xor")
    assert rapi.decode(rapi.encode("OK", ["6", "80"], seq=1)).seq == 1
    with pytest.raises(ValueError, match="sequence id"):
        rapi.encode("GS", seq=0)  # 00 is reserved as "no id"
    with pytest.raises(RapiError, match="sequence id"):
        rapi.decode("$OK :00")


@pytest.mark.parametrize(("line", "reason"), [
    ("$OK 6 80^1F", "bad checksum"),
    ("$OK 6 80*1E", "bad checksum"),
    ("OK 6 80", "does not start"),
    ("$0K^20", "bad checksum"),  # the scanned guide's typo: the letter O, not zero
    ("$O", "no two-character command"),
    ("$OKK 1", "longer than two"),
    ("$OK  1", "empty parameter"),
    ("$OK 1^2", "two hex digits"),
    ("$OK 1^2G", "two hex digits"),
    ("$OK 1 :5", "sequence id"),
    ("$OK 1:5A", "misplaced"),
    ("$OK $1", "misplaced"),
    ("$OK\x00 1", "non-printable"),
    ("$OK " + "1" * 300, "longer than"),
])
def test_malformed_frames_are_rejected(line: str, reason: str) -> None:
    with pytest.raises(RapiError, match=reason):
        rapi.decode(line)


def test_encode_refuses_what_cannot_be_framed() -> None:
    for params in (["a b"], [""], ["1^2"], ["$"], [":5A"], ["\r"]):
        with pytest.raises(ValueError, match="parameter"):
            rapi.encode("SC", params)
    with pytest.raises(ValueError, match="two letters"):
        rapi.encode("SCX")


def test_asynchronous_notifications_are_recognised() -> None:
    for line in ("$ST 03^xx", "$WF 02", "$AT 03 03 16 0100", "$AB 00 5.0.1", "$AN 1"):
        frame = rapi.decode(line.split("^")[0])
        assert frame.is_async and not frame.is_reply
    assert rapi.decode("$OK 1").is_reply and not rapi.decode("$OK 1").is_async
    assert not rapi.decode("$GS").is_async


# ---- typed replies ----------------------------------------------------------------------

def test_state_codes_of_the_reference() -> None:
    texts = {code: rapi.state_text(code) for code in (
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0E, 0xFE,
        0xFF)}
    assert texts[0x01] == "no vehicle" and texts[0x03] == "charging"
    assert texts[0xFE] == "sleeping" and texts[0xFF] == "disabled"
    assert texts[0x06] == "fault: GFCI" and texts[0x0E] == "fault: relay closure"
    assert len(set(texts.values())) == len(texts)  # every code has its own words
    faults = {s for s in EvseState if s.is_fault}
    assert {int(s) for s in faults} == {0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0E}
    assert rapi.state_text(0x0C) == "unknown state 0x0C"


@pytest.mark.parametrize(("token", "code"), [
    ("03", 3), ("3", 3), ("0a", 0x0A), ("0A", 0x0A), ("fe", 0xFE), ("ff", 0xFF),
    ("10", 10), ("11", 11), ("14", 14), ("254", 254), ("255", 255),  # old decimal firmware
    ("0c", 0x0C),
])
def test_state_tokens_hex_and_old_decimal(token: str, code: int) -> None:
    assert rapi.parse_state(token) == code


def test_status_parses_old_and_new_firmware() -> None:
    assert rapi.parse_status(rapi.decode("$OK 3 120")) == rapi.Status(3, 120, None)
    new = rapi.parse_status(rapi.decode("$OK fe 0 02 0100"))
    assert new == rapi.Status(0xFE, 0, 2)
    assert new.text == "sleeping" and new.vehicle_connected is True  # the pilot says B
    assert rapi.parse_status(rapi.decode("$OK 01 0")).vehicle_connected is False
    assert rapi.parse_status(rapi.decode("$OK ff 0")).vehicle_connected is None
    assert rapi.parse_status(rapi.decode("$OK 03 5 zz")).pilot is None


def test_measurement_settings_energy_temperatures_version() -> None:
    assert rapi.parse_measurement(rapi.decode("$OK 15980 231500")) == rapi.Measurement(
        15980, 231500)
    assert rapi.parse_measurement(rapi.decode("$OK 0 -1")).voltage_mv is None  # no voltmeter
    s = rapi.parse_settings(rapi.decode("$OK 30 0121^21"))
    assert (s.current_a, s.flags, s.service_level) == (30, 0x0121, 2)
    assert rapi.parse_energy(rapi.decode("$OK 36000 1234")) == rapi.Energy(36000, 1234)
    assert rapi.parse_temperatures(rapi.decode("$OK 235 -2560 0")) == rapi.Temperatures(
        235, None, 0)
    assert rapi.parse_version(rapi.decode("$OK 5.0.1 4.0.1")) == rapi.Version("5.0.1",
                                                                              "4.0.1")
    assert rapi.parse_current_range(rapi.decode("$OK 6 32 16 32")) == rapi.CurrentRange(6, 32)
    assert rapi.parse_current_reply(rapi.decode("$NK 16")) == 16
    assert rapi.parse_current_reply(rapi.decode("$NK")) is None


@pytest.mark.parametrize("line", [
    "$NK", "$OK", "$OK 6", "$OK x 80", "$OK +6 80", "$OK 1_0 20", "$OK 0 0", "$OK 20 10",
])
def test_typed_parsers_reject_bad_replies(line: str) -> None:
    with pytest.raises(RapiError):
        rapi.parse_current_range(rapi.decode(line))


# ---- properties ---------------------------------------------------------------------------

_commands = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=2)
_params = st.lists(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                         exclude_characters="$^*:"), min_size=1, max_size=8),
                   max_size=6)
_seqs = st.none() | st.integers(1, 255)


@settings(max_examples=300, deadline=None)
@given(_commands, _params, _seqs, st.booleans())
def test_encode_decode_round_trip(command: str, params: list[str], seq: int | None,
                                  checksum: bool) -> None:
    frame = rapi.encode(command, params, seq, checksum)
    assert rapi.decode(frame) == Frame(command, tuple(params), seq,
                                       "xor" if checksum else None)
    assert rapi.decode(frame + "\r") == rapi.decode(frame)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_no_input_crashes_the_decoder(line: str) -> None:
    try:
        frame = rapi.decode(line)
    except RapiError:
        return
    # Whatever decodes feeds every typed parser without anything but RapiError.
    for parse in (rapi.parse_version, rapi.parse_current_range, rapi.parse_settings,
                  rapi.parse_status, rapi.parse_measurement, rapi.parse_energy,
                  rapi.parse_temperatures, rapi.parse_current_reply):
        with contextlib.suppress(RapiError):
            parse(frame)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("0123456789abcdefABCDEF -:$^*.xyzOKNST"), max_size=12),
       st.sampled_from(["OK", "NK", "GS", "ST"]))
def test_parsers_on_plausible_frames_raise_only_rapi_errors(chars: list[str],
                                                           command: str) -> None:
    try:
        frame = rapi.decode(f"${command} {''.join(chars)}")
    except RapiError:
        return
    for parse in (rapi.parse_status, rapi.parse_measurement, rapi.parse_settings,
                  rapi.parse_current_range, rapi.parse_temperatures, rapi.parse_energy):
        with contextlib.suppress(RapiError):
            parse(frame)


@settings(max_examples=300, deadline=None)
@given(_commands, _params, _seqs, st.data())
def test_a_changed_character_never_passes_as_a_different_frame(
        command: str, params: list[str], seq: int | None, data: st.DataObject) -> None:
    frame = rapi.encode(command, params, seq)
    at = data.draw(st.integers(0, len(frame) - 1))
    new = data.draw(st.characters(min_codepoint=0x20, max_codepoint=0x7E))
    try:
        decoded = rapi.decode(frame[:at] + new + frame[at + 1:])
    except RapiError:
        return
    # Only a hit on the `^` marker itself can pass: as a frame without checksum (which the
    # driver refuses once it knows the controller checksums its replies), or as the same
    # frame under an additive checksum that happens to match.
    same = (decoded.command, decoded.params, decoded.seq) == (command, tuple(params), seq)
    assert decoded.checksum is None or same
