"""Every in-process parser against generated and mutated input: it returns a plausible value
or raises its own declared error, nothing else, and never hangs.

The rule each check asserts: the parser's result is usable as it is (finite numbers within
the device's or the file's documented range) — or the parser said no in its own words.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry as Registry
from prometheus_client import Counter

from chargers.evsemaster import protocol as em
from chargers.goe_ocpp import meter
from chargers.openevse import rapi
from chargers.openevse.transports import reply_from_body
from chargers.psp import webapi
from divert.config import ConfigError, load, validate
from divert.core.controller import Inputs
from divert.core.modes import Mode
from divert.daemon import status
from divert.daemon.clock import SystemClock
from divert.daemon.commands import Commands
from divert.daemon.feeds import Feed, FeedSpec, PayloadError, parse_json, parse_number
from divert.daemon.metrics import Metrics
from divert.daemon.persistence import Persistence
from divert.policies.forecast import feed_points
from divert.policies.presets import PresetError, load_preset
from divert.sim import simulate, trace
from fuzz import seeds
from fuzz.harness import TOKENS, fuzz, mutate, mutated, random_json

# Any JSON document, numbers of every size included.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
TOKEN_TEXT = st.sampled_from(TOKENS).map(lambda b: b.decode("utf-8", "replace"))


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


# --- MQTT feeds ------------------------------------------------------------------------------

def test_feed_payloads() -> None:
    feed = Feed(FeedSpec("grid", "t", scale=1000.0))
    payloads = seeds.short([p for p, _ in seeds.FEEDS])
    paths = st.sampled_from(seeds.FEED_PATHS)

    def check(case: tuple[bytes, str | None]) -> None:
        payload, path = case
        try:
            value = parse_number(payload, path)
        except PayloadError:
            value = None
        if value is not None:
            assert math.isfinite(value)
            if path is None:  # plain text: ASCII digits only
                assert payload.strip(b" \t\r\n").isascii()
        if feed.offer(payload, 0.0):
            assert _finite(feed.value(0.0))

    def generate(rng: random.Random) -> tuple[bytes, str | None]:
        pick = rng.random()
        if pick < 0.8:
            payload = mutate(rng, payloads)
        elif pick < 0.9:
            payload = rng.randbytes(rng.randint(0, 40))
        else:
            payload = json.dumps(random_json(rng)).encode()
        return payload, rng.choice(seeds.FEED_PATHS)

    fuzz("feeds.parse_number", check, seeds=seeds.FEEDS,
         strategy=st.tuples(mutated(payloads), paths) | st.tuples(st.binary(max_size=40), paths)
         | st.tuples(JSON.map(lambda v: json.dumps(v).encode()), paths), generate=generate)


def test_forecast_payloads() -> None:
    """The forecast feed: JSON at a path, then the points in it (W at unix times)."""
    payloads = seeds.short([p for p in seeds.FORECASTS])

    def check(case: tuple[bytes, str | None]) -> None:
        payload, path = case
        try:
            points = feed_points(parse_json(payload, path), 1000.0)
        except (PayloadError, ValueError):  # what the daemon catches, counts and logs
            return
        assert points and all(_finite(t, w) for t, w in points)

    paths = st.sampled_from([None, "", "result", "0"])

    def generate(rng: random.Random) -> tuple[bytes, str | None]:
        if rng.random() < 0.85:
            return mutate(rng, payloads), rng.choice([None, "result"])
        keys = ("period_start", "watts", "time", "w", "value", "1700000000", "result")
        return json.dumps(random_json(rng, 3, keys)).encode(), None

    fuzz("feeds.forecast", check, seeds=[(p, None) for p in seeds.FORECASTS],
         strategy=st.tuples(mutated(payloads), paths)
         | st.tuples(JSON.map(lambda v: json.dumps(v).encode()), paths),
         generate=generate)


# --- OpenEVSE: RAPI lines (serial, MQTT) and the WiFi module's HTTP replies -------------------

_RAPI_REPLIES = (rapi.parse_status, rapi.parse_measurement, rapi.parse_energy,
                 rapi.parse_temperatures, rapi.parse_current_range, rapi.parse_settings,
                 rapi.parse_version, rapi.parse_current_reply)


def _rapi_line(line: str) -> None:
    try:
        frame = rapi.decode(line)
    except rapi.RapiError:
        return
    for token in frame.params:
        rapi.version_number(token)
        with contextlib.suppress(rapi.RapiError):
            assert 0 <= rapi.parse_state(token) <= 0xFF
    for parse in _RAPI_REPLIES:
        try:
            value = parse(frame)
        except rapi.RapiError:
            continue
        if isinstance(value, rapi.Status):
            assert 0 <= value.state <= 0xFF and value.elapsed_s >= 0
            rapi.state_text(value.state)
        elif isinstance(value, rapi.Measurement):
            assert value.current_ma is None or 0 <= value.current_ma <= rapi.MAX_A * 1000
            assert value.voltage_mv is None or value.voltage_mv <= rapi.MAX_V * 1000
        elif isinstance(value, rapi.Energy):
            assert 0 <= value.session_ws <= rapi.MAX_SESSION_WS
        elif isinstance(value, rapi.CurrentRange):
            assert 0 < value.min_a <= value.max_a <= rapi.MAX_A
        elif isinstance(value, rapi.Version):
            rapi.volatile_flag(value)


def test_rapi_lines() -> None:
    lines = seeds.rapi_lines()

    def check(raw: bytes) -> None:
        _rapi_line(raw.decode("ascii", errors="replace"))  # as the serial transport reads it
        _rapi_line(raw.decode("latin-1"))

    fuzz("openevse.rapi", check, seeds=lines, strategy=mutated(lines) | st.binary(max_size=40),
         generate=lambda rng: mutate(rng, lines))


def test_openevse_http_replies() -> None:
    bodies = seeds.short(seeds.http_bodies())

    def check(body: str | bytes) -> None:
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")  # as httpx decodes a reply
        reply, error = reply_from_body(body)
        assert (reply is None) != (error is None)
        if reply is not None:
            _rapi_line(reply)

    fuzz("openevse.http", check, seeds=[b.decode() for b in seeds.http_bodies()],
         strategy=mutated(bodies) | st.text(max_size=60) | JSON.map(json.dumps),
         generate=lambda rng: mutate(rng, bodies) if rng.random() < 0.9
         else json.dumps(random_json(rng, keys=("cmd", "ret", "error"))))


# --- EVSEMaster datagrams --------------------------------------------------------------------

_ZONES = (None, UTC, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("America/St_Johns"))


def _evsemaster(packet: bytes) -> None:
    try:
        for datagram in em.iter_datagrams(packet):
            assert len(datagram.serial) == 16
            for tz in _ZONES:
                try:
                    message = em.decode(datagram, tz)
                except em.ProtocolError:
                    continue
                if isinstance(message, em.ACStatus):
                    assert max(message.phase_voltages_v) <= em.MAX_VOLTAGE_V
                    assert max(message.phase_currents_a) <= em.MAX_CURRENT_A
                    assert message.power_w <= em.MAX_POWER_W
    except em.ProtocolError:
        pass
    em.redacted_hex(packet)


def test_evsemaster_datagrams() -> None:
    packets = seeds.evsemaster_packets()
    payloads = [d.payload for p in packets for d in em.iter_datagrams(p)] + [b""]
    # Mutated packets mostly fail the checksum; re-framed payloads reach the decoders.
    reframed = st.tuples(st.sampled_from(seeds.EVSEMASTER_COMMANDS),
                         mutated(payloads) | st.binary(max_size=160))

    def check(case: bytes | tuple[int, bytes]) -> None:
        if isinstance(case, tuple):
            case = em.encode(seeds.SERIAL, "123456", *case)
        _evsemaster(case)

    def generate(rng: random.Random) -> bytes | tuple[int, bytes]:
        if rng.random() < 0.5:
            return mutate(rng, packets)
        return rng.choice(seeds.EVSEMASTER_COMMANDS), mutate(rng, payloads)

    fuzz("evsemaster.datagram", check, seeds=packets, strategy=mutated(packets) | reframed,
         generate=generate)


# --- PSP EVSE WebAPI replies -----------------------------------------------------------------

_PSP_KEYS = ["EvseState", "ThreePhaseCharging", "ActualCurrent", "ActualPower",
             "ActualPowerAvailable", "ActualEnergy", "StartStopAllowed", "ChargerStarted",
             "ChargeCurrent", "Charge3Phase", "ControlStrategy", "Meter2Type", "Meter2Ip",
             "ChargeAutoStart", "SystemVersion", "ProductType", "MAC", "GeneralInfo"]


def _psp(body: bytes) -> None:
    try:
        s = webapi.parse_status(body)
        assert 0 <= s.current_a <= webapi.MAX_CURRENT_A and 0 <= s.power_w <= webapi.MAX_POWER_W
        assert 0 <= s.energy_ws <= webapi.MAX_ENERGY_WS and _finite(s.power_available_w)
        s.words()
    except webapi.WebAPIError:
        pass
    try:
        c = webapi.parse_system_config(body)
        assert 0 <= c.charge_current_a <= webapi.MAX_CURRENT_A
        c.problems()
    except webapi.WebAPIError:
        pass
    with contextlib.suppress(webapi.WebAPIError):
        webapi.parse_system_info(body)


def test_psp_replies() -> None:
    bodies = seeds.short(seeds.psp_bodies())
    typed = st.dictionaries(st.sampled_from(_PSP_KEYS), JSON | TOKEN_TEXT, min_size=8).map(
        lambda d: json.dumps(d).encode())

    def generate(rng: random.Random) -> bytes:
        if rng.random() < 0.6:
            return mutate(rng, bodies)
        good = json.loads(rng.choice(bodies[:3]))  # every key there, one value replaced
        good[rng.choice(_PSP_KEYS)] = random_json(rng, 1)
        return json.dumps(good).encode()

    fuzz("psp.webapi", _psp, seeds=seeds.psp_bodies(), strategy=mutated(bodies) | typed,
         generate=generate)


# --- go-e OCPP meter values ------------------------------------------------------------------

_MEASURANDS = ["Power.Active.Import", "Energy.Active.Import.Register", "Current.Import",
               "Current.Offered", "Voltage", "Frequency", "Temperature", "SoC"]
_UNITS = ["W", "kW", "Wh", "kWh", "A", "V", "Celsius", "Percent", "varh"]
_PHASES = ["L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2"]
_NUMBERS = [b"7200", b"10.5", b"231.5", b"-1", b"12345.6", b"1e306", b"0.0"]
_NUMBER_TEXT = mutated(_NUMBERS).map(lambda m: m.data.decode("utf-8", "replace"))


def _maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return values | st.text(max_size=6)


# Shaped like the OCPP 1.6 schema the `ocpp` package validates against before the handler
# runs (strings where it wants strings), with values anything a charger might put there.
_SAMPLED = st.fixed_dictionaries({"value": _NUMBER_TEXT | TOKEN_TEXT | st.text(max_size=8)},
                                 optional={"measurand": _maybe(st.sampled_from(_MEASURANDS)),
                                           "unit": _maybe(st.sampled_from(_UNITS)),
                                           "phase": _maybe(st.sampled_from(_PHASES)),
                                           "format": st.sampled_from(["Raw", "SignedData"]),
                                           "location": st.sampled_from(["Outlet", "Body"])})
_METER_VALUE = st.lists(st.fixed_dictionaries({
    "timestamp": st.just("2025-01-01T12:00:00Z"),
    "sampled_value": st.lists(_SAMPLED, max_size=8)}), max_size=3)


def test_ocpp_meter_values() -> None:
    def check(values: list[dict[str, Any]]) -> None:
        sample = meter.parse(values)
        assert _finite(sample.power_w, sample.offered_a, sample.energy_wh,
                       *sample.currents_a, *sample.voltages_v)
        assert sample.power_w is None or abs(sample.power_w) <= 3 * 100_000
        sample.phases_drawing()

    def value(rng: random.Random) -> str:
        if rng.random() < 0.7:
            return mutate(rng, _NUMBERS).decode("utf-8", "replace")
        return str(random_json(rng, 0))

    def pick(rng: random.Random, choices: list[str]) -> str:
        return rng.choice(choices) if rng.random() < 0.9 else str(random_json(rng, 0))

    def generate(rng: random.Random) -> list[dict[str, Any]]:
        entries = []
        for _ in range(rng.randint(0, 3)):
            sampled = []
            for _ in range(rng.randint(0, 8)):
                sv: dict[str, Any] = {"value": value(rng)}
                for key, choices in (("measurand", _MEASURANDS), ("unit", _UNITS),
                                     ("phase", _PHASES), ("format", ["Raw", "SignedData"]),
                                     ("location", ["Outlet", "Body"])):
                    if rng.random() < 0.6:
                        sv[key] = pick(rng, choices)
                sampled.append(sv)
            entries.append({"timestamp": "2025-01-01T12:00:00Z", "sampled_value": sampled})
        return entries

    examples = [json.loads(v) for v in seeds.METER_VALUES]
    fuzz("goe_ocpp.meter_values", check, seeds=examples, strategy=_METER_VALUE,
         generate=generate)


# --- MQTT commands ------------------------------------------------------------------------

_COMMAND_TOPICS = [f"divert/{charger}/{command}/set" for charger in ("garage", "nope", "")
                   for command in ("mode", "min_current", "max_current", "boost", "x")]
_COMMAND_PAYLOADS = [b"fast", b"SOLAR", b"min-solar", b"off", b"8", b"16.5", b"30", b"0",
                     b"1440", b" 6 ", b"-1", "１２".encode(), b"1e400", b"nan"]


def test_mqtt_commands() -> None:
    commands = _commands()
    preset = load_preset("balanced")
    controllers = {"garage": preset.controller(simulate.BENCH_CAPS)}
    now_s = [1000.0]

    def check(case: tuple[str, bytes, bool]) -> None:
        topic, payload, retained = case
        commands.offer(topic, payload, retained)
        now_s[0] += 1.0
        commands.drain(now_s[0], controllers, Mode.SOLAR, None)
        eff = commands.effective("garage", Mode.SOLAR, None, now_s[0])
        assert _finite(eff.min_current_a, eff.limit_a)

    topics = [t.encode() for t in _COMMAND_TOPICS]

    def generate(rng: random.Random) -> tuple[str, bytes, bool]:
        topic = rng.choice(_COMMAND_TOPICS) if rng.random() < 0.9 else \
            mutate(rng, topics).decode("utf-8", "replace")
        return topic, mutate(rng, _COMMAND_PAYLOADS), rng.random() < 0.05

    fuzz("daemon.mqtt_commands", check,
         seeds=[(t, p, False) for t in _COMMAND_TOPICS[:5] for p in _COMMAND_PAYLOADS],
         strategy=st.tuples(st.sampled_from(_COMMAND_TOPICS), mutated(_COMMAND_PAYLOADS),
                            st.booleans()),
         generate=generate)


# --- `divert status`: the daemon's /api/state as it reads it -------------------------------

def test_status_answers() -> None:
    answers = [json.dumps(seeds.API_STATE).encode(), json.dumps(seeds.API_STATE, indent=1).encode()]
    keys = sorted({k for k in json.dumps(seeds.API_STATE).split('"')[1::2] if k.isidentifier()})

    def check(body: bytes) -> None:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return  # "did not answer with JSON"
        with contextlib.suppress(status.NOT_OURS):  # "answered JSON divert does not know"
            status.render(data, now_s=1.7e9)

    def generate(rng: random.Random) -> bytes:
        if rng.random() < 0.8:
            return mutate(rng, answers)
        data = json.loads(answers[0])
        node = rng.choice([data, data["site"], data["chargers"][0]])
        node[rng.choice(keys)] = random_json(rng, 2, keys)
        return json.dumps(data).encode()

    fuzz("cli.status_answer", check, seeds=answers, strategy=mutated(answers),
         generate=generate)


# --- files users name: config, presets, traces, the state file --------------------------------

@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A directory for the files under test: in memory where the system has one (rewriting a
    file on a disk costs milliseconds, a hundred thousand times)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="divert-fuzz-") as name:
        yield Path(name)


def test_config_files(workdir: Path) -> None:
    path = workdir / "divert.toml"
    env = st.dictionaries(st.sampled_from(sorted(seeds.ENV)),
                          st.sampled_from(sorted({v for vs in seeds.ENV.values() for v in vs}))
                          | st.text(max_size=8), max_size=2)
    no_env = st.just({})

    def check(case: tuple[bytes, dict[str, str]]) -> None:
        text, variables = case
        path.write_bytes(text)
        os.environ.update({k: v for k, v in variables.items() if "\0" not in v})
        try:
            settings = load(path)
        except ConfigError as exc:
            lines = str(exc).split("\n")
            assert lines and all(line.startswith((f"{path}: ", "DIVERT_")) for line in lines)
            return
        finally:
            for name in variables:
                os.environ.pop(name, None)
        for charger in settings.chargers:
            charger.capabilities()
        settings.driver_env()

    configs = seeds.configs()
    values = sorted({v for vs in seeds.ENV.values() for v in vs})

    def generate(rng: random.Random) -> tuple[bytes, dict[str, str]]:
        variables = {}
        if rng.random() < 0.1:
            variables[rng.choice(sorted(seeds.ENV))] = (
                rng.choice(values) if rng.random() < 0.7
                else mutate(rng, [v.encode() for v in values]).decode("utf-8", "replace"))
        return mutate(rng, configs), variables

    fuzz("config.load", check, seeds=[(c, {}) for c in configs],
         strategy=st.tuples(mutated(configs), no_env | no_env | no_env | env),
         generate=generate)


def test_preset_files(workdir: Path) -> None:
    path = workdir / "mine.toml"

    def check(text: bytes) -> None:
        path.write_bytes(text)
        try:
            preset = load_preset(str(path))
        except PresetError as exc:
            assert "\n" not in str(exc)
            return
        controller = preset.controller(simulate.BENCH_CAPS)
        for t_s, grid_w in ((1.7e9, -3000.0), (1.7e9 + 5, -500.0), (1.7e9 + 4000, -9000.0)):
            decision = controller.step(Inputs(time_s=t_s, grid_w=grid_w, ev_w=0.0))
            assert _finite(decision.current_a, decision.power_w)

    presets = seeds.presets()
    fuzz("presets.load_preset", check, seeds=presets, strategy=mutated(presets),
         generate=lambda rng: mutate(rng, presets))


def test_trace_files() -> None:
    def check(case: tuple[bytes, trace.Format]) -> None:
        raw, fmt = case
        try:
            t = trace.parse(raw.decode("utf-8-sig", errors="replace"), "x", fmt)
        except trace.TraceError as exc:
            assert "\n" not in str(exc)
            return
        n = len(t)
        assert n >= 1 and len(t.solar_w) == len(t.load_w) == len(t.voltage_v) == n
        assert (t.time_s >= 0).all() and (t.time_s <= trace.MAX_TIME_S).all()
        assert (t.dt_s >= 0).all() and (t.dt_s <= trace.MAX_GAP_S).all()
        for values in (t.solar_w, t.load_w, t.surplus_w):
            assert (abs(values) <= 2 * trace.MAX_POWER_W).all()

    traces = seeds.traces()
    short = seeds.short(traces)
    formats: list[trace.Format] = ["auto", "auto", "native", "openevse"]
    fuzz("sim.trace", check, seeds=[(t, "auto") for t in traces],
         strategy=st.tuples(mutated(short), st.sampled_from(formats)),
         generate=lambda rng: (mutate(rng, short), rng.choice(formats)))


def _commands() -> Commands:
    settings = validate({"chargers": [{"name": "garage", "type": "simulated"}]}, Path("c.toml"))
    return Commands(settings, lambda _topic, _payload: None, Metrics(["garage"], []),
                    lambda: None)


def test_state_files(workdir: Path) -> None:
    path = workdir / "state.json"
    preset = load_preset("balanced")
    persistence = Persistence(path, SystemClock(), Counter("errors", "", registry=Registry()))
    commands = _commands()
    now_s = time.monotonic()

    def check(text: bytes) -> None:
        path.write_bytes(text)
        saved = persistence.load()  # what the daemon does at start
        for aside in workdir.glob("state.json.corrupt-*"):
            aside.unlink()
        if saved is None:
            assert not path.exists()  # unusable: set aside
            return
        # What the daemon does with a state it accepted must work.
        datetime.fromtimestamp(saved.wall_s, UTC)
        commands.restore(saved.sections.get("commands"))
        for record in saved.chargers.values():
            controller = preset.controller(simulate.BENCH_CAPS)
            controller.restore(record.controller)
            decision = controller.step(Inputs(time_s=now_s, grid_w=-3000.0, ev_w=0.0))
            assert _finite(decision.current_a)

    states = seeds.states()
    short = seeds.short(states)
    keys = sorted({"version", "saved_at", "config_mode", "mode", "limit_a", "chargers",
                   "garage", "controller", "guard", "starts_s", "on", "changed_s",
                   "setpoint_a", "phases", "ev_from_surplus_wh", "ev_from_grid_wh"})

    def generate(rng: random.Random) -> bytes:
        if rng.random() < 0.8:
            return mutate(rng, short)
        return json.dumps(random_json(rng, 5, keys)).encode()

    fuzz("daemon.state_file", check, seeds=states,
         strategy=mutated(short) | JSON.map(lambda v: json.dumps(v).encode()),
         generate=generate)
