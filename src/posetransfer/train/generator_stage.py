"""Pose-transfer training (paper stage 3) on the shared loop: generator, pixel warping, GAN.

One run follows the paper's two-stage schedule (``reference/official_repo.md`` §4.10), split by
``schedule.coarse_steps``:

1. *Coarse* (steps ``< coarse_steps``): the generator (and, with ``flow.finetune``, the flow
   regressor) learns ``x_tgt`` from ``(x_src, p_tgt, F, V)``; a discriminator judges its output.
2. *Pixel warping* (steps ``>= coarse_steps``, only with ``pixel_warp.enabled``): the generator
   and the flow regressor are frozen (eval mode, no gradients) and the refiner learns the mask that
   blends the warped source into the coarse image, against a fresh discriminator. The GAN
   warm-up (``loss.gan_start_step``) restarts with the stage.

Each step is explicit phases on :meth:`StepContext.update`: a D phase (real vs. detached fake)
once the GAN is on, then a G phase with the discriminator frozen (``requires_grad`` off). The flow
regressor comes from a ``train-flow`` run and stays frozen (eval mode, no gradients) unless
``flow.finetune``; its weights are checkpointed with the run (module ``flow_regressor``) and its
architecture is recorded in ``RUN/flow_model.yaml``, so a run is self-contained for inference.

Validation scores what inference would output at that step (the refined image once the refiner
has trained, else the coarse one): SSIM as the original selected models (skimage's 7x7 uniform
window on 8-bit values) and L1 on ``[0, 1]``; ``best/`` keeps the highest SSIM of the current
stage (once the refiner has trained, the best refined model, however good the coarse one was).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posetransfer.config import ConfigError, save_config
from posetransfer.data.datasets import PairBatch, collate_pairs
from posetransfer.eval.metrics import l1
from posetransfer.eval.names import L1, SSIM
from posetransfer.eval.ssim import UNIFORM_7, ssim
from posetransfer.io import PathLike
from posetransfer.losses.generator import (
    discriminator_loss_terms,
    generator_loss_terms,
    weighted_discriminator_total,
    weighted_total,
)
from posetransfer.models.discriminator import PatchDiscriminator
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.models.generator import GeneratorOutput, PoseTransferGenerator
from posetransfer.models.generator_inputs import condition_from_prediction
from posetransfer.models.pixel_warp import build_refiner, transfer, warp_source_image
from posetransfer.models.vgg import VGG19Features, load_vgg19
from posetransfer.ops.memory_format import place
from posetransfer.pose.maps import PoseMapConfig, pose_maps
from posetransfer.runtime import is_main_process
from posetransfer.train.checkpoint import list_checkpoints, load_weights
from posetransfer.train.components import (
    DISCRIMINATOR,
    DISCRIMINATOR_PW,
    FLOW_REGRESSOR,
    GENERATOR,
    PIXEL_WARP,
)
from posetransfer.train.generator_config import (
    FLOW_MODEL_FILE,
    FlowModelRecord,
    GeneratorStageConfig,
)
from posetransfer.train.generator_data import (
    flow_network,
    generator_datasets,
    load_flow_run,
    recorded_flow_network,
)
from posetransfer.train.generator_init import adopt_init, init_checkpoint, load_init_weights
from posetransfer.train.loop import TrainResult, run_training
from posetransfer.train.resume import CHECKPOINTS_DIR
from posetransfer.train.settings import make_adam, memory_format
from posetransfer.train.stage import Stage, StepContext, requires_grad
from posetransfer.train.stats import make_grid

__all__ = ["GeneratorStage", "load_flow_run", "train_generator"]

logger = logging.getLogger(__name__)


class GeneratorStage(Stage):
    """Modules, optimisers and phases of the pose-transfer stage.

    Args:
        cfg: The stage config.
        device: Device of every module.
        flow_net: The trained flow regressor (None when no flow is used); moved to ``device``
            and to the training memory format (``cfg.train.memory_format``), in place.
        flow_pose_map: Pose maps the flow regressor was trained on.
        vgg: Frozen VGG19 for the perceptual loss (None when its weights are 0).
        sample_batch: Pairs drawn in the sample grids (None: no grids).
    """

    def __init__(
        self,
        cfg: GeneratorStageConfig,
        device: torch.device,
        flow_net: FlowRegressor | None,
        flow_pose_map: PoseMapConfig | None,
        vgg: VGG19Features | None,
        sample_batch: PairBatch | None = None,
    ) -> None:
        self.cfg, self.device, self.sample_batch = cfg, device, sample_batch
        self.flow_pose_map = flow_pose_map
        self.memory_format = fmt = memory_format(cfg.train, device)
        logger.info("networks train in %s on %s", str(fmt).split(".")[-1], device)
        self.vgg = place(vgg, device, fmt) if vgg is not None else None
        self.generator = place(PoseTransferGenerator(cfg.generator), device, fmt)
        init = cfg.schedule.init_generator
        if init is not None:
            found = load_weights(init, {GENERATOR: self.generator}, cfg.schedule.init_which)
            logger.info("generator initialised from %s", found)
        self.refiner = build_refiner(cfg.pixel_warp)
        self.flow_net = place(flow_net, device, fmt) if flow_net is not None else None
        finetune = cfg.flow.finetune and self.flow_net is not None
        if self.flow_net is not None:
            requires_grad(self.flow_net, finetune)
            self.flow_net.eval()
        groups: list[dict[str, Any]] = [{"params": list(self.generator.parameters())}]
        if finetune and self.flow_net is not None:
            flow_lr = cfg.flow.lr or cfg.train.lr
            groups.append({"params": list(self.flow_net.parameters()), "lr": flow_lr})
        self._optimizers = {GENERATOR: make_adam(groups, cfg.train)}
        self.discriminators = {DISCRIMINATOR: PatchDiscriminator(cfg.discriminator)}
        if self.refiner is not None:  # the pixel-warping stage has its own, fresh discriminator
            place(self.refiner, device, fmt)
            self.discriminators[DISCRIMINATOR_PW] = PatchDiscriminator(cfg.discriminator)
            self._optimizers[PIXEL_WARP] = make_adam(self.refiner.parameters(), cfg.train)
        d_opt = cfg.discriminator_optim
        for name, disc in self.discriminators.items():
            self._optimizers[name] = make_adam(
                place(disc, device, fmt).parameters(),
                cfg.train,
                lr=d_opt.lr,
                weight_decay=d_opt.weight_decay,
            )

    def modules(self) -> dict[str, nn.Module]:
        found: dict[str, nn.Module | None] = {
            GENERATOR: self.generator,
            PIXEL_WARP: self.refiner,
            FLOW_REGRESSOR: self.flow_net,
            **self.discriminators,
        }
        return {name: module for name, module in found.items() if module is not None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    # ------------------------------------------------------------------------------ forward

    def condition(self, batch: PairBatch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Flow ``(B, 2, H, W)`` and visibility codes ``(B, H, W)``: the regressor's, or the
        batch's own with ``flow.source="data"``."""
        if self.flow_net is None:
            return None, None
        if self.cfg.flow.source == "data":
            if batch.flow is None or batch.visibility is None:
                raise ValueError("flow.source='data' but the batch carries no flow")
            return batch.flow.float(), batch.visibility
        size = (batch.source_image.shape[-2], batch.source_image.shape[-1])
        if self.flow_pose_map == self.cfg.data.pose_map:
            maps_src, maps_tgt = batch.source_pose_map, batch.target_pose_map
        else:
            assert self.flow_pose_map is not None
            maps_src = pose_maps(batch.source_xy, batch.source_valid, size, self.flow_pose_map)
            maps_tgt = pose_maps(batch.target_xy, batch.target_valid, size, self.flow_pose_map)
        trains = self.flow_net.training and torch.is_grad_enabled()
        with torch.set_grad_enabled(trains):
            flow, vis = condition_from_prediction(self.flow_net(maps_src, maps_tgt))
        return flow.float(), vis

    def forward(self, batch: PairBatch, refine: bool) -> GeneratorOutput:
        """The output for a batch as inference computes it (no mode changes)."""
        batch = batch.contiguous(self.memory_format)
        flow, vis = self.condition(batch)
        refiner = self.refiner if refine else None
        return transfer(
            self.generator, refiner, batch.source_image, batch.target_pose_map, flow, vis
        )

    # ------------------------------------------------------------------------------ training

    def train_step(self, batch: PairBatch, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        cfg, batch = self.cfg, batch.contiguous(self.memory_format)
        refine = cfg.refines_at(ctx.step)
        finetune = cfg.flow.finetune and not refine
        if self.flow_net is not None:
            self.flow_net.train(finetune)
        self.generator.train(not refine)
        requires_grad(self.generator, not refine)
        if self.refiner is not None:
            self.refiner.train(refine)
        with ctx.autocast():
            if refine:
                with torch.no_grad():
                    flow, vis = self.condition(batch)
                    coarse = self.generator(batch.source_image, batch.target_pose_map, flow, vis)
                assert self.refiner is not None and flow is not None and vis is not None
                out = self.refiner(batch.source_image, coarse, flow, vis)
            else:
                out = self.forward(batch, refine=False)
        rel_step = ctx.step - cfg.schedule.coarse_steps if refine else ctx.step
        disc_name = DISCRIMINATOR_PW if refine else DISCRIMINATOR
        opt_name = PIXEL_WARP if refine else GENERATOR
        logs = self._adversarial_phases(ctx, batch, out.image, disc_name, opt_name, rel_step)
        logs["stage"] = float(refine)
        return logs

    def _adversarial_phases(
        self,
        ctx: StepContext,
        batch: PairBatch,
        image: torch.Tensor,
        disc_name: str,
        opt_name: str,
        rel_step: int,
    ) -> dict[str, float | torch.Tensor]:
        """D phase (once the GAN is on), then G phase with the discriminator frozen."""
        loss_cfg, disc = self.cfg.loss, self.discriminators[disc_name]
        disc.train()
        use_gan = loss_cfg.gan_weight_at(rel_step) > 0
        logs: dict[str, float | torch.Tensor] = {}
        if use_gan:
            requires_grad(disc, True)
            with ctx.autocast():
                real = disc(batch.source_image, batch.target_image, batch.target_pose_map)
                fake = disc(batch.source_image, image.detach(), batch.target_pose_map)
            d_terms = discriminator_loss_terms(real.float(), fake.float(), loss_cfg)
            d_loss = weighted_discriminator_total(d_terms, loss_cfg)
            ctx.update(disc_name, d_loss)
            logs |= {k: v.detach() for k, v in d_terms.items()} | {"loss_d": d_loss.detach()}
        requires_grad(disc, False)
        with ctx.autocast():
            fake = disc(batch.source_image, image, batch.target_pose_map) if use_gan else None
            terms = generator_loss_terms(
                image.float(),
                batch.target_image,
                loss_cfg,
                vgg=self.vgg,
                fake_logits=None if fake is None else fake.float(),
            )
        total = weighted_total(terms, loss_cfg, rel_step)
        ctx.update(opt_name, total)
        requires_grad(disc, True)
        return logs | {k: v.detach() for k, v in terms.items()} | {"loss_g": total.detach()}

    # ------------------------------------------------------------------------------ evaluation

    def validate(self, batches: Iterable[PairBatch], ctx: StepContext) -> dict[str, float]:
        refine = self.cfg.refiner_trained_after(ctx.step)
        sums: dict[str, float] = {}
        count = 0
        for batch in batches:
            out = self.forward(batch, refine)
            scores = _scores(out.image, batch.target_image)
            if refine:
                scores |= {
                    f"{k}_coarse": v for k, v in _scores(out.coarse, batch.target_image).items()
                }
            for key, values in scores.items():
                sums[key] = sums.get(key, 0.0) + float(values.sum())
            count += len(batch)
        return {key: value / max(count, 1) for key, value in sums.items()}

    def best_group(self, step: int) -> int:
        """0 before the refiner has trained, 1 after: ``best/`` of a two-stage run is the best
        model *with* pixel warping, as the original's separate stage-2 run picked it."""
        return int(self.cfg.refiner_trained_after(step))

    def sample_images(self, ctx: StepContext) -> torch.Tensor | None:
        """One image: a row per sample pair of source, target, warped source, coarse, output."""
        if self.sample_batch is None:
            return None
        batch = self.sample_batch.to(self.device)
        out = self.forward(batch, self.cfg.refiner_trained_after(ctx.step))
        warped = out.warped_src
        if warped is None:
            flow, vis = self.condition(batch)
            warped = (
                out.image.new_full(out.image.shape, -1.0)
                if flow is None or vis is None
                else warp_source_image(batch.source_image, flow, vis)
            )
        columns = [batch.source_image, batch.target_image, warped, out.coarse, out.image]
        return make_grid(torch.stack(columns, dim=1).flatten(0, 1), nrow=len(columns))[None]


def _scores(image: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image SSIM (7x7 uniform on 8-bit values, as the original) and L1 on ``[0, 1]``."""
    pred_u8 = ((image.float() + 1.0) * 127.5).round().clamp(0, 255)
    tgt_u8 = ((target.float() + 1.0) * 127.5).round().clamp(0, 255)
    return {SSIM: ssim(pred_u8, tgt_u8, UNIFORM_7), L1: l1(pred_u8, tgt_u8, data_range=255.0)}


# ------------------------------------------------------------------------------------------------
# The run.


def train_generator(
    cfg: GeneratorStageConfig,
    run_dir: PathLike,
) -> TrainResult:
    """Train (or resume) a pose-transfer run in ``run_dir``.

    Everything that can fail on user input (VGG file, flow run, init run, dataset, image size)
    is checked before the first step. With ``init.run`` a fresh run starts from that run's
    networks (:mod:`.generator_init`: architecture adopted and checked, the checkpoint recorded
    in ``config.yaml``); a run folder with checkpoints is resumed and the init run is not read.

    Args:
        cfg: The resolved config (``data.root`` set; ``flow.checkpoint`` set when flow is used).
        run_dir: The run folder; a folder with checkpoints is resumed.

    Returns:
        The loop's result.

    Raises:
        ConfigError: A missing ``data.root`` or ``flow.checkpoint``, sizes that do not fit, or
            an architecture that differs from the init run's.
        FileNotFoundError: The VGG19 file is missing while a perceptual weight is non-zero.
        ValueError: The dataset's images do not have ``generator.image_size``.
    """
    run_dir = Path(run_dir)
    if cfg.data.root is None:
        raise ConfigError("data.root is not set; pass --data ROOT")
    resuming = bool(list_checkpoints(run_dir / CHECKPOINTS_DIR))
    init_ckpt = None
    init_run = cfg.init.run
    if init_run is not None and not resuming:
        cfg = adopt_init(cfg)
        init_ckpt = init_checkpoint(init_run, cfg.init.which)
    vgg = None
    if cfg.loss.content_weights or cfg.loss.style_weights:
        vgg = load_vgg19(cfg.loss.vgg_weights, random_weights=cfg.vgg.random_weights)
    flow_net: FlowRegressor | None
    flow_pose_map: PoseMapConfig | None
    if resuming and cfg.needs_flow and cfg.flow.checkpoint is None and cfg.init.run is not None:
        flow_net, flow_pose_map = recorded_flow_network(run_dir)  # weights: the checkpoint's
    else:
        flow_net, flow_pose_map = flow_network(cfg)
    train_set, val_set = generator_datasets(cfg)
    sample_set = val_set if val_set is not None else train_set
    count = min(cfg.data.sample_pairs, len(sample_set))
    samples = collate_pairs([sample_set[i] for i in range(count)]) if count else None
    if flow_net is not None and is_main_process():
        assert flow_pose_map is not None
        save_config(FlowModelRecord(flow_net.cfg, flow_pose_map), run_dir / FLOW_MODEL_FILE)

    def make_stage(device: torch.device) -> GeneratorStage:
        stage = GeneratorStage(cfg, device, flow_net, flow_pose_map, vgg, samples)
        if init_ckpt is not None:  # the regressor came with flow_network
            load_init_weights(init_ckpt, stage.modules(), skip=(FLOW_REGRESSOR,))
        return stage

    return run_training(
        make_stage, train_set, val_set, cfg.train, run_dir,
        collate_fn=collate_pairs, resolved_config=cfg,
    )  # fmt: skip
