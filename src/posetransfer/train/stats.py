"""Training statistics: scalar means over ranks, ``stats.jsonl``, TensorBoard, sample grids.

``run_dir/stats.jsonl`` gets one JSON object per line, ``{"kind": "train", "step": ...}`` at
every log step and ``{"kind": "val", "step": ...}`` after every validation. It is an append-only
log (appending is what makes it cheap); a resumed run first rewrites it, atomically, without the
lines past the resumed step so steps stay increasing. TensorBoard scalars go to ``run_dir/tb/``
(``torch.utils.tensorboard`` is imported only when a writer is made). Only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from posetransfer.io import atomic_open, atomic_write_text
from posetransfer.train.distributed import DistInfo, all_reduce_sum_

__all__ = [
    "ScalarMeans",
    "StatsWriter",
    "json_safe",
    "make_grid",
    "save_image_grid",
    "truncate_jsonl",
]

logger = logging.getLogger(__name__)

STATS_FILE = "stats.jsonl"
TB_DIR = "tb"


class ScalarMeans:
    """Running sums of logged scalars, averaged over steps and ranks on :meth:`pop`.

    Tensor values stay on their device until :meth:`pop`, so adding them costs no
    synchronisation.
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float | torch.Tensor]) -> None:
        """Add one step's values (python numbers or one-element tensors)."""
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(
                        f"logged value {key!r} must be a scalar, got shape {tuple(value.shape)}"
                    )
                value = value.detach().reshape(()).double()
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"logged value {key!r} must be a number, got {value!r}")
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1

    def pop(self, info: DistInfo, device: torch.device) -> dict[str, float]:
        """Means since the last pop, averaged over ranks (a collective: all ranks call it).

        Every rank must have logged the same keys.
        """
        keys = sorted(self._sums)
        sums, counts = self._sums, self._counts
        self._sums, self._counts = {}, {}
        if not keys:  # the same on every rank when they log the same keys
            return {}
        packed = torch.stack(
            [torch.as_tensor(sums[k], dtype=torch.float64, device=device) for k in keys]
            + [torch.tensor(float(counts[k]), dtype=torch.float64, device=device) for k in keys]
        )
        all_reduce_sum_(packed, info)
        values = packed.cpu().tolist()
        totals, counts_all = values[: len(keys)], values[len(keys) :]
        return {k: t / c for k, t, c in zip(keys, totals, counts_all, strict=True)}


def truncate_jsonl(path: str | os.PathLike[str], max_step: int) -> int:
    """Rewrite ``path`` keeping only parseable lines with ``step <= max_step``.

    Returns:
        The number of lines dropped (0 if the file does not exist).
    """
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            keep = json.loads(line)["step"] <= max_step
        except (ValueError, KeyError, TypeError):
            keep = False  # a line cut short by a crash
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return dropped


class StatsWriter:
    """Writes ``stats.jsonl`` and TensorBoard scalars for one run (a no-op when disabled).

    Args:
        run_dir: The run folder.
        enabled: False on ranks other than 0.
        tensorboard: Also write TensorBoard events under ``run_dir/tb``.
        start_step: Step the run starts (or resumes) at; later lines and events are dropped.
    """

    def __init__(
        self, run_dir: str | os.PathLike[str], *, enabled: bool, tensorboard: bool, start_step: int
    ) -> None:
        self.path = Path(run_dir) / STATS_FILE
        self.enabled = enabled
        self._tb: Any = None
        if not enabled:
            return
        dropped = truncate_jsonl(self.path, start_step)
        if dropped:
            logger.info("dropped %d line(s) past step %d from %s", dropped, start_step, self.path)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when used

            self._tb = SummaryWriter(str(Path(run_dir) / TB_DIR), purge_step=start_step + 1)

    def write(self, record: Mapping[str, Any], scalars: Mapping[str, float]) -> None:
        """Append ``record`` (must hold ``step``) as a JSON line; log ``scalars`` to TensorBoard."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(json_safe(record)) + "\n")
        if self._tb is not None:
            for tag, value in scalars.items():
                self._tb.add_scalar(tag, value, record["step"])
            self._tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def json_safe(x: Any) -> Any:
    """Non-finite floats as strings ("nan", "inf"): strict JSON has no NaN."""
    if isinstance(x, Mapping):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


# ------------------------------------------------------------------------------------------------
# Sample grids.


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> torch.Tensor:
    """Tile images into one, row-major, with ``padding`` pixels of zeros around each.

    Args:
        images: ``(N, C, H, W)``.
        nrow: Images per row.
        padding: Border width in pixels.

    Returns:
        ``(C, rows*(H+p)+p, cols*(W+p)+p)`` with ``cols = min(nrow, N)``.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be (N, C, H, W) with N > 0, got {tuple(images.shape)}")
    if nrow < 1 or padding < 0:
        raise ValueError(f"need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    n, c, h, w = images.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = images.new_zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for i in range(n):
        top = (i // cols) * (h + padding) + padding
        left = (i % cols) * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def save_image_grid(
    images: torch.Tensor,
    path: str | os.PathLike[str],
    nrow: int = 8,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> Path:
    """Write a grid of images as a PNG, atomically.

    Args:
        images: ``(N, C, H, W)`` with C = 1 or 3, values in ``value_range`` (clamped).
        path: Destination ``.png``.
        nrow: Images per row.
        value_range: The values mapped to black and white (images are ``[-1, 1]`` in models).

    Returns:
        ``path``.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    grid = make_grid(images.detach().float().cpu(), nrow=nrow)
    scaled = ((grid.clamp(lo, hi) - lo) / (hi - lo) * 255.0).round().to(torch.uint8)
    array = scaled.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else np.ascontiguousarray(array))
    path = Path(path)
    with atomic_open(path, "wb") as f:
        pil.save(f, format="PNG")
    return path
