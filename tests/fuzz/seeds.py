"""Seed inputs for the fuzz harness: real captures and documented examples, the project's own
files, and every case issue 14 listed.

The reference material in ../shared (device guides, protocol captures, the public OpenEVSE
days) adds seeds when it is there; it is read, never copied into the project.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from chargers.evsemaster import protocol as em
from chargers.openevse import rapi

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def _shared_text(*parts: str) -> str:
    path = SHARED.joinpath(*parts)
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def _shared_seeds() -> str:
    folder = SHARED / "seeds"
    if not folder.is_dir():
        return ""
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(folder.glob("*.txt")))


# --- MQTT feed payloads (payload, json_path) ------------------------------------------------

FEEDS: list[tuple[bytes, str | None]] = [
    (b"1234", None), (b" -12.5\n", None), (b"1e3", None), (b"0", None), (b"+5", None),
    (b'{"Time":"2024-04-20T10:00:00","ENERGY":{"Total":1234.5,"Power":412,"Voltage":231,'
     b'"Current":1.8}}', "ENERGY.Power"),
    (b'{"ENERGY":{"Power":[412,0,15]}}', "ENERGY.Power.2"),
    (b'{"value": "17.5"}', "value"), (b'{"power": {"total": -3.2}}', "power.total"),
    (b'{"phases": [100, 200, 300]}', "phases.1"), (b'[{"w": 1}, {"w": 2}]', "1.w"),
    (b'{"id":0,"a_act_power":-1234.5,"total_act_power":-2000.1}', "total_act_power"),
    (b'{"soc": 55}', "soc"),
    # Issue 14
    ("１２".encode(), None), ("١٢".encode(), None), ("\xa012".encode(), None), (b"1_000", None),
    (b"1_0", None), (b'{"phases": [100, 200, 300]}', "phases.-1"),
    (b"[" * 100_000 + b"]" * 100_000, "0"), (b'{"v": 1' + b"0" * 400 + b"}", "v"),
    (b'{"v": "' + "１２".encode() + b'"}', "v"),
]
FEED_PATHS = [None, "value", "ENERGY.Power", "phases.1", "a.0.b", "v", "0", "phases.-1", ""]

# Forecast feed payloads in the three shapes it takes (unix and ISO times).
FORECASTS = [json.dumps(f).encode() for f in [
    {"1717236000": 1.5, "1717239600": 2.25},
    [[1717236000, 1500], [1717239600, 2100]],
    [{"period_start": "2024-06-01T12:00:00+02:00", "watts": 800},
     {"period_start": "2024-06-01T12:30:00Z", "pv_estimate": "0.9"}],
    {"result": {"2024-06-01T10:00:00Z": 1.5}},
    {"1717236000": 10**400}, {"nan": 1}, {"1700000000": "１２"},
]]


# --- OpenEVSE RAPI lines and WiFi-module HTTP bodies ----------------------------------------

def _framed(text: str) -> list[str]:
    """A documented reply with its XOR and legacy checksums, and with a sequence id."""
    command, *params = text[1:].split(" ")
    return [rapi.encode(command, params), rapi.encode(command, params, seq=0x5A),
            rapi.encode(command, params, checksum=False)]


@cache
def rapi_lines() -> list[bytes]:
    replies = ["$OK", "$NK", "$OK 6 80", "$OK 24", "$OK 3 1234", "$OK 03 0 01", "$OK fe 0 02",
               "$OK 254 0", "$OK 1234 230000", "$OK -1 0", "$OK 5 80000", "$OK 260 -2560 -2560",
               "$OK 36 0029", "$OK D4.10.1 4.0.1", "$OK 7.1.3 5.0.1", "$OK v5.0.1.EU 5.1.0",
               "$ST 03", "$ST fe", "$WF 2", "$AT 03 01 80 0", "$AB 00 1.2.3", "$NK 32"]
    lines = [line for reply in replies for line in _framed(reply)]
    documented = _shared_seeds() + _shared_text("reference", "openevse-rapi.md")
    lines += sorted({m.group(0).rstrip() for m in
                     re.finditer(r"\$[A-Z0-9]{2}(?: [^\s^*<>|`\\]+)*(?:[\^*][0-9A-Fa-f]{2})?",
                                 documented)})
    return [line.encode("ascii", "replace") for line in lines]


@cache
def http_bodies() -> list[bytes]:
    bodies = ['{"cmd":"$GS","ret":"$OK 3 1234^2B"}', '{"cmd":"$GS","ret":"$NK^21"}',
              '{"cmd":"$GS","error":"RAPI_RESPONSE_TIMEOUT"}', '{"cmd":"$GS"}',
              "<html><body>$GS&gt;$OK 3 1234^2B<p></body></html>", "$OK 6 80^1E",
              "[" * 20_000 + "]" * 20_000]
    return [b.encode() for b in bodies]


# --- EVSEMaster datagrams --------------------------------------------------------------------

SERIAL = "0123456789abcdef"
_WHEN = datetime(2025, 1, 1, 12, tzinfo=UTC)


@cache
def evsemaster_packets() -> list[bytes]:
    """Every message kind framed by the protocol module itself, plus the real captures."""
    messages: list[tuple[int, em.Message]] = [
        (em.Cmd.LOGIN, em.LoginInfo(1, "BESEN", "BS20", "C.3252.112A008", 7040, 32,
                                    "WWW.EVSE.COM")),
        (em.Cmd.LOGIN_RESPONSE, em.LoginInfo(24, "X", "Y", "Z", 22000, 32, "h" * 40, 5)),
        (em.Cmd.AC_STATUS, em.ACStatus(1, 230.0, 10.0, 6900, 1234.56, 30.0, None, 0, 4, 1, 14,
                                       0x1001, 231.0, 10.01, 229.0, 9.99)),
        (em.Cmd.AC_STATUS, em.ACStatus(1, 235.0, 0.0, 0, 1475.85, 26.74, 26.74, 1, 2, 2, 13,
                                       0)),
        (em.Cmd.CHARGING_STATUS, em.ChargingStatus(
            1, 14, "1649453528618249", 1, 1, None, None, None, _WHEN, "8600797985789243", 13,
            _WHEN, 73, 1475.79, 1475.84, 0.05, 0.05, 1, 1.0)),
        (em.Cmd.CHARGE_START_RESPONSE, em.ChargeStartReply(1, 0, 1, 0, 16)),
        (em.Cmd.CHARGE_STOP_RESPONSE, em.ChargeStopReply(1, 1, 0)),
        (em.Cmd.VERSION_RESPONSE, em.VersionInfo("C.3252.112A008", "C.3252.112A008",
                                                 0x42296D48, 1)),
        (em.Cmd.MAX_CURRENT_RESPONSE, em.MaxCurrentSetting(1, 10)),
        (em.Cmd.LANGUAGE_RESPONSE, em.ByteSetting(2, 1)),
        (em.Cmd.NICKNAME_RESPONSE, em.NicknameSetting(2, "garage")),
        (em.Cmd.SYSTEM_TIME_RESPONSE, em.SystemTime(1, _WHEN)),
        (em.Cmd.CHARGE_START, em.ChargeStartRequest(1, "emmgr", "2025010112001234", False,
                                                    _WHEN, 1, 1, 90, 7.5, 0xFFFF, 16)),
        (em.Cmd.CHARGE_STOP, em.ChargeStopRequest(1, "emmgr")),
    ]
    out = [em.encode(SERIAL, "123456", cmd, m.to_payload(UTC)) for cmd, m in messages]
    out += [em.encode(SERIAL, None, cmd, b"") for cmd in (em.Cmd.HEADING, em.Cmd.PASSWORD_ERROR)]
    out.append(out[0] + out[2])  # two datagrams in one packet
    captures = _shared_text("reference", "evsemaster-protocol.md")
    out += [bytes.fromhex(h) for h in sorted(set(re.findall(r"`(0601[0-9a-f]{42,})`",
                                                            captures)))]
    return out


EVSEMASTER_COMMANDS = sorted(int(c) for c in em.Cmd)


# --- PSP EVSE WebAPI replies --------------------------------------------------------------

@cache
def psp_bodies() -> list[bytes]:
    own = [
        {"TimeStamp": 179760, "SystemVersion": "0.9.1", "EvseState": 4,
         "ThreePhaseCharging": True, "ActualCurrent": 16, "ActualPower": 11040,
         "ActualPowerAvailable": 22080, "ActualEnergy": 0, "StartStopAllowed": True,
         "ChargerStarted": True},
        {"ChargeCurrent": 6, "Charge3Phase": True, "ControlStrategy": 1, "Meter2Type": 7,
         "Meter2Ip": "192.168.0.30", "ChargeAutoStart": True},
        {"SystemVersion": "0.9.2", "ProductType": "01100200", "MAC": "E0:E2:E6:52:AA:D4",
         "GeneralInfo": "ok"},
    ]
    bodies = [json.dumps(o, indent=6).encode() for o in own]
    # The guide's examples (shared/seeds): every JSON object in it that parses.
    text = _shared_seeds() + _shared_text("reference", "psp-evse-webapi.md")
    for start in (m.start() for m in re.finditer(r"(?m)^\s*\{\s*$", text)):
        depth = 0
        for end in range(start, min(len(text), start + 5000)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0 and text[end] == "}":
                try:
                    json.loads(text[start:end + 1])
                except ValueError:
                    break
                bodies.append(text[start:end + 1].encode())
                break
    bodies += [b'{"EvseState": ' + b"9" * 400 + b"}", b"[" * 50_000, b'{"ActualPower": 1e999}']
    return bodies


# --- OCPP 1.6 frames and meter values ------------------------------------------------------

METER_VALUE = [{"timestamp": "2025-01-01T12:00:00Z", "sampledValue": [
    {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
    {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L1"},
    {"value": "10.5", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
    {"value": "10.4", "measurand": "Current.Import", "unit": "A", "phase": "L2"},
    {"value": "16", "measurand": "Current.Offered", "unit": "A"},
    {"value": "231.5", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
    {"value": "12345.6", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
    {"value": "50.0", "measurand": "Frequency"},
    {"value": "1e306", "measurand": "Power.Active.Import", "unit": "kW"},  # issue 17
    {"value": "abc", "format": "SignedData"}]}]


def _snake(value: object) -> object:
    """camelCase keys as the `ocpp` package hands them to handlers (sampled_value, …)."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


