"""Multi-process data-parallel plumbing for the training loop (``torchrun``, gloo or nccl).

Under ``torchrun`` (environment ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) :func:`distributed_session` joins the process group (gloo on CPU, nccl on CUDA);
without those variables everything here is a no-op for a single process. Nothing happens at
import time. The rank and the device are read by :mod:`posetransfer.runtime` (re-exported here:
:class:`DistInfo`, :func:`dist_info_from_env`, :func:`resolve_device`), the one place that does.

Design choice: modules are *not* wrapped in ``DistributedDataParallel``. Each optimiser update
averages the gradients of that optimiser's parameters with one all-reduce
(:func:`all_reduce_grads_`), as StyleGAN3's training loop does. The numbers are those of DDP (mean
of per-rank gradients of per-rank mean losses), but a stage's code is identical with 1 or N
processes: it keeps calling its own modules, GAN phases may toggle ``requires_grad`` and run a
module in a phase that does not train it, with none of DDP's reducer pitfalls
(``find_unused_parameters``, ``no_sync``, ``.module`` indirection). The cost is no overlap of
communication with the backward pass, small for the networks of this project.

Data are sharded by :class:`ShardedEpochSampler`: each global batch of the epoch's shuffled
order is split into equal per-rank slices, so N processes with per-rank batch ``B/N`` see exactly
the samples that one process with batch ``B`` sees, step for step.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from posetransfer.runtime import DistInfo, dist_info_from_env, resolve_device

__all__ = [
    "DistInfo",
    "ShardedEpochSampler",
    "all_gather_objects",
    "all_reduce_grads_",
    "all_reduce_sum_",
    "average_buffers_",
    "barrier",
    "broadcast_module_",
    "dist_info_from_env",
    "distributed_session",
    "resolve_device",
]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def distributed_session(device_name: str) -> Iterator[tuple[DistInfo, torch.device]]:
    """Join the process group if launched by ``torchrun``; leave it on exit if we joined it.

    Args:
        device_name: ``"auto"``, ``"cpu"`` or ``"cuda"``; CUDA processes use ``cuda:LOCAL_RANK``.

    Yields:
        ``(info, device)`` for this process.
    """
    info = dist_info_from_env()
    device = resolve_device(device_name, info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = False
    if info.enabled:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        if dist.is_initialized():
            if dist.get_world_size() != info.world_size or dist.get_rank() != info.rank:
                raise RuntimeError(
                    f"process group (rank {dist.get_rank()} of {dist.get_world_size()}) disagrees "
                    f"with the environment (RANK={info.rank}, WORLD_SIZE={info.world_size})"
                )
        else:
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, rank=info.rank, world_size=info.world_size)
            created = True
            logger.info(
                "rank %d/%d joined the %s process group", info.rank, info.world_size, backend
            )
    try:
        yield info, device
    finally:
        if created:
            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------------
# Collectives (no-ops for a single process).


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.enabled:
        dist.barrier()


def all_reduce_sum_(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place and return it."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Gather one picklable object per rank (index = rank); ``[obj]`` for a single process."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_module_(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (in place)."""
    if not info.enabled:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_buffers_(module: nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (e.g. BatchNorm running statistics) over ranks in place.

    Called before validation and checkpoints so that every rank holds, and rank 0 saves, the
    mean statistics rather than rank 0's alone.
    """
    if not info.enabled:
        return
    with torch.no_grad():
        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(info.world_size)


def all_reduce_grads_(params: Sequence[nn.Parameter], info: DistInfo, bad: bool) -> bool:
    """Average gradients over ranks in place, together with a "bad batch" vote.

    Every rank must call this for the same parameter list. A parameter without a gradient counts
    as a zero gradient (so a rank that skipped its backward pass still takes part) and, after the
    call, every parameter holds the averaged gradient.

    Args:
        params: Parameters of one optimiser that require gradients.
        info: The process group.
        bad: Whether this rank's loss was non-finite.

    Returns:
        True if any rank voted bad (gradients are then left untouched on every rank).
    """
    if not info.enabled:
        return bad
    device = params[0].device if params else torch.device("cpu")
    parts = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().float()
        for p in params
    ]
    flat = torch.cat([*parts, torch.tensor([float(bad)], device=device)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    if flat[-1].item() > 0:
        return True
    flat = flat[:-1].div_(info.world_size)
    offset = 0
    for p in params:
        chunk = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
    return False


# ------------------------------------------------------------------------------------------------
# Deterministic, resumable, sharded sampling.


class ShardedEpochSampler(Sampler[int]):
    """Per-epoch shuffled order, cut into global batches, each split into per-rank slices.

    Epoch ``e``'s global order is ``numpy.random.default_rng([seed, e]).permutation(n)``
    truncated to ``steps_per_epoch * global_batch_size`` samples (the tail is dropped so every
    step sees a full batch). Rank ``r`` takes positions ``[r*L, (r+1)*L)`` of each global batch,
    ``L = global_batch_size // world_size``. :meth:`set_epoch` also takes the batch to start
    from, which is how a resumed run continues mid-epoch with the same data order.

    Args:
        num_samples: Dataset length.
        global_batch_size: Samples per optimisation step summed over ranks.
        seed: Base seed of the order.
        rank: This process's rank.
        world_size: Number of processes; must divide ``global_batch_size``.
        shuffle: False keeps the dataset order (still truncated and sharded).
    """

    def __init__(
        self,
        num_samples: int,
        global_batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if global_batch_size < 1 or global_batch_size % world_size:
            raise ValueError(
                f"batch_size={global_batch_size} must be a positive multiple of the number of "
                f"processes ({world_size})"
            )
        if num_samples < global_batch_size:
            raise ValueError(
                f"the training set has {num_samples} samples, fewer than one batch "
                f"(batch_size={global_batch_size})"
            )
        self.num_samples = num_samples
        self.global_batch_size = global_batch_size
        self.local_batch_size = global_batch_size // world_size
        self.steps_per_epoch = num_samples // global_batch_size
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch, and the batch within it to start from (for resuming)."""
        if epoch < 0 or not 0 <= start_batch < self.steps_per_epoch:
            raise ValueError(
                f"epoch={epoch}, start_batch={start_batch}: need epoch >= 0 and "
                f"0 <= start_batch < steps_per_epoch={self.steps_per_epoch}"
            )
        self.epoch, self.start_batch = epoch, start_batch

    def global_order(self, epoch: int) -> np.ndarray:
        """The epoch's sample order over all ranks, ``(steps_per_epoch * global_batch_size,)``."""
        n_used = self.steps_per_epoch * self.global_batch_size
        if not self.shuffle:
            return np.arange(n_used)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)[:n_used]

    def __iter__(self) -> Iterator[int]:
        order = self.global_order(self.epoch)
        g, loc = self.global_batch_size, self.local_batch_size
        for b in range(self.start_batch, self.steps_per_epoch):
            begin = b * g + self.rank * loc
            yield from order[begin : begin + loc].tolist()

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_batch) * self.local_batch_size
