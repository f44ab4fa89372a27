"""Personalisation: fine-tune a trained run on one framed person (test-time fine-tuning).

As Liquid Warping GAN and iPERCore personalise their generators, :func:`personalize` fine-tunes
the generator and the pixel-warp refiner of a trained run on pairs made from the one person
(:mod:`.self_pairs`: affine self-pairs with exact flows, body self-pairs with the fitted body's
flows), then writes a run folder with the layout ``train`` writes (``config.yaml``,
``flow_model.yaml``, ``checkpoints/``), which ``infer --checkpoint RUN`` takes.

Training runs on the shared loop (:func:`~.loop.run_training`: atomic checkpoints, progress
bar, bitwise resume) with :class:`PersonalizeStage`, a generator stage whose flow is each pair's
own (``flow.source="data"``), whose generator gets the person-free plate as its background (as
the photo pipeline does at inference) and whose one Adam updates the generator and the refiner
together on :class:`~.personalize_config.PersonalizeLossConfig`'s loss. No GAN: a few hundred
steps on one image. The flow regressor and the discriminators are the checkpoint's, unchanged.

The run's ``config.yaml`` is the checkpoint run's config with ``init`` naming it, the loop's
settings, ``flow.source: data`` and ``schedule.coarse_steps: 0`` (the refiner is applied from the
first step on). The person (``person.npz``, ``person.png``), the body self-pairs
(``body_pairs.npz``) and ``personalize.yaml`` are kept in the run, so rerunning on a run folder
with checkpoints resumes it without the photo, the detector, the body model or the checkpoint run.

Detection and framing of a photo are the caller's (:mod:`posetransfer.infer.personalize`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from posetransfer.config import ConfigError, from_dict, load_config, save_config, to_dict
from posetransfer.io import atomic_open, save_png, write_npz
from posetransfer.losses.generator import generator_loss_terms, weighted_total
from posetransfer.models.generator import GeneratorOutput
from posetransfer.models.pixel_warp import transfer
from posetransfer.models.vgg import VGG19Features, load_vgg19
from posetransfer.pose.keypoints import Pose
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.body_pairs import BodyPairs, make_body_pairs
from posetransfer.train.checkpoint import list_checkpoints
from posetransfer.train.components import FLOW_REGRESSOR, GENERATOR
from posetransfer.train.generator_config import (
    FLOW_MODEL_FILE,
    FlowModelRecord,
    GeneratorStageConfig,
    GeneratorTrainConfig,
    InitConfig,
    VggConfig,
)
from posetransfer.train.generator_data import recorded_flow_network
from posetransfer.train.generator_init import (
    adopt_init,
    init_checkpoint,
    init_flow_network,
    load_init_weights,
)
from posetransfer.train.generator_stage import GeneratorStage
from posetransfer.train.loop import TrainResult, run_training
from posetransfer.train.personalize_config import (
    PERSONALIZE_FILE,
    PersonalizeConfig,
    PersonalizeLossConfig,
)
from posetransfer.train.resume import CHECKPOINTS_DIR, CONFIG_FILE
from posetransfer.train.self_pairs import (
    PersonCrop,
    SelfPairBatch,
    SelfPairDataset,
    collate_self_pairs,
)
from posetransfer.train.settings import make_adam
from posetransfer.train.stage import StepContext, requires_grad

__all__ = [
    "BODY_PAIRS_FILE",
    "PERSON_FILE",
    "PersonalizeStage",
    "load_person",
    "personalize",
    "personalized_stage_config",
    "save_person",
]

logger = logging.getLogger(__name__)

#: The framed person in a personalised run (``image``, ``plate``, ``mask``, ``pose_xy``,
#: ``pose_valid``); ``person.png`` shows the frame.
PERSON_FILE = "person.npz"
#: The body self-pairs in a personalised run.
BODY_PAIRS_FILE = "body_pairs.npz"

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.InstanceNorm2d)


class PersonalizeStage(GeneratorStage):
    """The generator stage, fine-tuning the generator and the refiner together on self-pairs.

    Args:
        cfg: The personalised run's config (``flow.source="data"``).
        loss: The personalisation loss.
        device: Device of every module.
        flow_net: The checkpoint's flow regressor (kept, not used in training).
        flow_pose_map: Its pose maps.
        vgg: VGG19 for the perceptual terms, or None.
        sample_batch: Pairs drawn in the sample grids, or None.
        freeze_norm: Keep the normalisation layers in eval mode (their statistics fixed).
    """

    def __init__(
        self,
        cfg: GeneratorStageConfig,
        loss: PersonalizeLossConfig,
        device: torch.device,
        flow_net: nn.Module | None,
        flow_pose_map: PoseMapConfig | None,
        vgg: VGG19Features | None,
        sample_batch: SelfPairBatch | None = None,
        freeze_norm: bool = True,
    ) -> None:
        super().__init__(cfg, device, flow_net, flow_pose_map, vgg, sample_batch)  # type: ignore[arg-type]
        self.loss, self.freeze_norm = loss, freeze_norm
        self.trained = [self.generator] + ([self.refiner] if self.refiner is not None else [])
        params = [p for net in self.trained for p in net.parameters()]
        self._optimizers = {GENERATOR: make_adam(params, cfg.train)}
        gen = cfg.generator
        self._background = gen.dual_encoder and gen.use_flow and gen.visibility != "none"

    def forward(self, batch: Any, refine: bool) -> GeneratorOutput:
        """The output as the photo pipeline computes it (the plate as the background)."""
        batch = batch.contiguous(self.memory_format)
        flow, vis = self.condition(batch)
        background = getattr(batch, "background", None) if self._background else None
        refiner = self.refiner if refine else None
        return transfer(
            self.generator, refiner, batch.source_image, batch.target_pose_map, flow, vis,
            background,
        )  # fmt: skip

    def train_step(self, batch: Any, ctx: StepContext) -> dict[str, float | torch.Tensor]:
        batch = batch.contiguous(self.memory_format)
        for net in self.trained:
            net.train()
            requires_grad(net, True)
            if self.freeze_norm:
                for module in net.modules():
                    if isinstance(module, _NORMS):
                        module.eval()
        with ctx.autocast():
            out = self.forward(batch, refine=self.refiner is not None)
        image, target, loss = out.image.float(), batch.target_image, self.loss
        terms = generator_loss_terms(image, target, self.cfg.loss, vgg=self.vgg)
        total = weighted_total(terms, self.cfg.loss, ctx.step)
        mask = batch.person_mask
        person = ((image - target).abs() * mask).sum() / (3 * mask.sum()).clamp(min=1.0)
        coarse = (out.coarse.float() - target).abs().mean()
        total = total + loss.person_weight * person + loss.coarse_weight * coarse
        ctx.update(GENERATOR, total)
        extra = {"l1_person": person.detach(), "l1_coarse": coarse.detach()}
        return {k: v.detach() for k, v in terms.items()} | extra | {"loss_g": total.detach()}


# ------------------------------------------------------------------------------------------------
# The person and the config kept in the run.


def save_person(person: PersonCrop, run_dir: str | os.PathLike[str]) -> None:
    """Write ``person.npz`` (and ``person.png``) into the run folder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(run_dir / PERSON_FILE) as f:
        write_npz(
            f, image=person.image, plate=person.plate, mask=person.mask.astype(np.float32),
            pose_xy=person.pose.xy, pose_valid=person.pose.valid,
        )  # fmt: skip
    save_png(run_dir / "person.png", np.concatenate([person.image, person.plate], axis=1))


