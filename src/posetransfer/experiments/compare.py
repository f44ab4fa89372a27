"""Train the paper's ablations from one config and score them with baselines on the test split.

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

Baselines and scoring are :mod:`posetransfer.experiments.baselines`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from posetransfer.config import apply_overrides, from_dict, to_dict
from posetransfer.experiments.baselines import (
    BASELINES,
    score_methods,
    select_test_pairs,
    write_baselines,
)
from posetransfer.infer.inputs import infer_pairs
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.models.discriminator import DiscriminatorConfig
from posetransfer.models.generator import GeneratorConfig
from posetransfer.models.pixel_warp import PixelWarpConfig
from posetransfer.train.checkpoint import CheckpointError, find_checkpoint
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = [
    "PAPER",
    "VARIANTS",
    "VARIANT_NAMES",
    "Variant",
    "compare",
    "paper_overrides",
    "resolve_variant",
    "run_steps",
    "train_variants",
    "variant_config",
    "variant_name",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

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


def run_steps(run_dir: PathLike) -> int:
    """Steps of a run's latest checkpoint (0 when it has none)."""
    try:
        ckpt = find_checkpoint(run_dir, "latest")
    except (CheckpointError, FileNotFoundError):
        return 0
    return int(json.loads((ckpt / "meta.json").read_text(encoding="utf-8"))["step"])


def _logged_step(run_dir: Path) -> int:
    """The last training step a run logged in ``stats.jsonl`` (for progress only)."""
    path = run_dir / "stats.jsonl"
    if not path.is_file():
        return 0
    step = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if '"kind": "train"' in line:
            try:
                step = int(json.loads(line)["step"])
            except (ValueError, KeyError):
                continue
    return step


def _train_one(cfg_data: dict, run_dir: str, threads: int) -> float:
    """Worker entry point: train one variant with ``threads`` torch threads; wall seconds."""
    from posetransfer.train.generator_stage import train_generator

    torch.set_num_threads(threads)
    start = time.perf_counter()
    train_generator(from_dict(GeneratorStageConfig, cfg_data), run_dir)
    return time.perf_counter() - start


def train_variants(
    base: GeneratorStageConfig,
    variants: Sequence[str | Variant],
    run_root: PathLike,
    *,
    workers: int = 1,
    threads: int = 1,
    progress: bool = False,
) -> dict[str, float]:
    """Train the variants, ``workers`` at a time; finished runs are skipped, stopped ones resume.

    Each variant trains in ``run_root/<name>`` with ``threads`` torch threads; with
    ``workers > 1`` each runs in its own (spawned) process. ``full`` waits for ``no_pixel_warp``
    when it starts from it.

    Args:
        base: The full model's config.
        variants: Names in :data:`VARIANT_NAMES` or custom :class:`Variant` objects.
        run_root: Parent of the run folders.
        workers: Variants trained at once.
        threads: Torch threads per variant.
        progress: One progress bar over all variants' steps.

    Returns:
        Variant -> training wall seconds (0 for runs found finished).
    """
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be >= 1, got {workers} and {threads}")
    run_root = Path(run_root)
    names = [variant_name(v) for v in variants]
    cfgs = {variant_name(v): variant_config(base, v, run_root, variants) for v in variants}
    steps = {name: cfg.train.max_steps for name, cfg in cfgs.items()}
    seconds = {name: 0.0 for name in names}
    todo = [name for name in names if run_steps(run_root / name) < steps[name]]
    done = set(names) - set(todo)
    for name in sorted(done):
        logger.info("variant %s: finished run found in %s", name, run_root / name)

    def ready(name: str) -> bool:
        init = cfgs[name].schedule.init_generator
        return init is None or init.name not in names or init.name in done

    bar = tqdm(total=sum(steps.values()), desc="train variants", unit="step", disable=not progress)
    bar.update(sum(steps[n] for n in done))
    counted = {name: 0 for name in todo}

    def tick() -> None:
        for name in counted:
            now = steps[name] if name in done else _logged_step(run_root / name)
            bar.update(max(now - counted[name], 0))
            counted[name] = max(now, counted[name])

    if workers == 1:
        for name in todo:
            seconds[name] = _train_one(to_dict(cfgs[name]), str(run_root / name), threads)
            done.add(name)
            tick()
        bar.close()
        return seconds
    context = get_context("spawn")
    running: dict[Future[float], str] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        while todo or running:
            for name in [n for n in todo if ready(n)][: workers - len(running)]:
                todo.remove(name)
                job = pool.submit(_train_one, to_dict(cfgs[name]), str(run_root / name), threads)
                running[job] = name
                logger.info("variant %s: training %d steps", name, steps[name])
            finished, _ = wait(list(running), timeout=2.0, return_when=FIRST_COMPLETED)
            for job in finished:
                name = running.pop(job)
                seconds[name] = job.result()
                done.add(name)
                logger.info("variant %s: trained in %.0f s", name, seconds[name])
            tick()
    bar.close()
    return seconds


