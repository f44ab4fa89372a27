"""Fuzzing helpers: feed a reader hostile bytes; the only allowed failure is the project's error.

:func:`check_reader` runs one reader on one file under a time limit (``SIGALRM``) and an
address-space cap (``RLIMIT_AS``, a few GiB above what the process already maps). The outcome
must be a normal return or one of the project's clear errors (a ``ValueError`` subclass such as
``FormatError`` or ``ConfigError``) whose message names the file. Anything else fails the test:
another exception (a bare ``MemoryError`` included), a hang, a peak resident memory that grew by
more than :data:`MAX_RSS_GROWTH`, or an error message that does not say which file is wrong.

:func:`fuzz_bytes` draws inputs both at random and by mutating valid files (byte flips,
interesting values, insertions, deletions, truncation, repeated chunks). Outcomes are counted
per reader in :data:`TALLIES`; ``tests/reliability/conftest.py`` writes them to the JSON file
named by ``$POSETRANSFER_FUZZ_REPORT`` at the end of the session (figures for BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import resource
import signal
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from posetransfer.config import ConfigError
from posetransfer.data.formats import FormatError
from posetransfer.infer.images import ImageInputError
from posetransfer.infer.pipeline import PoseInputError
from posetransfer.infer.video import VideoInputError
from posetransfer.train.checkpoint import CheckpointError

#: The project's clear errors: the only exceptions a reader may raise on hostile input.
PROJECT_ERRORS: tuple[type[Exception], ...] = (
    FormatError,
    ConfigError,
    CheckpointError,
    ImageInputError,
    VideoInputError,
    PoseInputError,
)

#: Examples per reader in the default run and in the ``slow`` run.
QUICK_EXAMPLES = 40
SLOW_EXAMPLES = 10_000

#: Resident memory a reader may add to the process's peak (``ru_maxrss``) on one input.
MAX_RSS_GROWTH = 1 << 30

#: Byte strings that tend to break parsers: bounds, signs, huge and odd numbers, delimiters.
INTERESTING: tuple[bytes, ...] = (
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\xfe\xff", b"\xef\xbb\xbf", "\u00e9".encode(),
    b"-1", b"0", b"-0", b"9" * 40, b"1" * 5000, b"1e999", b"-1e999", b"NaN", b"Infinity",
    b"null", b"true", b"[", b"]", b"{", b"}", b"[" * 3000, b":", b",", b'"', b"'", b"\n",
    b"\r", b" ", b"#", b"\\", b"&a", b"*a", b"!!python/object:os.system", b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80", b"\xff" * 8,
)  # fmt: skip


class ReaderCrash(AssertionError):
    """A reader failed in a way other than the project's clear error."""


class _Timeout(BaseException):
    """Raised by the alarm; a BaseException so readers' ``except Exception`` cannot swallow it."""


@dataclass
class Tally:
    """What one reader did with the inputs it was given."""

    tried: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"tried": self.tried, "ok": self.ok, "errors": dict(sorted(self.errors.items()))}


#: Outcomes by reader name, over the whole session.
TALLIES: dict[str, Tally] = {}

#: Byte-flip outcomes by file name (tests/reliability/test_corruption.py): detected, unchanged.
FLIPS: dict[str, dict[str, int]] = {}

#: When a list, crashes are appended to it instead of raised (to survey a reader's crashes).
COLLECTED: list[str] | None = None


