"""Latency and footprint of the daemon, through a real mosquitto.

1. Latency: the daemon runs in this process with a simulated charger whose set_current is
   wrapped to note the time. Each change publishes a grid value (QoS 0) that calls for a new
   current and waits until the charger receives it: publish → broker → paho thread → feed →
   kick → control loop (debounce) → control cycle → the charger's worker → actuator →
   driver. Changes are `--gap-s` apart, like a meter publishing quickly (a gap shorter than
   the daemon's 50 ms debounce would measure the debounce instead).
2. Idle footprint: `divert run` as a subprocess with one charger, fed one unchanged grid
   value per second (a real meter's rhythm); CPU time over `--idle-s` from /proc/<pid>/stat
   and RSS from /proc/<pid>/status once it has settled. The bar: RSS at most
   `MAX_RSS_MIB`; the benchmark exits 1 above it.

Run: .venv/bin/python bench/latency.py [--changes 1000] [--idle-s 60] [--json out.json]
It starts its own mosquitto unless given --broker HOST:PORT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from chargers.simulated import SimulatedCharger
from divert.config import validate
from divert.daemon.service import Daemon

VOLTS = 230.0
MAX_RSS_MIB = 45.0  # idle `divert run` with one charger (docs/performance.md)
PRESET = """\
[policy]
kind = "surplus"
import_weight = 1000.0
level_tau_s = 0.0
slow_tau_s = 0.0
start_hold_s = 0.0
bridge_s = 0.0
[relay]
min_on_s = 0
min_off_s = 0
max_starts_per_hour = 60
max_starts_per_day = 1000
min_phase_switch_s = 0
phase_tau_s = 0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def broker(given: str | None, workdir: Path) -> Iterator[tuple[str, int]]:
    """A private mosquitto on a free port, or the one given as HOST:PORT."""
    if given:
        host, _, port = given.rpartition(":")
        yield host, int(port)
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        proc.wait(5)


def config(host: str, port: int, workdir: Path) -> dict[str, Any]:
    preset = workdir / "bench-preset.toml"
    preset.write_text(PRESET)
    return {
        "mqtt": {"host": host, "port": port, "client_id": f"divert-bench-{os.getpid()}"},
        "feeds": {"grid": {"topic": "bench/grid", "includes_ev": False}},
        "policy": {"preset": str(preset), "mode": "solar"},
        "chargers": [{"name": "bench", "type": "simulated", "min_current_a": 6,
                      "max_current_a": 32}],
        "metrics": {"listen": ""},
        "state": {"path": str(workdir / "state.json")},
    }