METER_VALUES = [json.dumps(_snake(METER_VALUE)).encode(), b"[]", b'[{"sampled_value": []}]']

OCPP_FRAMES: list[bytes] = [json.dumps(f).encode() for f in [
    [2, "b1", "BootNotification", {"chargePointVendor": "go-e", "chargePointModel": "Gemini",
                                   "firmwareVersion": "056.8"}],
    [2, "h1", "Heartbeat", {}],
    [2, "s1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                     "status": "Charging", "info": "x"}],
    [2, "m1", "MeterValues", {"connectorId": 1, "transactionId": 5, "meterValue": METER_VALUE}],
    [2, "a1", "Authorize", {"idTag": "ABC"}],
    [2, "t1", "StartTransaction", {"connectorId": 1, "idTag": "ABC", "meterStart": 0,
                                   "timestamp": "2025-01-01T12:00:00Z"}],
    [2, "t2", "StopTransaction", {"meterStop": 10, "timestamp": "2025-01-01T13:00:00Z",
                                  "transactionId": 5, "reason": "Local", "idTag": "ABC"}],
    [2, "d1", "DataTransfer", {"vendorId": "go-e", "data": "x"}],
    [2, "f1", "FirmwareStatusNotification", {"status": "Idle"}],
    [3, "r1", {"status": "Accepted"}], [4, "r2", "NotImplemented", "", {}],
    [2, "x1", "FancyAction", {}], [7, "u4", "Heartbeat", {}],
]] + [b"not json", b"[]", b'[2, "u1", "Heartbeat"]', b"[" * 20_000 + b"]" * 20_000,
      b'[2, "\xff", "Heartbeat", {}]']


def handshakes(path: str, authorization: bytes) -> list[bytes]:
    """HTTP upgrade requests: a good one and the ways issue 17 found to break one."""
    def request(auth: bytes, protocol: bytes = b"ocpp1.6", target: str = path) -> bytes:
        return (b"GET " + target.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Protocol: " + protocol + b"\r\nAuthorization: " + auth +
                b"\r\n\r\n")
    return [request(authorization), request(b"Basic \xff\xfe\xfd"),
            request(b"Basic Z29lLTE6\xff\xfe"), request(b"Bearer x"),
            request(authorization, b"ocpp2.0.1"), request(authorization, target="/%ff%fe"),
            request(authorization, target="/" + "a" * 5000)]


# --- divert status ------------------------------------------------------------------------

API_STATE: dict[str, object] = {
    "version": "0.1.0", "mode": "solar", "time_s": 1.7e9,
    "site": {"feeds": {"grid": {"health": "ok"}}, "surplus_w": 1000.0, "grid_w": -500.0,
             "limited": False, "limit_w": 11000.0},
    "chargers": [{"name": "garage", "charging": True, "setpoint_a": 10.0, "connected": True,
                  "boost_until_s": 1.7e9 + 600, "mode": "fast", "power_w": 2300.0,
                  "reason": "charging", "code": "charging", "starts_today": 1,
                  "starts_left_hour": 1, "starts_left_day": 3,
                  "energy_from_surplus_today_kwh": 1.0, "energy_from_grid_today_kwh": 0.1,
                  "min_current_a": 6.0, "max_current_a": 16.0}]}


# --- config, presets, traces, state ---------------------------------------------------------

@cache
def configs() -> list[bytes]:
    example = (REPO / "config.example.toml").read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^# (\[|[a-z_]+ = )", r"\1", example)
    small = [
        '[[chargers]]\nname = "a"\ntype = "simulated"\n',
        '[feeds.grid]\ntopic = "g"\njson_path = "ENERGY.Power"\nscale = 1000\n'
        '[[chargers]]\nname = "p"\ntype = "psp"\nhost = "127.0.0.1"\n',
        '[[chargers]]\nname = "e"\ntype = "evsemaster"\nhost = "127.0.0.1"\n'
        'serial = "0123456789abcdef"\npassword = "123456"\n',
        '[[chargers]]\nname = "o"\ntype = "openevse"\ntransport = "http"\n'
        'url = "http://127.0.0.1"\n',
        '[[schedule]]\ncron = "0 22 * * mon-fri"\nmode = "fast"\nmax_current_a = 16\n',
        # Issue 14
        "chargers = 5\n", "_env_file = 5\n", "_cli_parse_args = 1979-05-27\n",
        "a = " + "[" * 1000 + "]" * 1000 + "\n", "interval_s = " + "1" * 5000 + "\n",
        f'[policy]\npreset = "{"a" * 5000}"\n', '[policy]\npreset = "/dev/zero"\n',
        '[policy]\npreset = "/dev/stdin"\n', '[feeds.grid]\ntopic = "g"\nscale = nan\n',
        '[feeds.grid]\ntopic = "g"\nmax_age_s = inf\n', '_env_prefix = "X"\n',
        '_secrets_dir = "/tmp"\n', "",
    ]
    return [example.encode(), uncommented.encode(), *(s.encode() for s in small)]


# Environment overrides the config harness sets now and then: name → values.
ENV = {"DIVERT_MQTT__PORT": ["1884", "99999", "x", "1e3"], "DIVERT_INTERVAL_S": ["nan", "2"],
       "DIVERT_CHARGERS": ["[{", '[{"name": "a", "type": "simulated"}]', "[]", "5"],
       "DIVERT_FEEDS__GRID__SCALE": ["inf", "0", "1000"], "DIVERT_POLICY__MODE": ["fast", "x"],
       "DIVERT_MQTT__BOGUS": ["1"], "DIVERT_FEEDS": ['{"grid": {"topic": "t"}}', "{"]}


@cache
def presets() -> list[bytes]:
    shipped = sorted((REPO / "policies").glob("*.toml"))
    return [p.read_bytes() for p in shipped] + [
        b"\xff\xfe[policy]\n", b"policy = 5\n", b'policy = "ab"\n', b"[policy]\nkind = 5\n",
        b'[relay]\nmin_on_s = "x"\n', b"[relay]\nmax_starts_per_hour = 2.5\n"]


@cache
def traces() -> list[bytes]:
    bundled = (REPO / "divert" / "sim" / "data" / "sample-day.csv").read_bytes()
    lines = bundled.splitlines(keepends=True)
    out = [bundled, b"".join(lines[:40]), b"".join([lines[0], *lines[300:330]]),
           b"time;solar_w;grid_w;voltage_v\n1713600000;3000;-2500;231\n1713600060;3100;;\n",
           b"time,solar\n06:00 AM,0\n06:15 AM,120\n06:30 AM,800\n",
           b"time,solar [kW],grid [kW]\n2020-03-22T06:00:00,0.1,-0.5\n"
           b"2020-03-22T06:15:00,1.2,0.3\n",
           b"\xef\xbb\xbftime,solar,vrms\n0,100,230\n60,200,231\n",
           # Issue 14
           b"time,solar_w,load_w\n0,1e306,-1e306\n60,1,1\n",
           b"time,solar_w,load_w\n1.7e9,1,1\n1.7316e9,1,1\n",
           b"time,solar_w,load_w\n-1e308,1,1\n1e308,1,1\n"]
    data = SHARED / "data" / "openevse"
    if data.is_dir():
        out += [p.read_bytes() for p in sorted(data.glob("*.csv"))]
    return out


def short(texts: list[bytes], limit: int = 3000) -> list[bytes]:
    """Each text cut to its lines within `limit` bytes: mutating a short file finds the same
    faults as a long one, many times faster."""
    def cut(text: bytes) -> bytes:
        end = text.rfind(b"\n", 0, limit)
        return text if len(text) <= limit else text[:end + 1 if end > 0 else limit]
    return [cut(t) for t in texts]


STATE: dict[str, object] = {
    "version": 1, "saved_at": 1.7e9, "clock": {"boot_id": "b", "control_s": 5000.0},
    "commands": {"config_mode": "solar", "chargers": {"garage": {
        "mode": "fast", "boost_until_s": 1.7e9, "min_current_a": 8, "max_current_a": 16,
        "config_range_a": [6, 16]}}},
    "config_mode": "solar", "mode": "fast", "limit_a": 16.0,
    "chargers": {"garage": {
        "controller": {"guard": {"on": True, "changed_s": 1.7e9 - 60, "switched_s": None,
                                 "starts_s": [1.7e9 - 600, 1.7e9 - 60],
                                 "switch_starts_s": []},
                       "setpoint_a": 6.0, "mode": "fast", "phases": 1},
        "ev_from_surplus_wh": 1.0, "ev_from_grid_wh": 0.0, "relay_starts": 12}}}


def states() -> list[bytes]:
    def variant(**top: object) -> bytes:
        return json.dumps({**STATE, **top}).encode()
    huge = {"config_mode": "solar", "chargers": {"garage": {"min_current_a": 10**400,
                                                           "config_range_a": [6, 16]}}}
    return [json.dumps(STATE, indent=1).encode(), variant(saved_at=1e18), variant(saved_at=True),
            variant(commands=huge),
            variant(limit_a=-1), b"[" * 100_000, b'{"version": 1, "chargers": {"garage": {"c',
            json.dumps(STATE).replace("6.0", "-6.0").replace("1700000000.0", "NaN").encode()]
