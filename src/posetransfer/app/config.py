"""What the web app accepts: :class:`AppConfig` (server, limits, queue) and :class:`AppInputError`.

Everything here is plain Python (no Gradio), so ``posetransfer serve --dry-run`` and the command
table work without the ``app`` extra. The defaults are the safe ones: the server listens on the
loopback interface only, uploads are capped in size, photos are shrunk while read, driving videos
are cut to a number of frames, and one model job runs at a time behind a bounded queue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from posetransfer.config import ConfigError

__all__ = [
    "DEFAULT_RUN",
    "DEMO_RUNS",
    "LOCAL_HOSTS",
    "AppConfig",
    "AppInputError",
    "check_upload",
    "default_checkpoint",
    "human_size",
]

#: The run that ``make demo`` trains, relative to the working directory.
DEFAULT_RUN: Final[Path] = Path("demo_out") / "runs" / "full"

#: Where :func:`default_checkpoint` looks, in order: :data:`DEFAULT_RUN`, then the folder the
#: demo trains its variants in (``demo_out/work/runs/full``).
DEMO_RUNS: Final[tuple[Path, ...]] = (DEFAULT_RUN, Path("demo_out") / "work" / "runs" / "full")

#: Host names that only this machine can reach.
LOCAL_HOSTS: Final[frozenset[str]] = frozenset({"127.0.0.1", "localhost", "::1"})

_MB: Final[int] = 1024 * 1024


class AppInputError(ValueError):
    """An upload or setting the app cannot use; the message is shown to the person as it is."""


@dataclass(frozen=True)
class AppConfig:
    """Settings of ``posetransfer serve``.

    Attributes:
        checkpoint: The ``posetransfer train`` run to serve; null: the full model that
            ``make demo`` trains (``demo_out/runs/full`` or ``demo_out/work/runs/full``).
        which: Checkpoint of the run: ``"best"`` (else the latest) or ``"latest"``.
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        precision: ``"fp32"``, or ``"bf16"``: the networks in bfloat16 (about twice as fast
            on CPUs with native bfloat16, slightly different images).
        host: Interface to listen on; the default is reachable from this machine only.
        port: TCP port; 0 picks a free one.
        flow: The flow path selected when the page opens (``"regressor"`` or ``"3d"``).
        max_upload_mb: Largest upload (photo or video) in MiB; larger ones are refused.
        max_photo_pixels: Photos with more pixels are shrunk (aspect kept) while they are read.
        max_video_frames: Most driving-video frames used; a longer video is cut there.
        batch_size: Video frames rendered per network call (null: the fastest per frame,
            ``posetransfer.infer.motion.MotionOptions``).
        concurrency: Model jobs (re-posing, detection, animation) running at the same time.
        queue_size: Jobs that may wait; more are refused with "the queue is full".
        temp_dir: Parent of the server's temporary folder (null: the system's); the folder holds
            uploads and results and is deleted when the server stops.
        keep_minutes: Uploads and results older than this are deleted while the server runs.
    """

    checkpoint: str | None = None
    which: Literal["best", "latest"] = "best"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    host: str = "127.0.0.1"
    port: int = 7860
    flow: Literal["regressor", "3d"] = "regressor"
    max_upload_mb: float = 50.0
    max_photo_pixels: int = 4_000_000
    max_video_frames: int = 150
    batch_size: int | None = None
    concurrency: int = 1
    queue_size: int = 16
    temp_dir: str | None = None
    keep_minutes: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535 (0: any free port), got {self.port}")
        if not self.host.strip():
            raise ConfigError("host must not be empty (127.0.0.1 serves this machine only)")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.flow not in ("regressor", "3d"):
            raise ConfigError(f"flow must be 'regressor' or '3d', got {self.flow!r}")
        for name in ("max_upload_mb", "keep_minutes"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("max_photo_pixels", "max_video_frames", "batch_size", "concurrency"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size}")

    @property
    def max_upload_bytes(self) -> int:
        """:attr:`max_upload_mb` in bytes."""
        return int(self.max_upload_mb * _MB)

    @property
    def is_local(self) -> bool:
        """Whether :attr:`host` is reachable from this machine only."""
        return self.host in LOCAL_HOSTS or self.host.startswith("127.")


def default_checkpoint(cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """The first of :data:`DEMO_RUNS` under ``cwd`` (default: the working directory) that holds
    a run (a ``config.yaml``), else None."""
    for run in DEMO_RUNS:
        path = Path(cwd or ".") / run
        if (path / "config.yaml").is_file():
            return path
    return None


def check_upload(path: str | os.PathLike[str], what: str, max_bytes: int) -> Path:
    """The uploaded file ``path``, checked to exist, be a file and be at most ``max_bytes``.

    Args:
        path: Where the server stored the upload.
        what: What it should be, for messages (``"photo"``, ``"driving video"``).
        max_bytes: The size limit.

    Raises:
        AppInputError: Missing, not a file, empty or too large.
    """
    file = Path(path)
    if not file.is_file():
        raise AppInputError(f"the {what} upload is missing; upload it again")
    size = file.stat().st_size
    if size == 0:
        raise AppInputError(f"the {what} is an empty file")
    if size > max_bytes:
        raise AppInputError(
            f"the {what} is {human_size(size)}; this server accepts at most {human_size(max_bytes)}"
        )
    return file


def human_size(count: int) -> str:
    """``count`` bytes as ``"512 bytes"``, ``"1.5 KiB"`` or ``"50 MiB"`` (3 significant digits)."""
    if count < 1024:
        return f"{count} bytes"
    if count < _MB:
        return f"{count / 1024:.3g} KiB"
    return f"{count / _MB:.3g} MiB"