def publisher(host: str, port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.connect(host, port)
    client.loop_start()
    return client


def percentile(sorted_s: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, round(q / 100 * len(sorted_s) + 0.5 - 1e-9))
    return sorted_s[min(len(sorted_s), rank) - 1]


def measure_latency(host: str, port: int, workdir: Path, changes: int,
                    gap_s: float) -> dict[str, float]:
    daemon = Daemon(validate(config(host, port, workdir), Path("bench.toml")))
    charger = daemon.chargers["bench"]
    assert isinstance(charger, SimulatedCharger)
    received: dict[float, float] = {}
    arrived = threading.Condition()
    original = charger.set_current

    def noting_set_current(current_a: float) -> None:
        original(current_a)
        with arrived:
            received[current_a] = time.perf_counter()
            arrived.notify_all()

    charger.set_current = noting_set_current  # type: ignore[method-assign]
    pub = publisher(host, port)
    daemon.start()
    latencies_s: list[float] = []
    try:
        # Warm up until charging (the subscription is live once values get through).
        while not charger.enabled:
            pub.publish("bench/grid", str(-(10 * VOLTS + 50)))
            time.sleep(0.1)
        current_a = charger.current_a
        for i in range(changes):
            target_a = 8.0 + (i * 7) % 23  # 8..30 A, never twice the same in a row
            if target_a == current_a:
                target_a += 1
            with arrived:
                received.pop(target_a, None)
            started = time.perf_counter()
            pub.publish("bench/grid", f"{-(target_a * VOLTS + 50):.0f}")
            with arrived:
                if not arrived.wait_for(lambda t=target_a: t in received, timeout=5):
                    raise RuntimeError(f"change {i}: {target_a} A never arrived")
                latencies_s.append(received[target_a] - started)
            current_a = target_a
            time.sleep(gap_s)
    finally:
        daemon.stop()
        pub.disconnect()
        pub.loop_stop()
    ms = sorted(x * 1000 for x in latencies_s)
    return {"changes": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": ms[-1], "mean_ms": statistics.fmean(ms)}


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def measure_idle(host: str, port: int, workdir: Path, idle_s: float) -> dict[str, float]:
    data = config(host, port, workdir)
    data["mqtt"]["client_id"] = f"divert-bench-idle-{os.getpid()}"
    cfg = workdir / "idle.toml"
    cfg.write_text(json_to_toml(data))
    proc = subprocess.Popen([sys.executable, "-m", "divert.cli", "run", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pub = publisher(host, port)
    try:
        settle_until = time.monotonic() + 5
        while time.monotonic() < settle_until:  # start-up and the first cycles
            pub.publish("bench/grid", "-3000")
            time.sleep(1)
        cpu0, t0 = _cpu_s(proc.pid), time.monotonic()
        while time.monotonic() - t0 < idle_s:
            pub.publish("bench/grid", "-3000")
            time.sleep(1)
        cpu1, t1 = _cpu_s(proc.pid), time.monotonic()
        rss_kb, peak_kb = _status_kb(proc.pid, "VmRSS"), _status_kb(proc.pid, "VmHWM")
        threads = _status_kb(proc.pid, "Threads")
    finally:
        proc.terminate()
        proc.wait(10)
        pub.disconnect()
        pub.loop_stop()
    return {"window_s": t1 - t0, "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
            "rss_mib": rss_kb / 1024, "peak_rss_mib": peak_kb / 1024, "threads": threads}


def json_to_toml(data: dict[str, Any]) -> str:
    """The bench config as TOML (flat tables, arrays of tables, strings and numbers)."""
    out: list[str] = []
    for table, body in data.items():
        for entry in body if isinstance(body, list) else [body]:
            out.append(f"[[{table}]]" if isinstance(body, list) else f"[{table}]")
            for key, value in entry.items():
                if isinstance(value, dict):
                    continue
                out.append(f"{key} = {json.dumps(value)}")
            for key, value in entry.items():
                if isinstance(value, dict):
                    out.append(f"[{table}.{key}]")
                    out.extend(f"{k} = {json.dumps(v)}" for k, v in value.items())
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--gap-s", type=float, default=0.1, help="pause between changes")
    parser.add_argument("--idle-s", type=float, default=60.0, help="0 skips the idle part")
    parser.add_argument("--broker", help="HOST:PORT of a broker to use instead of our own")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="divert-bench-") as tmp, \
            broker(args.broker, Path(tmp)) as (host, port):
        result: dict[str, Any] = {"latency": measure_latency(host, port, Path(tmp),
                                                             args.changes, args.gap_s)}
        if args.idle_s > 0:
            result["idle"] = measure_idle(host, port, Path(tmp), args.idle_s)
    lat = result["latency"]
    print(f"latency over {lat['changes']} changes: p50 {lat['p50_ms']:.2f} ms, "
          f"p90 {lat['p90_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms"
          f", mean {lat['mean_ms']:.2f} ms")
    if "idle" in result:
        idle = result["idle"]
        print(f"idle over {idle['window_s']:.0f} s: CPU {idle['cpu_pct']:.2f} %, RSS "
              f"{idle['rss_mib']:.1f} MiB (peak {idle['peak_rss_mib']:.1f} MiB, bar "
              f"{MAX_RSS_MIB:g} MiB), {idle['threads']} threads")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if "idle" in result and result["idle"]["rss_mib"] > MAX_RSS_MIB:
        print(f"FAILED: idle RSS above {MAX_RSS_MIB:g} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
