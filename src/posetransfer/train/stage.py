"""A training stage (:class:`Stage`) and what the loop hands it each step (:class:`StepContext`).

A stage owns its modules and optimisers and runs one training step as a sequence of *phases*
(StyleGAN3's ``accumulate_gradients(phase)``): each phase computes one loss under
``ctx.autocast()`` and hands it to ``ctx.update(optimizer_name, loss)``, which does the backward
pass, gradient averaging over processes, AMP unscaling, clipping, the optimiser step and the
non-finite checks. A GAN step is a D phase then a G phase, with ``requires_grad`` switched by
:func:`requires_grad`; the frozen-generator pixel-warp stage is just a stage whose optimisers do
not include the generator.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from posetransfer.train.distributed import DistInfo, all_reduce_grads_

__all__ = [
    "NonFiniteLossError",
    "Stage",
    "StepContext",
    "eval_mode",
    "move_to_device",
    "nonfinite_fields",
    "requires_grad",
]


class NonFiniteLossError(ValueError):
    """A loss or gradient was NaN or infinite."""


class StepContext:
    """Handed to the stage: device, AMP and the optimiser update of one phase.

    Attributes:
        device: This process's device.
        amp: ``"off"``, ``"bf16"`` or ``"fp16"``.
        dist: Rank and world size.
        step: In ``train_step``, the 0-based index of the running step (steps completed before
            it); in ``validate`` and ``sample_images``, the number of steps completed.
        epoch: Epoch of the current batch.
        grad_norms: Gradient norm (before clipping) per optimiser updated in this step; logged
            as ``grad_norm/<name>``.
    """

    def __init__(
        self,
        device: torch.device,
        amp: str,
        dist: DistInfo,
        optimizers: Mapping[str, torch.optim.Optimizer],
        grad_clip: float | None,
    ) -> None:
        self.device, self.amp, self.dist = device, amp, dist
        self.step, self.epoch = 0, 0
        self.grad_norms: dict[str, torch.Tensor] = {}
        self._optimizers = dict(optimizers)
        self._grad_clip = grad_clip
        self._scalers = {
            name: torch.amp.GradScaler(device.type, enabled=amp == "fp16") for name in optimizers
        }

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed-precision context for forward passes (a no-op when ``amp="off"``)."""
        if self.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def update(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        """One optimiser update: backward, average over ranks, unscale, clip, step.

        The optimiser's gradients are zeroed first, so one call is one complete phase. Two host
        synchronisations check that the loss (on every rank) and the gradient norm are finite.

        Args:
            name: Key of :meth:`Stage.optimizers`.
            loss: Scalar loss whose gradient updates that optimiser's parameters.

        Returns:
            The gradient norm before clipping (0-d tensor).

        Raises:
            NonFiniteLossError: If the loss on any rank, or the gradient norm (except under fp16,
                where the grad scaler skips such steps itself), is NaN or infinite.
        """
        if name not in self._optimizers:
            raise KeyError(f"no optimizer {name!r}; the stage has {sorted(self._optimizers)}")
        if loss.numel() != 1:
            raise ValueError(f"loss for {name!r} must be a scalar, got shape {tuple(loss.shape)}")
        opt, scaler = self._optimizers[name], self._scalers[name]
        params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
        opt.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss.detach()).item())
        if finite:
            scaler.scale(loss).backward()
        if all_reduce_grads_(params, self.dist, bad=not finite):
            opt.zero_grad(set_to_none=True)
            where = f"({loss.item()})" if not finite else "on another rank"
            raise NonFiniteLossError(f"non-finite loss {where} for optimizer '{name}'")
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, self._grad_clip or math.inf)
        norm_ok = bool(torch.isfinite(norm).item())
        if not norm_ok and self.amp != "fp16":
            opt.zero_grad(set_to_none=True)
            raise NonFiniteLossError(f"non-finite gradient norm ({norm.item()}) for '{name}'")
        scaler.step(opt)  # under fp16, skipped (and the scale reduced) when norm_ok is False
        scaler.update()
        if norm_ok:
            self.grad_norms[name] = norm.detach()
        return norm

    def scaler_states(self) -> dict[str, dict[str, Any]]:
        """Grad-scaler states by optimiser name (empty dicts unless fp16)."""
        return {name: scaler.state_dict() for name, scaler in self._scalers.items()}

    def load_scaler_states(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore :meth:`scaler_states` (a state saved without fp16 leaves the scale fresh)."""
        for name, scaler in self._scalers.items():
            if scaler.is_enabled() and states.get(name):
                scaler.load_state_dict(dict(states[name]))


class Stage(abc.ABC):
    """A training stage: modules, optimisers, one step, validation, optional sample grids."""

    @abc.abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Modules by name; each is checkpointed as ``<name>.safetensors``."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers by name (e.g. ``{"g": ..., "d": ...}``), used by ``ctx.update``."""

    @abc.abstractmethod
    def train_step(self, batch: Any, ctx: StepContext) -> Mapping[str, float | torch.Tensor]:
        """Run the step's phases (each ending in ``ctx.update``); return scalars to log.

        ``batch`` is already on ``ctx.device``. Return the same keys on every rank.
        """

    def validate(self, batches: Iterable[Any], ctx: StepContext) -> dict[str, float]:
        """Mean metrics over ``batches`` (this rank's share of the validation set, on device).

        Called in eval mode under ``torch.no_grad()``; must include ``TrainConfig.val_metric``.
        """
        return {}

    def best_group(self, step: int) -> int:
        """Which group of checkpoints the state after ``step`` steps competes in for ``best/``.

        ``best/`` is the best validation result within the current group; when the group
        changes (e.g. a second training stage with another model structure starts), the first
        validation of the new group becomes ``best/`` whatever the old group's results were.
        """
        return 0

    def sample_images(self, ctx: StepContext) -> torch.Tensor | None:
        """Images ``(N, 3, H, W)`` in [-1, 1] for ``samples/step-*.png`` (rank 0, eval mode)."""
        return None


def requires_grad(module: nn.Module, flag: bool) -> None:
    """Switch ``requires_grad`` of all parameters of ``module`` (GAN phases)."""
    for p in module.parameters():
        p.requires_grad_(flag)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move a batch (tensor, object with ``.to``, or dict/list/tuple of them) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device) for v in batch)
    to = getattr(batch, "to", None)
    return to(device) if callable(to) else batch


def nonfinite_fields(batch: Any, name: str = "batch") -> list[str]:
    """Names (``batch.source_image``, ``batch.1``) of floating tensors in ``batch`` with NaN/inf."""
    if isinstance(batch, torch.Tensor):
        bad = batch.is_floating_point() and not bool(torch.isfinite(batch).all())
        return [name] if bad else []
    items: Iterable[tuple[Any, Any]]
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        items = [(f.name, getattr(batch, f.name)) for f in dataclasses.fields(batch)]
    elif isinstance(batch, Mapping):
        items = batch.items()
    elif isinstance(batch, list | tuple):
        items = enumerate(batch)
    else:
        return []
    return [field for key, value in items for field in nonfinite_fields(value, f"{name}.{key}")]


@contextlib.contextmanager
def eval_mode(modules: Iterable[nn.Module]) -> Iterator[None]:
    """Eval mode and ``torch.no_grad()``; restores every submodule's own train/eval flag after."""
    modules = list(modules)
    flags = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in flags:
            m.training = flag
