"""Where this process runs: torch CPU threads, the compute device, its rank in a ``torchrun`` job.

Each is resolved here and nowhere else: commands, stages and experiments call
:func:`set_torch_threads` (or :func:`torch_threads` for a scoped change), :func:`resolve_device`
and :func:`dist_info_from_env`. Nothing happens at import time: no thread count, device or
process group is touched until a function is called.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

__all__ = [
    "DEVICE_CHOICES",
    "DistInfo",
    "dist_info_from_env",
    "is_main_process",
    "resolve_device",
    "set_torch_threads",
    "torch_threads",
]

#: Device names a config or a ``--device`` option accepts.
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


# ------------------------------------------------------------------------------------ threads


def set_torch_threads(count: int | None) -> None:
    """Set torch's intra-op CPU threads; ``None`` or 0 keeps the current setting.

    On small CPU machines one thread is often several times faster than torch's default (see
    DESIGN.md, environment facts), which is why commands expose the count.

    Raises:
        ValueError: ``count`` is negative (or not an integer).
    """
    if count is None or count == 0:
        return
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"thread count must be an integer >= 0, got {count!r}")
    torch.set_num_threads(count)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """:func:`set_torch_threads` inside the block; the previous count is restored after it."""
    before = torch.get_num_threads()
    set_torch_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------ device


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """Map a config device name (``"auto"``, ``"cpu"``, ``"cuda"``) to this process's device.

    ``"auto"`` is CUDA when available, else the CPU; a CUDA device is ``cuda:local_rank``.

    Raises:
        ValueError: On an unknown name or ``"cuda"`` without CUDA.
    """
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' but no CUDA device is available (torch.cuda.is_available() is False)"
        )
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) visible"
        )
    return torch.device("cuda", local_rank)


# -------------------------------------------------------------------------------------- rank


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: Global rank, 0 .. world_size - 1.
        world_size: Number of processes.
        local_rank: Rank on this machine (picks the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part (collectives are real)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the only one that writes files."""
        return self.rank == 0


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def dist_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by ``torchrun``).

    Args:
        env: The environment to read (default: ``os.environ``).

    Raises:
        ValueError: On non-integer or inconsistent values.
    """
    env = os.environ if env is None else env
    world_size = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", rank if world_size > 1 else 0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world_size} "
            f"LOCAL_RANK={local_rank}"
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def is_main_process() -> bool:
    """Whether this process is rank 0 of its job (always true outside ``torchrun``)."""
    return dist_info_from_env().is_main