def load_person(run_dir: str | os.PathLike[str]) -> PersonCrop:
    """Read the person a personalised run was made from.

    Raises:
        FileNotFoundError: The run has no ``person.npz``.
    """
    path = Path(run_dir) / PERSON_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; not a personalised run")
    with np.load(path, allow_pickle=False) as data:
        pose = Pose(data["pose_xy"].astype(np.float32), data["pose_valid"].astype(bool))
        return PersonCrop(data["image"], pose, data["mask"], data["plate"])


def personalized_stage_config(cfg: PersonalizeConfig) -> GeneratorStageConfig:
    """The personalised run's ``config.yaml``: the checkpoint run's config, fine-tuned.

    Raises:
        ConfigError: ``checkpoint`` is not set.
        FileNotFoundError: The checkpoint run or its ``config.yaml`` is missing.
        CheckpointError: It has no such checkpoint.
    """
    if cfg.checkpoint is None:
        raise ConfigError("checkpoint is not set; pass --checkpoint RUN (a `train` run folder)")
    ckpt = init_checkpoint(cfg.checkpoint, cfg.which)
    base = load_config(GeneratorStageConfig, ckpt.parent.parent / CONFIG_FILE)
    replace = dataclasses.replace
    loss = replace(
        base.loss, l1_weight=cfg.loss.l1_weight, perceptual_weight=cfg.loss.perceptual_weight,
        style_weight=0.0, gan_weight=0.0, vgg_weights=cfg.loss.vgg_weights,
    )  # fmt: skip
    stage = replace(
        base,
        data=replace(base.data, root=None, sample_pairs=min(4, cfg.pairs.val_pairs)),
        loss=loss,
        flow=replace(base.flow, checkpoint=None, finetune=False, source="data"),
        init=InitConfig(run=cfg.checkpoint, which=cfg.which),
        schedule=replace(base.schedule, coarse_steps=0, init_generator=None),
        vgg=VggConfig(random_weights=cfg.loss.random_vgg),
        train=from_dict(GeneratorTrainConfig, to_dict(cfg.train), where="train"),
    )
    return adopt_init(stage)


