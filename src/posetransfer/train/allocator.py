"""Keep freed tensor memory in the process heap (glibc) so a training step stops page-faulting.

Why: torch's CPU allocator is plain ``malloc``. glibc serves blocks above its mmap threshold
(dynamic, at most 32 MiB on 64-bit) with a fresh ``mmap`` and returns them with ``munmap`` on
free, so every such tensor of every step is zero-filled again by the kernel on first touch. At
256x256 batch 8 one 16-channel float map is 32 MiB and the generator's concatenated skips are
64 MiB: measured on the 2-core benchmark machine (``benchmarks/train_mfu.py``), about a third of
the default training step's CPU time was system time spent in those page faults. Raising the
mmap threshold and the trim threshold keeps the blocks in the heap, where the next step reuses
them. Results are unchanged bit for bit (only where memory comes from changes); the price is a
higher peak resident set (freed blocks stay mapped and the heap fragments: about +0.6 GB for
that step).

Nothing happens at import time: :func:`retain_freed_memory` is called by
:func:`posetransfer.train.loop.run_training` when a run starts and by the benchmarks. It is a
no-op (returning False) where the C library has no ``mallopt`` (musl, macOS, Windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["DEFAULT_THRESHOLD", "retain_freed_memory"]

logger = logging.getLogger(__name__)

#: Blocks up to this size come from the heap and freed heap memory up to it stays mapped (1 GiB:
#: above any activation of the default config at 256x256 batch 8).
DEFAULT_THRESHOLD = 1 << 30

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_MAX_INT = 2**31 - 1


def retain_freed_memory(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds to ``threshold`` bytes for this process.

    Args:
        threshold: Bytes, ``1 <= threshold <= 2**31 - 1`` (a C ``int``).

    Returns:
        True when both settings were accepted; False where ``mallopt`` is unavailable or refused
        them (the process then runs with the C library's defaults).

    Raises:
        ValueError: For a threshold outside ``[1, 2**31 - 1]``.
    """
    if not isinstance(threshold, int) or not 1 <= threshold <= _MAX_INT:
        raise ValueError(
            f"threshold must be an int in [1, {_MAX_INT}], got threshold={threshold!r}"
        )
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        logger.debug("no mallopt in the C library (%s): allocator left at its defaults", name)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, threshold))
    logger.debug("mallopt mmap/trim threshold %d bytes: %s", threshold, "set" if ok else "refused")
    return ok