def _mapped_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def limits(seconds: float, extra_memory: int) -> Iterator[None]:
    """Raise :class:`_Timeout` after ``seconds``; cap the address space at now + extra."""

    def alarm(signum: int, frame: object) -> None:
        raise _Timeout

    old_handler = signal.signal(signal.SIGALRM, alarm)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped_bytes() + extra_memory
    if old_limit[1] != resource.RLIM_INFINITY:
        cap = min(cap, old_limit[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, old_limit[1]))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def check_reader(
    name: str,
    reader: Callable[[Path], object],
    path: Path,
    *,
    names: Sequence[str | Path] = (),
    allowed: tuple[type[Exception], ...] = PROJECT_ERRORS,
    timeout_s: float = 20.0,
    extra_memory: int = 3 << 30,
) -> str:
    """Run ``reader(path)`` and classify the outcome; raise :class:`ReaderCrash` on a crash.

    Args:
        name: The reader's name in :data:`TALLIES` and in failure messages.
        reader: Reads ``path`` (its return value is not checked here).
        path: The input file.
        names: What the error message may name instead of ``path`` (a folder holding it).
        allowed: The error classes that count as clear errors.
        timeout_s: Wall-clock limit; exceeding it is a hang.
        extra_memory: Address space the reader may add to what the process maps.

    Returns:
        ``"ok"`` or the name of the clear error's class.
    """
    try:
        return _check_reader(name, reader, path, names, allowed, timeout_s, extra_memory)
    except ReaderCrash as crash:
        if COLLECTED is None:
            raise
        COLLECTED.append(str(crash))
        return "crash"


def _check_reader(
    name: str,
    reader: Callable[[Path], object],
    path: Path,
    names: Sequence[str | Path],
    allowed: tuple[type[Exception], ...],
    timeout_s: float,
    extra_memory: int,
) -> str:
    tally = TALLIES.setdefault(name, Tally())
    tally.tried += 1
    size = path.stat().st_size if path.is_file() else None
    peak = _peak_rss()
    try:
        with limits(timeout_s, extra_memory):
            reader(path)
    except _Timeout:
        raise ReaderCrash(f"{name}: no result after {timeout_s} s ({size} bytes)") from None
    except allowed as exc:
        _check_memory(name, peak)
        message = str(exc)
        if not any(str(n) in message for n in (path, *names)):
            raise ReaderCrash(f"{name}: the error does not name {path}: {message}") from exc
        kind = type(exc).__name__
        tally.errors[kind] += 1
        return kind
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ReaderCrash(f"{name}: {type(exc).__name__}: {exc} ({size} bytes)") from exc
    _check_memory(name, peak)
    tally.ok += 1
    return "ok"


def _check_memory(name: str, peak_before: int) -> None:
    grown = _peak_rss() - peak_before
    if grown > MAX_RSS_GROWTH:
        raise ReaderCrash(f"{name}: peak resident memory grew by {grown >> 20} MiB on one input")


# ------------------------------------------------------------------------------------ strategies


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_ops: int = 4) -> bytes:
    """``seed`` changed by 1 to ``max_ops`` random edits."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        ops = ("flip", "set", "insert", "random", "delete", "cut", "repeat", "grow")
        op = draw(st.sampled_from(ops))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "set" and data:
            value = draw(st.sampled_from(INTERESTING))
            data[pos : pos + len(value)] = value
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(INTERESTING))
        elif op == "random":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "cut":
            del data[pos:]
        elif op == "repeat" and data:
            end = pos + draw(st.integers(1, 64))
            data[pos:pos] = data[pos:end] * draw(st.integers(1, 200))
        elif op == "grow" and data:  # one long field or line (parsers' size limits)
            data[pos:pos] = data[pos : pos + 1] * draw(st.integers(1000, 200_000))
    return bytes(data)


def fuzz_bytes(
    seeds: Sequence[bytes], *, text: bool = False, extra: Sequence[st.SearchStrategy[bytes]] = ()
) -> st.SearchStrategy[bytes]:
    """Mutated valid files (half of the draws), random bytes, random text (``text``), ``extra``."""
    valid = st.sampled_from(list(seeds))
    branches = [valid.flatmap(mutated), valid.flatmap(mutated), st.binary(max_size=4096)]
    if text:
        branches.append(st.text(max_size=2000).map(lambda s: s.encode("utf-8", "surrogatepass")))
    return st.one_of(*branches, *extra)


def run_fuzz(
    strategy: st.SearchStrategy[Any], body: Callable[[Any], object], examples: int
) -> None:
    """Call ``body`` on ``examples`` draws of ``strategy`` (deterministic in the quick run)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=examples < SLOW_EXAMPLES,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: Any) -> None:
        body(value)

    run()
