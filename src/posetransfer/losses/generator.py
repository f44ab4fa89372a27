"""Loss of the pose-transfer stage: named unweighted terms, weighted once from the config.

Generator objective (``reference/official_repo.md`` §4.9)::

    L_G = l1_weight * l1
        + perceptual_weight * sum_k perceptual_layer_weights[k] * vgg_<k>
        + style_weight * sum_k style_layer_weights[k] * style_<k>
        + gan_weight(step) * gan

with ``l1 = mean |x_hat - x_tgt|`` on ``[-1, 1]`` images, the VGG terms of
:mod:`posetransfer.losses.perceptual` and the adversarial term of
:mod:`posetransfer.losses.adversarial`; ``gan_weight(step)`` is 0 before ``gan_start_step``.
The paper's values are ``1, 1, 0.125 x 5 (relu1_1 .. relu5_1), 0, 0.01`` with BCE, the GAN from the
6th of 30 epochs. The discriminator minimises ``discriminator_weight * (d_real + d_fake) / 2``;
the original scaled it by 0.01 (bug 7.1.15: with Adam that mostly strengthens weight decay).

:func:`generator_loss_terms` and :func:`discriminator_loss_terms` return unweighted terms (for
logging); :func:`weighted_total` and :func:`weighted_discriminator_total` are the only places that
apply weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from posetransfer.config import ConfigError
from posetransfer.losses.adversarial import (
    GAN_LOSSES,
    GanLossKind,
    discriminator_adversarial_terms,
    gan_weight,
    generator_adversarial_loss,
)
from posetransfer.losses.perceptual import perceptual_terms
from posetransfer.models.vgg import PERCEPTUAL_LAYERS, VGG19_LAYERS, VGG19Features

__all__ = [
    "GeneratorLossConfig",
    "discriminator_loss_terms",
    "generator_loss_terms",
    "weighted_discriminator_total",
    "weighted_total",
]


@dataclass(frozen=True)
class GeneratorLossConfig:
    """Weights and choices of the pose-transfer losses (defaults: the paper's, GAN from step 0).

    Attributes:
        l1_weight: Weight of the pixel L1 term.
        perceptual_weight: Global weight of the VGG content terms.
        perceptual_layers: VGG19 taps of the content and style terms.
        perceptual_layer_weights: Per-tap content weights (the original's "balance": 0.125 each).
        style_weight: Global weight of the Gram-matrix style terms (0: not computed).
        style_layer_weights: Per-tap style weights.
        gan_kind: ``"bce"`` (the original's), ``"lsgan"`` or ``"hinge"``.
        gan_weight: Weight of the generator's adversarial term once warmed up.
        gan_start_step: First training step with the GAN terms (generator and discriminator).
        gan_ramp_steps: Steps of a linear ramp of the GAN weight after ``gan_start_step``.
        discriminator_weight: Scale of the discriminator's loss (the original: 0.01).
        vgg_weights: torchvision ``vgg19-dcbb9e9d.pth``; None searches
            ``$POSETRANSFER_WEIGHTS_DIR`` and torch's cache folder.
    """

    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    perceptual_layers: tuple[str, ...] = PERCEPTUAL_LAYERS
    perceptual_layer_weights: tuple[float, ...] = (0.125, 0.125, 0.125, 0.125, 0.125)
    style_weight: float = 0.0
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    gan_kind: GanLossKind = "bce"
    gan_weight: float = 0.01
    gan_start_step: int = 0
    gan_ramp_steps: int = 0
    discriminator_weight: float = 1.0
    vgg_weights: Path | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        scalars = ("l1_weight", "perceptual_weight", "style_weight", "gan_weight")
        for field in (*scalars, "discriminator_weight"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ConfigError(f"{name}.{field} must be a finite number >= 0, got {value!r}")
        unknown = [k for k in self.perceptual_layers if k not in VGG19_LAYERS]
        if unknown:
            raise ConfigError(
                f"{name}.perceptual_layers: unknown VGG19 tap(s) {unknown}; "
                f"known: {', '.join(VGG19_LAYERS)}"
            )
        for field in ("perceptual_layer_weights", "style_layer_weights"):
            weights = getattr(self, field)
            if len(weights) != len(self.perceptual_layers):
                raise ConfigError(
                    f"{name}.{field} needs one weight per perceptual layer "
                    f"({len(self.perceptual_layers)}), got {weights!r}"
                )
            if not all(isinstance(w, int | float) and 0 <= w < math.inf for w in weights):
                raise ConfigError(f"{name}.{field} must be finite numbers >= 0, got {weights!r}")
        if self.gan_kind not in GAN_LOSSES:
            raise ConfigError(
                f"{name}.gan_kind must be one of {', '.join(GAN_LOSSES)}, got {self.gan_kind!r}"
            )
        for field in ("gan_start_step", "gan_ramp_steps"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}.{field} must be an int >= 0, got {value!r}")

    def gan_weight_at(self, step: int) -> float:
        """Weight of the GAN terms at ``step`` (0 before ``gan_start_step``; see
        :func:`posetransfer.losses.adversarial.gan_weight`)."""
        return gan_weight(
            step,
            weight=self.gan_weight,
            start_step=self.gan_start_step,
            ramp_steps=self.gan_ramp_steps,
        )

    def _active(self, weights: tuple[float, ...], scale: float) -> list[tuple[str, float]]:
        """``(tap, global * per-tap weight)`` for the taps with a non-zero weight."""
        pairs = zip(self.perceptual_layers, weights, strict=True)
        return [(k, scale * w) for k, w in pairs if scale * w > 0]

    @property
    def content_weights(self) -> list[tuple[str, float]]:
        """Effective weight of each computed ``vgg_<tap>`` term."""
        return self._active(self.perceptual_layer_weights, self.perceptual_weight)

    @property
    def style_weights(self) -> list[tuple[str, float]]:
        """Effective weight of each computed ``style_<tap>`` term."""
        return self._active(self.style_layer_weights, self.style_weight)


def generator_loss_terms(
    output: torch.Tensor,
    target: torch.Tensor,
    cfg: GeneratorLossConfig,
    *,
    vgg: VGG19Features | None = None,
    fake_logits: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Unweighted generator loss terms.

    Only the terms with a non-zero weight in ``cfg`` are computed (the VGG forward stops at the
    deepest weighted tap).

    Args:
        output: ``(B, 3, H, W)`` generated image in ``[-1, 1]``.
        target: ``(B, 3, H, W)`` real target image.
        cfg: Loss configuration.
        vgg: Frozen VGG19; required when a perceptual or style weight is non-zero.
        fake_logits: Discriminator logits on ``output`` (with the graph to the generator); give
            them when ``cfg.gan_weight_at(step) > 0``.

    Returns:
        0-dim tensors: ``"l1"``, ``"vgg_<tap>"``, ``"style_<tap>"`` and ``"gan"``.

    Raises:
        ValueError: On mismatched shapes or a missing ``vgg``.
    """
    if output.shape != target.shape:
        raise ValueError(
            f"output.shape={tuple(output.shape)} differs from target.shape={tuple(target.shape)}"
        )
    terms = {"l1": (output - target).abs().mean()}
    content = [k for k, _ in cfg.content_weights]
    style = [k for k, _ in cfg.style_weights]
    if content or style:
        if vgg is None:
            raise ValueError(
                "generator_loss_terms needs the VGG19 network (vgg=...) for non-zero perceptual or "
                "style weights"
            )
        terms |= perceptual_terms(vgg, output, target, content_layers=content, style_layers=style)
    if fake_logits is not None:
        terms["gan"] = generator_adversarial_loss(fake_logits, cfg.gan_kind)
    return terms


def weighted_total(
    terms: dict[str, torch.Tensor], cfg: GeneratorLossConfig, step: int
) -> torch.Tensor:
    """The generator objective: the weighted sum of :func:`generator_loss_terms`' terms.

    Args:
        terms: Unweighted terms.
        cfg: Weights.
        step: Training step (for the GAN warm-up).

    Returns:
        0-dim loss.

    Raises:
        ValueError: If a term with a non-zero weight is missing (e.g. ``"gan"`` after the
            warm-up) or an unknown term is present.
    """
    weighted = [("l1", cfg.l1_weight)]
    weighted += [(f"vgg_{k}", w) for k, w in cfg.content_weights]
    weighted += [(f"style_{k}", w) for k, w in cfg.style_weights]
    weighted.append(("gan", cfg.gan_weight_at(step)))
    known = {k for k, _ in weighted}
    known |= {f"{p}_{k}" for p in ("vgg", "style") for k in cfg.perceptual_layers}
    unknown = sorted(set(terms) - known)
    if unknown:
        raise ValueError(f"unknown loss term(s) {unknown}; known: {sorted(known)}")
    total = None
    for key, weight in weighted:
        if weight == 0:
            continue
        if key not in terms:
            raise ValueError(
                f"loss term {key!r} has weight {weight} at step {step} but was not computed "
                f"(got {sorted(terms)}){'; pass fake_logits' if key == 'gan' else ''}"
            )
        total = weight * terms[key] if total is None else total + weight * terms[key]
    if total is None:
        raise ValueError("every generator loss weight is 0")
    return total


def discriminator_loss_terms(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, cfg: GeneratorLossConfig
) -> dict[str, torch.Tensor]:
    """Unweighted discriminator terms ``{"d_real", "d_fake"}`` (fake logits of detached images)."""
    return discriminator_adversarial_terms(real_logits, fake_logits, cfg.gan_kind)


def weighted_discriminator_total(
    terms: dict[str, torch.Tensor], cfg: GeneratorLossConfig
) -> torch.Tensor:
    """The discriminator objective ``discriminator_weight * (d_real + d_fake) / 2``.

    Args:
        terms: Output of :func:`discriminator_loss_terms`.
        cfg: Weights.

    Returns:
        0-dim loss.
    """
    return cfg.discriminator_weight * 0.5 * (terms["d_real"] + terms["d_fake"])
