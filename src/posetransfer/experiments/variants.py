"""The models a comparison trains: the full model, its ablations and the paper-sized model.

Variants, as overrides of one :class:`GeneratorStageConfig` (the *base*). Each ablation switches
one component of the full model off; what cannot work without it goes with it (the generator
refuses visibility without flow and a single encoder with flow; the pixel-warp refiner warps the
source by the flow):

- ``full``: the base itself (dual encoder, feature warping with visibility, pixel warping).
- ``no_pixel_warp``: ``pixel_warp.enabled=false`` (the full generator alone; released id 0.4).
- ``no_visibility``: ``generator.visibility=none``, pixel warping kept (the refiner still sees
  the flow regressor's visibility).
- ``no_flow``: ``generator.use_flow=false`` (and so ``visibility=none``, no pixel warping).
- ``single_encoder``: ``generator.dual_encoder=false`` (one encoder on ``cat(x_src, p_tgt)``;
  and so no flow, no visibility, no pixel warping; released id 0.1).
- ``paper``: not an ablation: the full model with the original's network sizes
  (:func:`paper_overrides`; DeepFashion nets when the image size allows their stride 128, else
  Market nets), trained on the same schedule.

The paper's Table 2 instead removes one more component from ``no_pixel_warp`` each time; its
rows are these overrides applied on top of ``pixel_warp.enabled=false``.

Step budgets: a variant without pixel warping trains the base's ``schedule.coarse_steps``
generator steps; one with pixel warping trains the whole two-stage schedule (``train.max_steps``).
When ``no_pixel_warp`` is trained too, ``full`` is that run's generator plus a refiner trained for
the remaining ``train.max_steps - schedule.coarse_steps`` steps (``schedule.init_generator``, as
the original loaded the 0.4 generator), so the two differ by exactly the refiner.

:mod:`posetransfer.experiments.compare` trains and scores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from posetransfer.config import apply_overrides
from posetransfer.io import PathLike
from posetransfer.models.discriminator import DiscriminatorConfig
from posetransfer.models.generator import GeneratorConfig
from posetransfer.models.pixel_warp import PixelWarpConfig
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = [
    "PAPER",
    "VARIANTS",
    "VARIANT_NAMES",
    "Variant",
    "paper_overrides",
    "resolve_variant",
    "variant_config",
    "variant_name",
]

_NO_PW = ("pixel_warp.enabled=false",)
_NO_FLOW = ("generator.use_flow=false", "generator.visibility=none", *_NO_PW)

#: The variant with the original's network sizes (see :func:`paper_overrides`).
PAPER = "paper"


@dataclass(frozen=True)
class Variant:
    """One trained model of the comparison.

    Attributes:
        name: Key in the results (``full``, ``no_flow``, ...).
        overrides: Dotted overrides applied to the base config.
        description: One line for tables.
    """

    name: str
    overrides: tuple[str, ...]
    description: str


#: The full model and its ablations (one component off each), full model first.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("full", (), "dual encoder, flow-warped skips with visibility, pixel warping"),
        Variant("no_pixel_warp", _NO_PW, "the full generator without the pixel-warp refiner"),
        Variant(
            "no_visibility", ("generator.visibility=none",), "full, but the skips ignore visibility"
        ),
        Variant("no_flow", _NO_FLOW, "dual encoder, un-warped appearance skips (no pixel warp)"),
        Variant(
            "single_encoder",
            (*_NO_FLOW, "generator.dual_encoder=false"),
            "one encoder on cat(source, target pose), no flow",
        ),
    )
}

#: Every variant name :func:`variant_config` accepts.
VARIANT_NAMES: tuple[str, ...] = (*VARIANTS, PAPER)


def paper_overrides(image_size: Sequence[int]) -> tuple[str, ...]:
    """Overrides giving a base config the original's generator, refiner and discriminator sizes.

    The DeepFashion nets (7 down-samplings, stride 128) when both sides of ``image_size`` are
    multiples of 128, else the Market nets (5, stride 32): the original's own choice of nets for
    256x256 and 128x64 images.

    Args:
        image_size: ``(H, W)`` of the base's images.

    Raises:
        ValueError: A size neither net's stride divides.
    """
    height, width = image_size
    dataset: Literal["deepfashion", "market"]
    dataset = "deepfashion" if height % 128 == 0 and width % 128 == 0 else "market"
    gen, pw = GeneratorConfig.paper(dataset), PixelWarpConfig.paper(dataset)
    disc = DiscriminatorConfig.paper()
    stride = max(2 ** (len(gen.channels) - 1), 2 ** (len(pw.channels) - 1))
    if height % stride or width % stride:
        raise ValueError(
            f"image size {height}x{width}: the original's {dataset} nets need multiples of {stride}"
        )

    def listed(values: Sequence[int]) -> str:
        return "[" + ", ".join(map(str, values)) + "]"

    return (
        f"generator.channels={listed(gen.channels)}",
        f"generator.num_res_blocks={gen.num_res_blocks}",
        f"generator.warp_levels={gen.warp_levels}",
        f"generator.head_kernel={gen.head_kernel}",
        f"pixel_warp.channels={listed(pw.channels)}",
        f"pixel_warp.num_res_blocks={pw.num_res_blocks}",
        f"pixel_warp.flow_input={str(pw.flow_input).lower()}",
        f"pixel_warp.head_kernel={pw.head_kernel}",
        f"discriminator.base_channels={disc.base_channels}",
        f"discriminator.num_layers={disc.num_layers}",
    )


def resolve_variant(base: GeneratorStageConfig, name: str | Variant) -> Variant:
    """The :class:`Variant` called ``name`` (a key of :data:`VARIANTS`, or :data:`PAPER`); a
    :class:`Variant` itself is returned as it is (a custom model of the comparison).

    Raises:
        ValueError: An unknown name, or ``paper`` at an image size the original's nets refuse.
    """
    if isinstance(name, Variant):
        return name
    if name == PAPER:
        overrides = paper_overrides(base.generator.image_size)
        return Variant(PAPER, overrides, "full model with the original's network sizes")
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANT_NAMES)}")
    return VARIANTS[name]


def variant_name(variant: str | Variant) -> str:
    """The run-folder name of a variant given by name or as a :class:`Variant`."""
    return variant.name if isinstance(variant, Variant) else variant


def variant_config(
    base: GeneratorStageConfig,
    variant: str | Variant,
    run_root: PathLike,
    names: Sequence[str | Variant] = (),
) -> GeneratorStageConfig:
    """The config of one variant (see the module docstring for the step budgets).

    Args:
        base: The full model's config (``data.root`` and ``flow.checkpoint`` set).
        variant: A name in :data:`VARIANT_NAMES`, or a custom :class:`Variant` (its overrides may
            set its own schedule).
        run_root: Folder holding one run folder per variant (``run_root/<name>``).
        names: All variants trained together; ``full`` starts from ``no_pixel_warp`` when listed.

    Raises:
        ValueError: An unknown variant name, or no refiner steps left for ``full``.
    """
    resolved = resolve_variant(base, variant)
    name, names = resolved.name, [variant_name(n) for n in names]
    cfg = apply_overrides(base, resolved.overrides)
    coarse = base.schedule.coarse_steps
    if not base.pixel_warp.enabled:
        return cfg
    if not cfg.pixel_warp.enabled:
        return replace(cfg, train=replace(cfg.train, max_steps=max(coarse, 1)))
    if name == "full" and "no_pixel_warp" in names:
        if base.train.max_steps <= coarse:
            raise ValueError(
                f"train.max_steps={base.train.max_steps} leaves no refiner steps after "
                f"schedule.coarse_steps={coarse}"
            )
        schedule = replace(
            cfg.schedule, coarse_steps=0, init_generator=Path(run_root) / "no_pixel_warp"
        )
        train = replace(cfg.train, max_steps=base.train.max_steps - coarse)
        return replace(cfg, schedule=schedule, train=train)
    return cfg
