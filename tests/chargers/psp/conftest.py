"""A hand-moved clock and a plugged-in PSP emulator on loopback, for the PSP tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargers.psp.emulator import PSPEmulator


class Clock:
    """A clock a test moves by hand, in s."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def plugged_in(clock: Clock) -> Iterator[PSPEmulator]:
    """The emulator with a car plugged in, on the test's clock."""
    with PSPEmulator(clock=clock) as emulator:
        emulator.plug_in()
        yield emulator
