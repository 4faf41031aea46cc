"""Report how many inputs each parser got (and write them to $DIVERT_FUZZ_REPORT as JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fuzz.harness import COUNTS, SEED, TARGETS


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int) -> None:
    if not COUNTS:
        return
    tr = terminalreporter
    tr.section("fuzz: inputs per parser")
    for name in sorted(COUNTS):
        tr.write_line(f"{name:28} {COUNTS[name]:>9,}  (target {TARGETS.get(name, 0):,})")
    failed = [r.nodeid for r in tr.stats.get("failed", []) if "/fuzz/" in r.nodeid]
    tr.write_line(f"failures: {len(failed)}; the bulk's DIVERT_FUZZ_SEED={SEED}")
    report = os.environ.get("DIVERT_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({"seed": SEED,
                                            "inputs": dict(sorted(COUNTS.items())),
                                            "failed": failed}, indent=1) + "\n")