@dataclass
class Comparison:
    """What :func:`compare` produced.

    Attributes:
        metrics: Method (variants, then baselines) -> metric -> value.
        runs: Variant -> run folder.
        outputs: Method -> folder of its test outputs.
        pairs_csv: The scored test pairs.
        seconds: Phase (``train <variant>``, ``infer``, ``baselines``, ``score``) -> wall seconds.
    """

    metrics: dict[str, dict[str, float | None]]
    runs: dict[str, Path]
    outputs: dict[str, Path]
    pairs_csv: Path
    seconds: dict[str, float] = field(default_factory=dict)


def compare(
    base: GeneratorStageConfig,
    out_dir: PathLike,
    *,
    flows_3d: PathLike | None,
    variants: Sequence[str | Variant] = tuple(VARIANTS),
    baselines: Sequence[str] = tuple(BASELINES),
    max_test_pairs: int | None = None,
    workers: int = 1,
    threads: int = 1,
    progress: bool = False,
    on_phase: Callable[[str, float], None] | None = None,
) -> Comparison:
    """Train the variants, render the test pairs with each and the baselines, and score all.

    Layout: ``out_dir/runs/<variant>`` (run folders), ``out_dir/outputs/<method>`` (PNGs),
    ``out_dir/test_pairs.csv``. Finished runs and existing outputs are reused.

    Args:
        base: The full model's config (``data.root``, ``flow.checkpoint`` set).
        out_dir: Output folder.
        flows_3d: ``synth-flow`` flow files of the test pairs (for ``warp_3d``).
        variants: Names in :data:`VARIANT_NAMES` or custom :class:`Variant` objects.
        baselines: Keys of :data:`BASELINES`.
        max_test_pairs: Score evenly spaced pairs of the test split only.
        workers: Variants trained at once (see :func:`train_variants`).
        threads: Torch threads per training process.
        progress: Progress bars.
        on_phase: Called with each phase's name and seconds once it ends.

    Returns:
        The comparison.
    """
    if base.data.root is None:
        raise ValueError("base.data.root is not set")
    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}

    def phase(name: str, start: float) -> None:
        seconds[name] = time.perf_counter() - start
        if on_phase is not None:
            on_phase(name, seconds[name])

    start = time.perf_counter()
    trained = train_variants(
        base, variants, out_dir / "runs", workers=workers, threads=threads, progress=progress
    )
    seconds.update({f"train {name}": s for name, s in trained.items()})
    phase("train", start)
    pairs_csv = out_dir / "test_pairs.csv"
    pairs = select_test_pairs(base.data.root, pairs_csv, max_pairs=max_test_pairs)
    start = time.perf_counter()
    outputs: dict[str, Path] = {}
    names = [variant_name(v) for v in variants]
    for name in names:
        pipeline = PoseTransferPipeline.from_run(out_dir / "runs" / name)
        outputs[name] = out_dir / "outputs" / name
        infer_pairs(pipeline, base.data.root, pairs_csv, outputs[name], progress=progress)
    phase("infer", start)
    start = time.perf_counter()
    if baselines:
        outputs |= write_baselines(
            base.data.root, pairs, out_dir / "outputs", flow_run=base.flow.checkpoint,
            flows_3d=flows_3d, methods=baselines, protocol=base.data.protocol,
        )  # fmt: skip
    phase("baselines", start)
    start = time.perf_counter()
    metrics = score_methods(outputs, base.data.root, pairs_csv, progress=progress)
    phase("score", start)
    runs = {name: out_dir / "runs" / name for name in names}
    return Comparison(metrics, runs, outputs, pairs_csv, seconds)
