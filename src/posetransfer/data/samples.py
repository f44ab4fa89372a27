"""One source/target pair as the networks take it (:class:`PairSample`), and batches of them.

:class:`~posetransfer.data.datasets.PairDataset` returns :class:`PairSample` objects;
:func:`collate_pairs` stacks them into a :class:`PairBatch` (use it as a ``DataLoader``'s
``collate_fn``), which moves to a device and into pinned memory as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

__all__ = ["PairBatch", "PairSample", "collate_pairs"]


@dataclass
class PairSample:
    """One source/target pair, ready for the networks (``H, W``: the protocol's output size).

    Attributes:
        source_name: Source image name as in the pair list.
        target_name: Target image name.
        source_image: ``(3, H, W)`` float32 in ``[-1, 1]``.
        target_image: ``(3, H, W)`` float32 in ``[-1, 1]``.
        source_xy: ``(18, 2)`` float32 keypoints ``(x, y)`` in pixels.
        source_valid: ``(18,)`` bool.
        target_xy: ``(18, 2)`` float32.
        target_valid: ``(18,)`` bool.
        source_pose_map: ``(C, H, W)`` float32 maps of the source pose.
        target_pose_map: ``(C, H, W)`` float32 maps of the target pose.
        flow: ``(2, H, W)`` float32 target->source ``(dx, dy)`` pixels, or None.
        visibility: ``(H, W)`` int64 Visibility codes, or None (exactly when ``flow`` is).
    """

    source_name: str
    target_name: str
    source_image: torch.Tensor
    target_image: torch.Tensor
    source_xy: torch.Tensor
    source_valid: torch.Tensor
    target_xy: torch.Tensor
    target_valid: torch.Tensor
    source_pose_map: torch.Tensor
    target_pose_map: torch.Tensor
    flow: torch.Tensor | None = None
    visibility: torch.Tensor | None = None


@dataclass
class PairBatch:
    """A batch of :class:`PairSample` (same fields with a leading batch dimension ``B``).

    Attributes:
        source_name: ``B`` names.
        target_name: ``B`` names.
        source_image: ``(B, 3, H, W)``; ``target_image`` likewise.
        source_xy: ``(B, 18, 2)``; ``source_valid`` ``(B, 18)``; ``target_*`` likewise.
        source_pose_map: ``(B, C, H, W)``; ``target_pose_map`` likewise.
        flow: ``(B, 2, H, W)`` or None.
        visibility: ``(B, H, W)`` int64 or None.
    """

    source_name: list[str]
    target_name: list[str]
    source_image: torch.Tensor
    target_image: torch.Tensor
    source_xy: torch.Tensor
    source_valid: torch.Tensor
    target_xy: torch.Tensor
    target_valid: torch.Tensor
    source_pose_map: torch.Tensor
    target_pose_map: torch.Tensor
    flow: torch.Tensor | None = None
    visibility: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.source_name)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PairBatch:
        """A copy with every tensor on ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def contiguous(self, memory_format: torch.memory_format) -> PairBatch:
        """The batch with its ``(B, C, H, W)`` tensors in ``memory_format``.

        Args:
            memory_format: E.g. ``torch.channels_last``.

        Returns:
            A copy of the same class whose images, pose maps, flow (and a subclass's other 4-D
            tensors) are in ``memory_format``; the other fields as they are (shared).
        """
        return self._map(lambda t: t.contiguous(memory_format=memory_format) if t.ndim == 4 else t)

    def pin_memory(self) -> PairBatch:
        """A copy in pinned memory (called by ``DataLoader(pin_memory=True)``)."""
        return self._map(torch.Tensor.pin_memory)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> PairBatch:
        changes: dict[str, Any] = {
            f.name: fn(value)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **changes)


def collate_pairs(samples: list[PairSample]) -> PairBatch:
    """Stack samples into a batch (use as ``DataLoader(collate_fn=collate_pairs)``).

    Args:
        samples: Non-empty list of samples of the same size.

    Returns:
        The batch; ``flow`` and ``visibility`` are set only if every sample has them.

    Raises:
        ValueError: For an empty list, a mix of samples with and without flow, or tensors of
            different shapes (names the field and the pairs).
    """
    if not samples:
        raise ValueError("collate_pairs needs at least one sample")
    with_flow = [s.flow is not None for s in samples]
    if any(with_flow) and not all(with_flow):
        has = samples[with_flow.index(True)]
        lacks = samples[with_flow.index(False)]
        raise ValueError(
            f"cannot batch samples with and without flow: pair ({has.source_name}, "
            f"{has.target_name}) has flow, pair ({lacks.source_name}, {lacks.target_name}) has none"
        )
    batch: dict[str, object] = {}
    for f in fields(PairSample):
        values = [getattr(s, f.name) for s in samples]
        if isinstance(values[0], str):
            batch[f.name] = values
        elif values[0] is None:
            batch[f.name] = None
        else:
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                names = [
                    f"({s.source_name}, {s.target_name}) {tuple(v.shape)}"
                    for s, v in zip(samples, values, strict=True)
                ]
                raise ValueError(f"cannot batch {f.name} of different shapes: {names}")
            batch[f.name] = torch.stack(values)
    return PairBatch(**batch)  # type: ignore[arg-type]
