"""Fixtures of the daemon's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .procs import NotifyListener


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    """The systemd side of sd_notify, for a `divert run` subprocess."""
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()
