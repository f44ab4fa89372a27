"""Config of personalisation (``posetransfer personalize``), saved as ``RUN/personalize.yaml``.

Sections: where the person comes from (``checkpoint``, ``which``, ``source``, ``person``,
``framing``, ``margin``: read by :mod:`posetransfer.infer.personalize`, which detects and frames
the person like ``infer`` does), ``pairs`` (affine self-pairs, :mod:`.self_pairs`), ``body``
(body self-pairs, :mod:`.body_pairs`), ``loss`` and ``train`` (the shared loop). The networks'
architecture is the checkpoint's; the personalised run's ``config.yaml`` is a generator run's
config (:class:`~.generator_config.GeneratorStageConfig`), so ``infer`` takes the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from posetransfer.config import ConfigError
from posetransfer.eval.names import SSIM
from posetransfer.train.body_pairs import BodyPairConfig
from posetransfer.train.generator_config import GeneratorTrainConfig
from posetransfer.train.self_pairs import SelfPairConfig

__all__ = [
    "PERSONALIZE_FILE",
    "PersonalizeConfig",
    "PersonalizeLossConfig",
    "PersonalizeTrainConfig",
]

#: The personalisation settings in a personalised run folder.
PERSONALIZE_FILE = "personalize.yaml"


@dataclass(frozen=True)
class PersonalizeLossConfig:
    """The fine-tuning loss: L1 everywhere, more on the person, the coarse image too, VGG.

    ``loss = l1_weight * |x - y| + person_weight * |x - y|_person + coarse_weight * |c - y|
    + perceptual_weight * sum of the VGG19 content terms`` (means over pixels; ``_person`` over
    the target's person mask; ``c`` the generator's image before the refiner).

    Attributes:
        l1_weight: Whole-image L1 of the output.
        person_weight: L1 of the output inside the target person's mask.
        coarse_weight: L1 of the generator's coarse image (it keeps the generator good where
            the refiner takes the warped source).
        perceptual_weight: VGG19 content terms (``relu1_1`` .. ``relu5_1``, 0.125 each, as the
            paper); needs ``vgg19-dcbb9e9d.pth`` (``vgg_weights`` or the weights folder).
        vgg_weights: The VGG19 file; None searches ``$POSETRANSFER_WEIGHTS_DIR`` and torch's
            cache folder.
        random_vgg: Random VGG weights (tests only).
    """

    l1_weight: float = 1.0
    person_weight: float = 1.0
    coarse_weight: float = 0.5
    perceptual_weight: float = 0.0
    vgg_weights: Path | None = None
    random_vgg: bool = False

    def __post_init__(self) -> None:
        for name in ("l1_weight", "person_weight", "coarse_weight", "perceptual_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class PersonalizeTrainConfig(GeneratorTrainConfig):
    """The loop's settings for a few minutes on a CPU: 300 steps of batch 6, Adam 5e-4 for the
    generator and the refiner together, validation on fixed self-pairs at the end (``best/``).

    5e-4 rather than 1e-4: on the real-video benchmark (``benchmarks/personalize.py``, 2
    cameras, 300 steps) 1e-4 left the generated background far from the plate (whole-image
    SSIM 0.67 of the raw output against 0.74) for a small gain of the composited output.
    """

    max_steps: int = 300
    batch_size: int = 6
    num_workers: int = 0
    lr: float = 5e-4
    log_every: int = 10
    val_every: int = 0
    ckpt_every: int = 100
    sample_every: int = 0
    keep_last: int | None = 1
    tensorboard: bool = False
    val_metric: str = SSIM
    val_mode: Literal["min", "max"] = "max"


@dataclass(frozen=True)
class PersonalizeConfig:
    """Everything ``posetransfer personalize`` needs.

    Attributes:
        checkpoint: The trained run to personalise (``--checkpoint``).
        which: Its ``"best"``, ``"latest"`` or ``"auto"`` (best, else latest) checkpoint.
        source: The photo of the person (``--source``).
        person: Which person of the photo (0 = the largest).
        framing: ``"crop"`` (a box around the person) or ``"letterbox"`` (the whole photo), as
            ``infer``'s ``photo.framing``.
        margin: Fraction of the person's box added on every side (``crop``).
        freeze_norm: Keep the normalisation layers' statistics (eval mode) and train only the
            weights: batches of one person would otherwise pull the running statistics.
        pairs: The affine self-pairs and the mix.
        body: The body self-pairs.
        loss: The loss.
        train: The loop (steps, batch, learning rate, checkpoints).
    """

    checkpoint: Path | None = None
    which: Literal["auto", "best", "latest"] = "auto"
    source: Path | None = None
    person: int = 0
    framing: Literal["crop", "letterbox"] = "crop"
    margin: float = 0.1
    freeze_norm: bool = True
    pairs: SelfPairConfig = field(default_factory=SelfPairConfig)
    body: BodyPairConfig = field(default_factory=BodyPairConfig)
    loss: PersonalizeLossConfig = field(default_factory=PersonalizeLossConfig)
    train: PersonalizeTrainConfig = field(default_factory=PersonalizeTrainConfig)

    def __post_init__(self) -> None:
        if self.person < 0:
            raise ConfigError(f"person must be >= 0, got {self.person!r}")
        if self.margin < 0:
            raise ConfigError(f"margin must be >= 0, got {self.margin!r}")
        if self.framing not in ("crop", "letterbox"):
            raise ConfigError(f"framing must be 'crop' or 'letterbox', got {self.framing!r}")
