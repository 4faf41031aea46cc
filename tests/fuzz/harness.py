"""The fuzz harness: seeds first, then property-based inputs (hypothesis: structured values
and mutants it can shrink), then the bulk as fast mutation from a seeded random generator;
a watchdog against hangs; the CLI run in a forked process.

Hypothesis costs about a millisecond an input, too slow for 100,000 inputs a parser in
minutes; the random mutator costs microseconds. Both use the same edits. A failure in the
bulk names the run's seed and the input's number, and saves the input under out/fuzz/.

Sizes come from the environment: `DIVERT_FUZZ_INPUTS` inputs per in-process parser (default
300: the slice `make test` runs), `DIVERT_FUZZ_PROCESS_INPUTS` per process-level target
(default 10) and `DIVERT_FUZZ_SEED` (default: random). `make fuzz` sets 100,000 and 2,000.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T = TypeVar("T")

INPUTS = int(os.environ.get("DIVERT_FUZZ_INPUTS", "300"))
PROCESS_INPUTS = int(os.environ.get("DIVERT_FUZZ_PROCESS_INPUTS", "10"))
SEED = int(os.environ.get("DIVERT_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
BATCH = 20  # inputs per hypothesis example: hypothesis' own cost is per example
FAILURES = Path(__file__).resolve().parents[2] / "out" / "fuzz"

COUNTS: Counter[str] = Counter()  # inputs given to each parser in this session
TARGETS: dict[str, int] = {}


class Hang(BaseException):
    """An input took longer than the watchdog allows (a BaseException: no parser's `except`
    can swallow it)."""


@contextlib.contextmanager
def watchdog(seconds: float, what: str) -> Iterator[None]:
    """Raise Hang in the main thread if the block runs longer than `seconds`."""
    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"{what}: no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fuzz(name: str, check: Callable[[Any], None], *, seeds: Sequence[Any] = (),
         strategy: st.SearchStrategy[Any], generate: Callable[[random.Random], Any],
         count: int = INPUTS, per_input_s: float = 2.0, weight: int = 1,
         batch: int = BATCH) -> None:
    """Give `check` every seed, then `count` inputs: a share drawn by hypothesis from
    `strategy` (Mutants arrive as their bytes), the rest made by `generate` from a random
    generator seeded with SEED. `check` raises on a failure. A value that holds `weight`
    inputs (run side by side) counts as that many."""
    TARGETS[name] = TARGETS.get(name, 0) + len(seeds) * weight + count
    before = COUNTS[name]
    for seed in seeds:
        with watchdog(per_input_s * 5, f"{name} seed"):
            check(seed)
        COUNTS[name] += weight
    count = math.ceil(count / weight)
    by_hypothesis = min(count, max(150 // weight, count // 20))

    @settings(max_examples=max(1, math.ceil(by_hypothesis / batch)), deadline=None,
              print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example,
                                     HealthCheck.filter_too_much])
    @given(st.lists(strategy, min_size=batch, max_size=batch))
    def run(values: list[Any]) -> None:
        with watchdog(per_input_s * batch, name):
            for value in values:
                check(plain(value))
                COUNTS[name] += weight

    run()
    rng = random.Random(f"{SEED}:{name}")
    for i in range(count - by_hypothesis):
        value = generate(rng)
        try:
            with watchdog(per_input_s * 5, name):
                check(value)
        except BaseException as exc:
            raise AssertionError(f"{name}: input {i} of the run with DIVERT_FUZZ_SEED={SEED}"
                                 f" failed ({exc!r}); the input: {_saved(name, value)}") from exc
        COUNTS[name] += weight
    # Hypothesis may stop early when it believes it has seen everything: that would be a
    # smaller run than the one reported.
    assert COUNTS[name] - before >= (count + len(seeds)) * weight, f"{name}: too few inputs"


def _saved(name: str, value: Any) -> str:
    FAILURES.mkdir(parents=True, exist_ok=True)
    path = FAILURES / f"{re.sub(r'[^A-Za-z0-9_.]+', '-', name)}-{SEED}-{time.time_ns()}.txt"
    path.write_text(repr(value) + "\n")
    text = repr(value)
    return f"{text[:200]}{'…' if len(text) > 200 else ''} (all of it in {path})"


# --- byte-level mutation ----------------------------------------------------------------

# Values that broke parsers before, or sit on a boundary: numbers a float cannot hold,
# non-ASCII digits and spaces, huge nesting, control bytes, protocol delimiters.
TOKENS: tuple[bytes, ...] = (
    b"0", b"-1", b"-0", b"1e308", b"1e400", b"-1e400", b"1e-400", b"NaN", b"nan", b"Infinity",
    b"-Infinity", b"inf", b"1" + b"0" * 400, b"9" * 5000, b"4294967295", b"18446744073709551616",
    b"65535", b"2147483648", b"1_000", "１２".encode(), "١٢".encode(), "\xa0".encode(),
    "\u2028".encode(), b"\x00", b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"true",
    b"null", b'""', b"[]", b"{}", b"[" * 5000, b"]" * 5000, b'{"a":' * 2000, b"\r", b"\n",
    b"\r\n", b"\t", b" ", b"^", b"*", b"$", b":", b",", b";", b".", b"=", b'"', b"'", b"\\",
    b"\\u0000", b"\\ud800", b"%", b"%00", b"&gt;", b"#", b"[[", b"]]", b"1979-05-27",
    b"9999-12-31T23:59:59", b"0001-01-01T00:00:00+14:00",
)
NUMBER_TOKENS = TOKENS[:22]  # the numbers among them, Unicode digits and spaces included


@dataclass(frozen=True)
class Mutant:
    """A seed after byte-level edits. Its repr names the seed and the edits, not the bytes,
    so a failing input reads in a line and shrinks fast."""

    seed: int
    ops: tuple[tuple[int, int, int, bytes], ...]
    data: bytes = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"Mutant(seed={self.seed}, ops={self.ops!r}, {len(self.data)} bytes: "
                f"{self.data[:80]!r}{'…' if len(self.data) > 80 else ''})")


def _edit(data: bytearray, op: int, at: int, n: int, piece: bytes,
          seeds: Sequence[bytes]) -> None:
    at = at % (len(data) + 1)
    if op == 0 and data:  # flip a bit
        data[at % len(data)] ^= 1 << (n % 8)
    elif op == 1:  # insert bytes
        data[at:at] = piece
    elif op == 2:  # delete a run
        del data[at:at + n]
    elif op == 3:  # repeat a slice
        data[at:at] = data[at:at + 1 + n % 16] * (1 + n)
    elif op == 4:  # a boundary token over a few bytes
        data[at:at + n % 5] = TOKENS[n % len(TOKENS)]
    elif op == 5:  # splice in the tail of another seed
        other = seeds[n % len(seeds)]
        data[at:] = other[n * 131 % (len(other) + 1):]
    else:  # a number swapped for a boundary value
        digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
        if digits:
            i = j = digits[at % len(digits)]
            while j < len(data) and 0x30 <= data[j] <= 0x39:
                j += 1
            data[i:j] = NUMBER_TOKENS[n % len(NUMBER_TOKENS)]


def mutated(seeds: Sequence[bytes], max_steps: int = 4) -> st.SearchStrategy[Mutant]:
    """A seed with a few byte-level edits: flipped bits, inserted or deleted runs, repeated
    slices, boundary tokens, or the tail of another seed spliced in."""
    op = st.tuples(st.integers(0, 6), st.integers(0, 1 << 16), st.integers(0, 63),
                   st.binary(min_size=1, max_size=8))

    def build(index: int, ops: list[tuple[int, int, int, bytes]]) -> Mutant:
        data = bytearray(seeds[index])
        for edit in ops:
            _edit(data, *edit, seeds)
        return Mutant(index, tuple(ops), bytes(data))

    return st.builds(build, st.integers(0, len(seeds) - 1),
                     st.lists(op, max_size=max_steps))


def mutate(rng: random.Random, seeds: Sequence[bytes], max_steps: int = 4) -> bytes:
    """A random seed with 0 to `max_steps` random edits (the ones `mutated` draws)."""
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(0, max_steps)):
        _edit(data, rng.randint(0, 6), rng.randint(0, 1 << 16), rng.randint(0, 63),
              rng.randbytes(rng.randint(1, 8)), seeds)
    return bytes(data)


def random_json(rng: random.Random, depth: int = 3, keys: Sequence[str] = ("a", "0")) -> Any:
    """Any JSON value, numbers of every size included; object keys mostly from `keys`."""
    kind = rng.randint(0, 7 if depth > 0 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1, 2**31, 2**64, 10**400, rng.randint(-10**6, 10**6)])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e308, -1e-300, math.nan, math.inf, rng.uniform(-1e4, 1e4)])
    if kind == 3:
        return rng.choice(TOKENS).decode("utf-8", "replace")[:12]
    if kind in (4, 5):
        return "".join(chr(rng.randint(0x20, 0x2FF)) for _ in range(rng.randint(0, 6)))
    if kind == 6:
        return [random_json(rng, depth - 1, keys) for _ in range(rng.randint(0, 4))]
    return {(rng.choice(keys) if rng.random() < 0.9 else str(random_json(rng, 0))):
            random_json(rng, depth - 1, keys) for _ in range(rng.randint(0, len(keys) + 1))}


def plain(value: Any) -> Any:
    """`value` with every Mutant in it (also inside tuples) replaced by its bytes."""
    if isinstance(value, Mutant):
        return value.data
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


# --- the CLI in a forked process ------------------------------------------------------------

@dataclass(frozen=True)
class Exit:
    """How one `divert …` run ended."""

    code: int
    stdout: str
    stderr: str
    seconds: float


def run_clis(runs: Sequence[Sequence[str]], timeout_s: float = 60.0) -> list[Exit]:
    """`divert <args>` for each of `runs` at the same time, each in a child forked from this
    process (the imports are paid once), with its own stdout, stderr and exit status as the
    console script would give them: an exception escaping main() prints a traceback and
    exits 1."""
    _warm()
    children = [_spawn(args) for args in runs]
    return [_reap(*child, timeout_s) for child in children]


def run_cli(args: Sequence[str], timeout_s: float = 60.0) -> Exit:
    return run_clis([args], timeout_s)[0]


@functools.cache
def _warm() -> None:
    """Import here what every child would import (every command's module, the plotting
    library): a forked child starts with it."""
    from divert.cli import build_parser
    from divert.sim import plot

    build_parser()
    if plot.available():
        import matplotlib.pyplot  # noqa: F401


def _spawn(args: Sequence[str]) -> tuple[Sequence[str], int, Any, Any, float]:
    from divert.cli import main

    out = tempfile.TemporaryFile()  # noqa: SIM115  (closed by _reap)
    err = tempfile.TemporaryFile()  # noqa: SIM115
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            logging.root.handlers.clear()  # pytest's capture handler is not the CLI's
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return args, pid, out, err, start


def _reap(args: Sequence[str], pid: int, out: Any, err: Any, start: float,
          timeout_s: float) -> Exit:
    with out, err:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > start + timeout_s:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise Hang(f"divert {' '.join(args)}: still running after {timeout_s:g} s")
            time.sleep(0.002)
        out.seek(0)
        err.seek(0)
        return Exit(os.waitstatus_to_exitcode(status), out.read().decode("utf-8", "replace"),
                    err.read().decode("utf-8", "replace"), time.monotonic() - start)
