"""Helpers of the kill -9 tests: run a command, SIGKILL it at a chosen moment, compare folders.

A command runs as ``python -m posetransfer ...`` in a child process with one torch thread.
:func:`run_and_kill` starts it, waits until a condition on its outputs holds (e.g. the k-th
image exists), optionally waits a little longer, and kills it with ``SIGKILL``: no handler, no
``finally``, no flush, as when a machine loses power or the OOM killer strikes.
:func:`snapshot` hashes every file of a folder so two runs can be compared byte for byte;
:func:`leftovers` lists temporary files and folders a run must not leave behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Names of temporary files and folders (atomic writes, checkpoint swaps, video parts).
TEMPORARY = re.compile(r"^\..*\.tmp$|^\.tmp-|^\.old-|\.part$")


def command_env() -> dict[str, str]:
    """The environment of a child command: one thread, no torchrun, the shared model cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.setdefault("ANNY_CACHE_DIR", str(REPO_ROOT / ".cache" / "anny"))
    env.setdefault("WARP_CACHE_PATH", str(REPO_ROOT / ".cache" / "warp"))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def command(args: Iterable[str | Path]) -> list[str]:
    return [sys.executable, "-m", "posetransfer", *map(str, args)]


def run(args: Iterable[str | Path], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command to the end; fail with its output unless it exits 0."""
    done = subprocess.run(
        command(args), env=command_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def run_and_kill(
    args: Iterable[str | Path],
    when: Callable[[], bool],
    *,
    delay: float = 0.0,
    timeout: float = 600,
) -> bool:
    """Start a command, SIGKILL it once ``when()`` holds (checked every 5 ms) plus ``delay`` s.

    Returns:
        True if it was killed, False if it finished first (then it must have exited 0).
    """
    process = subprocess.Popen(
        command(args), env=command_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and not when():
            assert time.monotonic() < deadline, f"{args}: the kill condition never held"
            time.sleep(0.005)
        if delay and process.poll() is None:
            time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        stderr = process.stderr.read().decode() if process.stderr else ""
        assert process.returncode == 0, f"{args} exited {process.returncode}:\n{stderr[-3000:]}"
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


def count(folder: Path, pattern: str) -> Callable[[], int]:
    """How many files match ``pattern`` under ``folder`` (temporary files not counted)."""

    def counter() -> int:
        if not folder.exists():
            return 0
        return sum(1 for p in folder.glob(pattern) if not TEMPORARY.search(p.name))

    return counter


def snapshot(folder: Path, ignore: Callable[[str], bool] = lambda rel: False) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder`` not ``ignore``d."""
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not ignore(rel):
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def leftovers(*folders: Path) -> list[str]:
    """Temporary files and folders under ``folders``."""
    return [
        str(path)
        for folder in folders
        if folder.exists()
        for path in folder.rglob("*")
        if TEMPORARY.search(path.name)
    ]


def differences(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    """Files missing, extra or different in ``got``."""
    problems = [f"missing {k}" for k in sorted(set(expected) - set(got))]
    problems += [f"extra {k}" for k in sorted(set(got) - set(expected))]
    problems += [f"differs {k}" for k in sorted(set(expected) & set(got)) if expected[k] != got[k]]
    return problems
