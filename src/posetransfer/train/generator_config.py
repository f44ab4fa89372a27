"""Config of the pose-transfer stage (``posetransfer train``), saved as ``RUN/config.yaml``.

Sections: ``data``, ``generator``, ``pixel_warp``, ``discriminator``, ``loss`` (the model and loss
configs of :mod:`posetransfer.models` and :mod:`posetransfer.losses.generator`), ``flow`` (the
flow regressor's run and which flow trains), ``init`` (the run a fine-tuning starts from),
``schedule`` (the two-stage split), ``discriminator_optim``, ``vgg`` and ``train`` (the shared
loop). The ablations are overrides of the same file
(:data:`posetransfer.experiments.compare.VARIANTS`): ``pixel_warp.enabled=false``,
``generator.visibility=none``, ``generator.use_flow=false generator.visibility=none`` and
``generator.dual_encoder=false generator.use_flow=false generator.visibility=none`` (the last two
without pixel warping, which warps by the flow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from posetransfer.config import ConfigError
from posetransfer.data.transforms import PROTOCOLS
from posetransfer.eval.names import SSIM
from posetransfer.losses.generator import GeneratorLossConfig
from posetransfer.models.discriminator import DiscriminatorConfig
from posetransfer.models.flow_regressor import FlowRegressorConfig
from posetransfer.models.generator import GeneratorConfig
from posetransfer.models.pixel_warp import PixelWarpConfig
from posetransfer.pose.maps import PoseMapConfig, num_pose_channels
from posetransfer.train.settings import TrainConfig

__all__ = [
    "FLOW_MODEL_FILE",
    "DiscriminatorOptimConfig",
    "FlowModelRecord",
    "FlowSourceConfig",
    "GeneratorDataConfig",
    "GeneratorStageConfig",
    "GeneratorTrainConfig",
    "InitConfig",
    "ScheduleConfig",
    "VggConfig",
]

#: File in a generator run recording the flow regressor's architecture and pose maps.
FLOW_MODEL_FILE = "flow_model.yaml"

#: Steps of one DeepFashion epoch: 101,966 PATN training pairs at batch 8.
_EPOCH = 12_746


@dataclass(frozen=True)
class GeneratorDataConfig:
    """Which pairs train and validate the generator, and how poses become maps.

    Validation pairs are held out of ``train_split`` by person
    (:func:`posetransfer.data.splits.carve_validation`), never taken from the test split;
    with the same ``val_*`` values as the flow run, both stages hold out the same people.

    Attributes:
        root: Dataset folder (PATN/GFLA or DIAF layout); ``--data`` sets it.
        train_split: Split the training and validation pairs come from.
        val_fraction: Share of the training identities held out (0: no validation, no ``best/``).
        val_by: ``"identity"`` (person, from the image names) or ``"image"`` (source image).
        val_max_pairs: Cap on validation pairs (a seeded draw), or None.
        val_seed: Seed of the held-out draw.
        protocol: Image protocol (``posetransfer.data.transforms.PROTOCOLS``).
        pose_map: Pose maps fed to the generator and the discriminator.
        hflip_prob: Probability of mirroring a training pair.
        sample_pairs: Pairs drawn in ``samples/step-*.png`` (per pair: source, target, warped
            source, coarse, output).
    """

    root: Path | None = None
    train_split: str = "train"
    val_fraction: float = 0.05
    val_by: Literal["identity", "image"] = "identity"
    val_max_pairs: int | None = 1000
    val_seed: int = 0
    protocol: str = "native"
    pose_map: PoseMapConfig = field(default_factory=PoseMapConfig)
    hflip_prob: float = 0.0
    sample_pairs: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.val_max_pairs is not None and self.val_max_pairs < 1:
            raise ConfigError(f"data.val_max_pairs must be None or >= 1, got {self.val_max_pairs}")
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ConfigError(f"data.hflip_prob must be in [0, 1], got {self.hflip_prob!r}")
        if self.sample_pairs < 0:
            raise ConfigError(f"data.sample_pairs must be >= 0, got {self.sample_pairs}")


@dataclass(frozen=True)
class FlowSourceConfig:
    """Where the flow regressor comes from and whether it trains.

    Attributes:
        checkpoint: A ``train-flow`` run folder; ``--flow-checkpoint`` sets it. Not needed when
            neither the generator nor the refiner uses flow, nor with ``init.run`` (the
            regressor then comes from that run).
        which: ``"best"`` or ``"latest"`` checkpoint of that run.
        finetune: Train the regressor with the generator in the coarse stage (through the
            generator loss) instead of freezing it.
        lr: Its learning rate when fine-tuned (None: ``train.lr``).
        source: Flow that conditions the networks in training and validation: ``"regressor"``
            (the regressor's prediction, as the paper) or ``"data"`` (the dataset's flow files,
            e.g. ``synth-flow``'s fitted-body flows; every pair must have one). The run keeps
            the regressor either way (inference's default flow); a run trained on fitted-body
            flows is meant for ``infer --flow 3d``.
    """

    checkpoint: Path | None = None
    which: Literal["best", "latest"] = "best"
    finetune: bool = False
    lr: float | None = None
    source: Literal["regressor", "data"] = "regressor"

    def __post_init__(self) -> None:
        if self.source not in ("regressor", "data"):
            raise ConfigError(f"flow.source must be 'regressor' or 'data', got {self.source!r}")
        if self.source == "data" and self.finetune:
            raise ConfigError(
                "flow.finetune=true trains the regressor through the generator, but "
                "flow.source='data' does not use its prediction; set one of them back"
            )


@dataclass(frozen=True)
class InitConfig:
    """Fine-tuning: the run whose networks start this one (:mod:`.generator_init`).

    The generator, the refiner, both discriminators and (unless ``flow.checkpoint`` names
    another) the flow regressor start from that run's checkpoint; the optimisers and the step
    counter start fresh. The architecture keys (``generator``, ``pixel_warp``, ``discriminator``,
    ``data.pose_map``) left at their defaults take that run's values, and one set to another
    value is an error naming it. Resuming this run resumes it (the init run is not read again).

    Attributes:
        run: A ``posetransfer train`` run folder, or one of its ``checkpoints/*`` folders;
            ``--init`` sets it.
        which: ``"best"``, ``"latest"`` or ``"auto"`` (best, else latest); filled in with the
            checkpoint that was found.
        step: That checkpoint's step (filled in, for the record).
        refiner_trained: Whether that checkpoint's refiner had trained (filled in); then the
            refiner is applied from this run's step 0, in validation and inference.
    """

    run: Path | None = None
    which: Literal["auto", "best", "latest"] = "auto"
    step: int | None = None
    refiner_trained: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    """The two-stage schedule.

    Attributes:
        coarse_steps: Steps training the generator; the rest of ``train.max_steps`` trains the
            pixel-warp refiner with the generator frozen. Ignored without pixel warping (every
            step trains the generator).
        init_generator: A generator run whose weights start this run (e.g. a coarse-only run,
            then ``coarse_steps=0``); its generator config must match.
        init_which: ``"best"`` or ``"latest"`` checkpoint of ``init_generator``.
    """

    coarse_steps: int = 8 * _EPOCH
    init_generator: Path | None = None
    init_which: Literal["best", "latest"] = "best"


@dataclass(frozen=True)
class DiscriminatorOptimConfig:
    """Adam for the discriminators (betas from ``train``; the original: 2e-5, decay 4e-4)."""

    lr: float = 2e-5
    weight_decay: float = 4e-4


@dataclass(frozen=True)
class VggConfig:
    """The perceptual loss's VGG19 (the file is ``loss.vgg_weights``).

    Attributes:
        random_weights: Random VGG weights (tests only: the perceptual loss is then noise).
    """

    random_weights: bool = False


@dataclass(frozen=True)
class GeneratorTrainConfig(TrainConfig):
    """:class:`TrainConfig` with the original pose-transfer schedule as defaults.

    Adam 2e-4, betas (0.5, 0.999) for the generator and the refiner (the discriminators:
    ``discriminator_optim``); 8 epochs of the coarse stage (the readme's stage-2 generator was
    epoch 8) then 30 of pixel warping, in steps of batch 8 on DeepFashion; validation every epoch
    and ``best/`` by maximum SSIM (``official_repo.md`` §4.10). Keys missing from a YAML
    ``train:`` section keep these defaults.
    """

    max_steps: int = 38 * _EPOCH
    val_every: int = _EPOCH
    ckpt_every: int = 4_000
    sample_every: int = 4_000
    val_metric: str = SSIM
    val_mode: Literal["min", "max"] = "max"


@dataclass(frozen=True)
class GeneratorStageConfig:
    """Everything ``posetransfer train`` needs (saved as ``RUN/config.yaml``).

    Attributes:
        data: Pairs, validation hold-out and pose maps.
        generator: Generator architecture (and the ablation flags).
        pixel_warp: Refiner architecture; ``enabled=false`` is the "w/o pixel warping" ablation.
        discriminator: PatchGAN architecture (one per stage).
        loss: Loss weights, GAN kind and warm-up (per stage), VGG19 file.
        flow: The flow regressor's run, whether it is fine-tuned, which flow trains.
        init: The run this one fine-tunes (``--init``), if any.
        schedule: The two-stage split.
        discriminator_optim: The discriminators' Adam.
        vgg: Test-only VGG settings.
        train: Loop settings (generator and refiner Adam, steps, validation, checkpoints).
    """

    data: GeneratorDataConfig = field(default_factory=GeneratorDataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    pixel_warp: PixelWarpConfig = field(default_factory=PixelWarpConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: GeneratorLossConfig = field(default_factory=GeneratorLossConfig)
    flow: FlowSourceConfig = field(default_factory=FlowSourceConfig)
    init: InitConfig = field(default_factory=InitConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    discriminator_optim: DiscriminatorOptimConfig = field(default_factory=DiscriminatorOptimConfig)
    vgg: VggConfig = field(default_factory=VggConfig)
    train: GeneratorTrainConfig = field(default_factory=GeneratorTrainConfig)

    def __post_init__(self) -> None:
        channels = num_pose_channels(self.data.pose_map)
        for name, section in (("generator", self.generator), ("discriminator", self.discriminator)):
            if section.pose_channels != channels:
                raise ConfigError(
                    f"{name}.pose_channels={section.pose_channels} but data.pose_map gives "
                    f"{channels} channels; set {name}.pose_channels={channels}"
                )
        height, width = self.generator.image_size
        protocol = PROTOCOLS.get(self.data.protocol)
        if protocol is None:
            known = ", ".join(PROTOCOLS)
            name = self.data.protocol
            raise ConfigError(f"data.protocol={name!r} is unknown; choose from {known}")
        if protocol.size is not None and tuple(protocol.size) != (height, width):
            size = list(protocol.size)
            raise ConfigError(
                f"data.protocol={self.data.protocol!r} gives {size[0]}x{size[1]} images but "
                f"generator.image_size={[height, width]}; set generator.image_size={size}"
            )
        steps = self.schedule.coarse_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"schedule.coarse_steps must be an int >= 0, got {steps!r}")
        initialised = self.schedule.init_generator is not None or self.init.run is not None
        if self.pixel_warp.enabled and steps == 0 and not initialised:
            raise ConfigError(
                "schedule.coarse_steps=0 trains the pixel-warp refiner on an untrained generator; "
                "set init.run (--init) or schedule.init_generator to a trained generator run"
            )
        if self.schedule.init_generator is not None and self.init.run is not None:
            raise ConfigError(
                "schedule.init_generator and init.run both start the generator; set only init.run"
            )

    @property
    def needs_flow(self) -> bool:
        """Whether the generator or the refiner uses the flow."""
        return self.generator.use_flow or self.pixel_warp.enabled

    def refines_at(self, step: int) -> bool:
        """Whether a step (0-based) trains the refiner, i.e. is in the pixel-warping stage."""
        return self.pixel_warp.enabled and step >= self.schedule.coarse_steps

    def refiner_trained_after(self, steps: int) -> bool:
        """Whether the refiner has trained once ``steps`` steps are done (or came trained from
        ``init.run``); validation and inference use the coarse image until then."""
        trained = steps > self.schedule.coarse_steps or self.init.refiner_trained
        return self.pixel_warp.enabled and trained


@dataclass(frozen=True)
class FlowModelRecord:
    """The flow regressor a generator run was trained with (``RUN/flow_model.yaml``)."""

    model: FlowRegressorConfig = field(default_factory=FlowRegressorConfig)
    pose_map: PoseMapConfig = field(default_factory=PoseMapConfig)