def _body_pairs(
    cfg: PersonalizeConfig, person: PersonCrop, run_dir: Path, body_cache_dir: Any
) -> BodyPairs | None:
    """The run's body self-pairs: kept ones, else made (and kept); None for ``body.count=0``."""
    if cfg.body.count == 0:
        return None
    path = run_dir / BODY_PAIRS_FILE
    if path.is_file():
        return BodyPairs.load(path)
    from posetransfer.body import load_body_model

    pairs = make_body_pairs(load_body_model(body_cache_dir), person, cfg.body)
    pairs.save(path)
    return pairs


# ------------------------------------------------------------------------------------------------
# The run.


def personalize(
    cfg: PersonalizeConfig,
    person: PersonCrop | None,
    run_dir: str | os.PathLike[str],
    *,
    body_cache_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Fine-tune ``cfg.checkpoint`` on ``person`` into the run folder ``run_dir`` (or resume).

    Args:
        cfg: The settings.
        person: The framed person at the checkpoint's image size; None to resume from the
            person kept in ``run_dir``.
        run_dir: The personalised run's folder; one with checkpoints is resumed (``cfg``'s
            loop settings, e.g. more steps, apply; the person and pairs are the kept ones).
        body_cache_dir: Anny's cache folder for the body self-pairs (default
            ``$ANNY_CACHE_DIR``).

    Returns:
        The loop's result (``step``, losses, the validation on fixed self-pairs).

    Raises:
        ConfigError: No checkpoint given.
        ValueError: The person's frame is not the checkpoint's image size, or the body fit
            failed (set ``body.count=0``).
        FileNotFoundError: No person given and none kept in ``run_dir``.
    """
    run_dir = Path(run_dir)
    resuming = bool(list_checkpoints(run_dir / CHECKPOINTS_DIR))
    if resuming:
        stage_cfg = load_config(GeneratorStageConfig, run_dir / CONFIG_FILE)
        train = from_dict(GeneratorTrainConfig, to_dict(cfg.train), where="train")
        stage_cfg = dataclasses.replace(stage_cfg, train=train)
        person = load_person(run_dir) if person is None else person
        flow_net, pose_map = recorded_flow_network(run_dir)
    else:
        if person is None:
            person = load_person(run_dir)
        stage_cfg = personalized_stage_config(cfg)
        flow_net, pose_map = init_flow_network(stage_cfg)
    size = tuple(stage_cfg.generator.image_size)
    if person.size != size:
        raise ValueError(
            f"the person's frame is {person.size[0]}x{person.size[1]}, but the run takes "
            f"{size[0]}x{size[1]} images; frame the person at the run's size"
        )
    save_person(person, run_dir)
    save_config(cfg, run_dir / PERSONALIZE_FILE)
    save_config(FlowModelRecord(flow_net.cfg, pose_map), run_dir / FLOW_MODEL_FILE)
    pairs = _body_pairs(cfg, person, run_dir, body_cache_dir)
    maps = stage_cfg.data.pose_map
    train_set = SelfPairDataset(person, cfg.pairs, maps, pairs, seed=stage_cfg.train.seed)
    val_set = None
    if cfg.pairs.val_pairs:
        seed = stage_cfg.train.seed + 1
        val_set = SelfPairDataset(person, cfg.pairs, maps, pairs, cfg.pairs.val_pairs, seed)
    count = stage_cfg.data.sample_pairs if val_set is not None else 0
    samples = collate_self_pairs([val_set[i] for i in range(count)]) if val_set and count else None
    vgg = None
    if stage_cfg.loss.content_weights:
        vgg = load_vgg19(stage_cfg.loss.vgg_weights, random_weights=cfg.loss.random_vgg)
    init_ckpt = None if resuming else init_checkpoint(cfg.checkpoint or "", cfg.which)
    logger.info(
        "personalising %s: %d steps of batch %d, %d body self-pairs",
        init_ckpt or run_dir, stage_cfg.train.max_steps, stage_cfg.train.batch_size,
        0 if pairs is None else len(pairs),
    )  # fmt: skip

    def make_stage(device: torch.device) -> PersonalizeStage:
        stage = PersonalizeStage(
            stage_cfg, cfg.loss, device, flow_net, pose_map, vgg, samples, cfg.freeze_norm
        )
        if init_ckpt is not None:
            load_init_weights(init_ckpt, stage.modules(), skip=(FLOW_REGRESSOR,))
        return stage

    return run_training(
        make_stage, train_set, val_set, stage_cfg.train, run_dir,
        collate_fn=collate_self_pairs, resolved_config=stage_cfg,
    )  # fmt: skip
