"""The latency benchmark runs (a small smoke invocation; the real run is in docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_latency_bench_smoke(tmp_path: Path, mosquitto: Any) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "latency.py"), "--changes", "20",
                           "--gap-s", "0.06", "--idle-s", "0", "--broker",
                           f"{mosquitto.host}:{mosquitto.port}", "--json", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    latency = json.loads(out.read_text())["latency"]
    assert latency["changes"] == 20
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert "latency over 20 changes" in proc.stdout
