"""Whole paths against hostile input: `divert check-config` and `divert simulate` as processes
(exit status, stdout, stderr), and divert's OCPP server over a real websocket on loopback.

A command ends with 0, or with 1 and one line per problem (`file: key: reason`,
`DIVERT_…: reason`, `divert simulate: …`), never a traceback. The OCPP server answers every
frame a charger may send (a CALLRESULT or a CALLERROR), refuses every bad handshake with a
4xx status (505 for an HTTP version it does not speak), never a 500, and keeps serving.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from chargers.base import ChargerError
from chargers.goe_ocpp.config import GoEOcppConfig, OcppConfig
from chargers.goe_ocpp.driver import GoEOcppCharger
from fuzz import seeds
from fuzz.harness import PROCESS_INPUTS, Exit, fuzz, mutate, mutated, run_clis

# --- divert check-config ---------------------------------------------------------------------


def _config_exit(path: Path, result: Exit) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    if result.code == 0:
        assert result.stdout.startswith(f"{path}: valid;") and not result.stderr
        return
    assert result.code == 1, result
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith((f"{path}: ", "DIVERT_")) for line in lines), lines


def test_check_config_process(tmp_path: Path) -> None:
    configs = seeds.configs()
    values = sorted({v for vs in seeds.ENV.values() for v in vs})
    paths = [tmp_path / "a.toml", tmp_path / "b.toml"]

    def check(case: tuple[tuple[bytes, dict[str, str]], ...]) -> None:
        runs = []
        for path, (text, variables) in zip(paths, case, strict=False):
            path.write_bytes(text)
            runs.append((path, variables))
        # The variables apply to both children: set, fork, unset.
        env = {k: v for _, variables in runs for k, v in variables.items() if "\0" not in v}
        os.environ.update(env)
        try:
            results = run_clis([["check-config", "-c", str(path)] for path, _ in runs])
        finally:
            for name in env:
                os.environ.pop(name, None)
        for (path, _), result in zip(runs, results, strict=True):
            _config_exit(path, result)

    def one(rng: random.Random) -> tuple[bytes, dict[str, str]]:
        variables = {}
        if rng.random() < 0.1:
            variables[rng.choice(sorted(seeds.ENV))] = rng.choice(values)
        return mutate(rng, configs), variables

    no_env: st.SearchStrategy[dict[str, str]] = st.just({})
    one_case = st.tuples(mutated(configs), no_env)
    pairs = [((a, {}), (b, {})) for a, b in zip(configs, configs[1:] + configs[:1],
                                                  strict=True)][::2]
    fuzz("process: divert check-config", check, seeds=pairs,
         strategy=st.tuples(one_case, one_case), generate=lambda rng: (one(rng), one(rng)),
         count=PROCESS_INPUTS, per_input_s=30, weight=2, batch=2)


# --- divert simulate -------------------------------------------------------------------------

def _simulate_exit(result: Exit) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    if result.code == 0:
        summary = json.loads(result.stdout)
        numbers = [v for v in summary.values() if isinstance(v, int | float)]
        assert numbers and all(math.isfinite(v) for v in numbers), summary
        return
    assert result.code == 1, result
    assert result.stderr.startswith("divert simulate: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_simulate_process(tmp_path: Path) -> None:
    traces = seeds.short(seeds.traces())
    formats = ["auto", "auto", "native", "openevse"]
    plants = ["ideal", "ideal", "ideal", "realistic"]
    site = tmp_path / "site.toml"  # two chargers and a home battery: the site's path
    site.write_text("[feeds.battery]\ntopic = 'b'\n[[chargers]]\nname = 'a'\n"
                    "type = 'simulated'\n[[chargers]]\nname = 'b'\ntype = 'simulated'\n"
                    "control = 'power'\n")
    extras = [[], [], [], ["--config", str(site)], ["--battery-kwh", "5"]]

    def check(case: tuple[tuple[bytes, str, str, int], ...]) -> None:
        runs = []
        for i, (text, fmt, plant, extra) in enumerate(case):
            path = tmp_path / f"trace{i}.csv"
            path.write_bytes(text)
            runs.append(["simulate", "--trace", str(path), "--format", fmt, "--plant", plant,
                         "--out", str(tmp_path / f"out{i}"), "--json", *extras[extra]])
        for result in run_clis(runs):
            _simulate_exit(result)

    one = st.tuples(mutated(traces), st.sampled_from(formats), st.sampled_from(plants),
                    st.integers(0, len(extras) - 1))
    fuzz("process: divert simulate", check,
         seeds=[((traces[0], "auto", "realistic", 0), (traces[7], "auto", "ideal", 0)),
                ((traces[0], "auto", "realistic", 3), (traces[1], "auto", "ideal", 4))],
         strategy=st.tuples(one, one),
         generate=lambda rng: tuple((mutate(rng, traces), rng.choice(formats),
                                     rng.choice(plants), rng.randrange(len(extras)))
                                    for _ in range(2)),
         count=PROCESS_INPUTS, per_input_s=60, weight=2, batch=2)


# --- the OCPP server over a websocket --------------------------------------------------------

PASSWORD = "correct-horse-battery"
BOX = "goe-fuzz"
MAX_FRAME = 60_000  # the server takes frames up to 64 KiB and closes on a longer one


OURS = (str(Path(__file__).resolve().parents[2] / "chargers"),
        str(Path(__file__).resolve().parents[2] / "divert"))


class Errors(logging.Handler):
    """Logged exceptions that passed through divert's code: one nobody expected (an
    exception inside the websockets library alone is the library's business)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        tb = record.exc_info[2] if record.exc_info else None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.startswith(OURS):
                self.records.append(record)
                return
            tb = tb.tb_next


