"""The `divert` command's own error paths: a reader that goes away, Ctrl-C, `-v` anywhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from divert.cli import main

HEADER = "time,solar_w,load_w\n"


def test_a_closed_pipe_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # Issue 14: `divert simulate --json | head` ended in a BrokenPipeError traceback.
    proc = subprocess.Popen([sys.executable, "-m", "divert.cli", "simulate", "--json", "--out",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the summary is printed
    err = proc.stderr.read()
    assert proc.wait(60) == 1
    assert err == "divert: output closed early (broken pipe)\n"


def test_ctrl_c_is_one_line_and_exit_1(tmp_path: Path) -> None:
    trace = tmp_path / "week.csv"
    rows = [f"{1.7e9 + 60 * i:.0f},{2000 + i % 700},300" for i in range(7 * 1440)]
    trace.write_text(HEADER + "\n".join(rows) + "\n")
    code = ("import sys\nfrom divert.cli import main\nprint('ready', flush=True)\n"
            "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, "simulate", "--plant", "realistic",
                             "--trace", str(trace), "--out", str(tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.5)  # main() runs by now: simulating a week takes many seconds
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err == "divert: interrupted\n"


@pytest.mark.parametrize("args", [["-v", "check-config", "-c", "{cfg}"],
                                  ["check-config", "-c", "{cfg}", "-v"],
                                  ["check-config", "--verbose", "-c", "{cfg}"]])
def test_verbose_before_or_after_the_subcommand(tmp_path: Path, args: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[chargers]]\nname = "a"\ntype = "simulated"\n')
    assert main([a.format(cfg=cfg) for a in args]) == 0
    assert "valid" in capsys.readouterr().out


class _Answer(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def answer() -> Iterator[ThreadingHTTPServer]:
    """Something on loopback that answers /api/state with `_Answer.body`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()


@pytest.mark.parametrize("body", [
    # Found by the fuzz harness (issue 14): each ended in a traceback.
    {"time_s": 1e18, "version": "x", "mode": "solar", "site": {}, "chargers": []},  # Overflow
    {"time_s": 1.7e9, "version": "x", "mode": "solar", "chargers": [],
     "site": {"feeds": ["grid"], "surplus_w": 1, "grid_w": 1}},  # AttributeError
])
def test_divert_status_with_an_answer_that_is_not_divert_s(
        tmp_path: Path, answer: ThreadingHTTPServer, body: dict[str, object],
        capsys: pytest.CaptureFixture[str]) -> None:
    _Answer.body = json.dumps(body).encode()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[metrics]\nlisten = "127.0.0.1:{answer.server_address[1]}"\n')
    assert main(["status", "-c", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "answered JSON divert does not know" in err and err.count("\n") == 1
