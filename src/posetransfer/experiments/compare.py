"""Train the paper's ablations from one config and score them with baselines on the test split.

The variants and their step budgets are :mod:`posetransfer.experiments.variants` (the full model,
one-component ablations, the paper-sized model); :func:`train_variants` trains them from one base
config, several at a time, skipping finished runs and resuming stopped ones; :func:`compare`
then renders the test pairs with each and with the baselines and scores them all. Baselines and
scoring are :mod:`posetransfer.experiments.baselines`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from posetransfer.config import from_dict, to_dict
from posetransfer.experiments.baselines import (
    BASELINES,
    score_methods,
    select_test_pairs,
    write_baselines,
)
from posetransfer.experiments.variants import (
    PAPER,
    VARIANT_NAMES,
    VARIANTS,
    Variant,
    paper_overrides,
    resolve_variant,
    variant_config,
    variant_name,
)
from posetransfer.infer.inputs import infer_pairs
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.io import PathLike
from posetransfer.runtime import torch_threads
from posetransfer.train.checkpoint import CheckpointError, find_checkpoint
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = [
    "PAPER",
    "VARIANTS",
    "VARIANT_NAMES",
    "Comparison",
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

    with torch_threads(threads):
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