@pytest.fixture
def goe() -> Iterator[tuple[GoEOcppCharger, int, Errors]]:
    port = free_port()
    driver = GoEOcppCharger(GoEOcppConfig(name="goe", charge_box_id=BOX, password=PASSWORD,
                                          phases=3), OcppConfig(listen=f"127.0.0.1:{port}"),
                            interval_s=2.0)
    errors = Errors()
    logging.getLogger("chargers").addHandler(errors)
    logging.getLogger("websockets").addHandler(errors)
    driver.connect()
    try:
        yield driver, port, errors
    finally:
        driver.close()
        logging.getLogger("chargers").removeHandler(errors)
        logging.getLogger("websockets").removeHandler(errors)


def _authorization() -> bytes:
    return b"Basic " + base64.b64encode(f"{BOX}:{PASSWORD}".encode())


def _open(port: int) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{port}/{BOX}", subprotocols=[Subprotocol("ocpp1.6")],
                   additional_headers={"Authorization": _authorization().decode()},
                   open_timeout=5, max_size=None)


class Session:
    """A raw OCPP client: sends anything, then proves the session still works with a
    Heartbeat, answering the server's own requests meanwhile."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pings = 0

    def send(self, frame: bytes) -> list[Any]:
        """Everything the server sent until it answered our Heartbeat."""
        frame = frame[:MAX_FRAME]
        try:
            text = frame.decode("utf-8")
        except UnicodeDecodeError:
            self.ws.send(frame)  # a binary frame
        else:
            self.ws.send(text)
        self.pings += 1
        ping = f"ping-{self.pings}"
        self.ws.send(json.dumps([2, ping, "Heartbeat", {}]))
        received = []
        while True:
            message = json.loads(self.ws.recv(timeout=10))
            assert isinstance(message, list) and message, message
            received.append(message)
            if message[0] == 2:  # the server's own request (set-up after a boot): refuse it
                self.ws.send(json.dumps([4, message[1], "NotImplemented", "", {}]))
            elif message[:2] == [3, ping]:
                return received


def _callerror_or_result(frame: bytes, received: list[Any]) -> None:
    """A CALL with a readable id got its answer; nothing else was answered but with -1 (an
    empty id is no readable one)."""
    try:
        sent = json.loads(frame)
    except (ValueError, RecursionError):
        sent = None
    answers = [m for m in received if m[0] in (3, 4)][:-1]  # the last one answers the ping
    if (isinstance(sent, list) and len(sent) > 1 and sent[0] == 2 and isinstance(sent[1], str)
            and sent[1] and not sent[1].startswith("ping-")):
        assert any(m[1] == sent[1] for m in answers), (sent[:3], answers)
    for m in answers:
        assert m[0] == 4 or (isinstance(sent, list) and m[1] == sent[1]), (sent, m)


def test_ocpp_frames_over_a_socket(goe: tuple[GoEOcppCharger, int, Errors]) -> None:
    driver, port, errors = goe
    frames = seeds.OCPP_FRAMES

    def check(frame: bytes) -> None:
        try:
            received = session.send(frame)
        except ConnectionClosed as exc:  # only a frame over the size limit may end a session
            raise AssertionError(f"the server closed the session: {exc}") from None
        _callerror_or_result(frame, received)
        with contextlib.suppress(ChargerError):
            driver.read()
        assert not errors.records, errors.records[0].getMessage()

    with _open(port) as ws:
        session = Session(ws)
        fuzz("process: OCPP frames (socket)", check, seeds=frames, strategy=mutated(frames),
             generate=lambda rng: mutate(rng, frames), count=PROCESS_INPUTS * 10,
             per_input_s=10, batch=5)


def _handshake(port: int, request: bytes) -> bytes:
    """The server's answer to a raw HTTP request (the request is ended by a half-close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may answer and close before it has read it all
            pass
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    return answer


def test_ocpp_handshakes_over_a_socket(goe: tuple[GoEOcppCharger, int, Errors]) -> None:
    _, port, errors = goe
    requests = seeds.handshakes(f"/{BOX}", _authorization())

    def check(request: bytes) -> None:
        answer = _handshake(port, request)
        if answer:  # 101 or a refusal (4xx; 505 for an HTTP version it does not speak)
            status = answer.split(b"\r\n", 1)[0]
            assert status[:9] == b"HTTP/1.1 " and (status[9:10] in (b"1", b"4")
                                                    or status[9:12] == b"505"), status
        assert not errors.records, errors.records[0].getMessage()

    fuzz("process: OCPP handshakes (socket)", check, seeds=requests,
         strategy=mutated(requests), generate=lambda rng: mutate(rng, requests),
         count=PROCESS_INPUTS * 5, per_input_s=10, batch=5)
    with _open(port) as ws:  # and a good client still gets in
        ws.send(json.dumps([2, "h", "Heartbeat", {}]))
        while (reply := json.loads(ws.recv(timeout=10)))[0] == 2:
            ws.send(json.dumps([4, reply[1], "NotImplemented", "", {}]))
        assert reply[:2] == [3, "h"]
