"""``posetransfer demo``: the whole pipeline on synthetic data, from nothing to an HTML report.

Stages, each timed (a progress bar on a terminal), in ``OUT`` (default ``demo_out``):

1. ``make-synthetic``: Anny people with exact flows, split by person (``OUT/data``).
2. ``synth-flow``: fit the body model to every image's *keypoints* and render every pair's flow
   (``OUT/synth_flow``); the ground-truth flows are not used anywhere below.
3. ``train-flow``: the flow regressor on the synth-flow flows (``OUT/runs/flow``).
4. ``compare``: the full model and the paper's ablations trained from one config
   (:mod:`~posetransfer.experiments.compare`; ``OUT/work/runs/<variant>``), rendered on the
   person-disjoint test split with the baselines ``copy_source``, ``warp_pred`` and ``warp_3d``
   (the synth-flow flow), and scored: ``OUT/metrics.json`` maps each method to its metrics.
5. ``real people``: real video of one person made into a dataset, the ``full`` run, ``warp_3d``
   and the run personalised on a source image, scored on a few test pairs (``OUT/real``,
   :mod:`~posetransfer.experiments.demo_real`; when the videos or the pose/video extras are
   missing, the report says why and the demo goes on; ``real.enabled=false`` skips it).
6. ``report``: ``OUT/report.html`` (sample grids, metrics, loss curves, stage timings, real
   people) and ``OUT/figure.png`` (a few grid rows).

A rerun skips the stages whose outputs exist (datasets, finished runs, rendered test images);
``OUT/timings.json`` keeps the time each stage took when it ran. Outputs are not checked against
the config: after changing it, use a new ``OUT``. ``--quick`` applies
:data:`QUICK` (fewer people and steps) after the config and overrides.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from posetransfer.experiments.compare import compare, run_steps
from posetransfer.experiments.demo_config import QUICK, DemoConfig, quick_config
from posetransfer.io import PathLike
from posetransfer.runtime import torch_threads

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel

__all__ = ["QUICK", "DemoConfig", "quick_config", "run_demo"]

logger = logging.getLogger(__name__)


class _Stages:
    """Runs named stages once: a stage is skipped when ``done()`` says its outputs exist."""

    def __init__(self, out: Path) -> None:
        self.path = out / "timings.json"
        self.seconds: dict[str, float] = {}
        if self.path.is_file():
            self.seconds = json.loads(self.path.read_text(encoding="utf-8"))

    def run(self, name: str, done: Callable[[], bool], work: Callable[[], object]) -> None:
        if done() and name in self.seconds:
            logger.info("stage %s: outputs exist, skipped (took %.0f s)", name, self.seconds[name])
            return
        logger.info("stage %s ...", name)
        start = time.perf_counter()
        work()
        self.record(name, time.perf_counter() - start)

    def record(self, name: str, seconds: float) -> None:
        from posetransfer.io import atomic_write_text

        self.seconds[name] = round(seconds, 2)
        logger.info("stage %s: %.1f s", name, seconds)
        atomic_write_text(self.path, json.dumps(self.seconds, indent=2) + "\n")


def run_demo(
    cfg: DemoConfig,
    out: PathLike = "demo_out",
    *,
    model: BodyModel | None = None,
    progress: bool = False,
) -> dict[str, dict[str, float | None]]:
    """Run every stage (skipping finished ones) and write the report.

    Args:
        cfg: The demo config.
        out: Output folder.
        model: The body model (default: :func:`posetransfer.body.load_body_model`).
        progress: tqdm bars.

    Returns:
        Method -> metric -> value, as in ``out/metrics.json``.
    """
    from posetransfer.body import load_body_model

    out = Path(out)
    stages = _Stages(out)
    model = model if model is not None else load_body_model()
    with torch_threads(1):
        return _run_stages(cfg, out, stages, model, progress)


def _run_stages(
    cfg: DemoConfig, out: Path, stages: _Stages, model: BodyModel, progress: bool
) -> dict[str, dict[str, float | None]]:
    from posetransfer.experiments.demo_real import run_real_section
    from posetransfer.experiments.demo_report import grid_rows, write_demo_report, write_figure
    from posetransfer.io import atomic_write_text
    from posetransfer.synth.dataset_writer import make_synthetic
    from posetransfer.synth.flow_pipeline import SynthOutput, synthesize_flows
    from posetransfer.synth.flow_plan import build_plan
    from posetransfer.train.flow_stage import train_flow

    data, synth, flow_run, work = (
        out / "data",
        out / "synth_flow",
        out / "runs" / "flow",
        out / "work",
    )
    stages.run(
        "make-synthetic",
        lambda: (data / "config.yaml").is_file() and (data / "parts").is_dir(),
        lambda: make_synthetic(data, cfg.synthetic, model=model, progress=progress),
    )

    def synth_flow() -> None:
        sf = cfg.synth_flow
        plan = build_plan(data, fit_batch=sf.fit_batch, render_block=sf.render_block)
        synthesize_flows(model, plan, SynthOutput.create(synth), sf, progress=progress)

    stages.run("synth-flow", (synth / "summary.json").is_file, synth_flow)
    flow_cfg = replace(
        cfg.flow,
        data=replace(cfg.flow.data, root=data, flows_dir=synth),
        train=replace(cfg.flow.train, progress=progress),
    )

    def flow_stage() -> None:
        with torch_threads(cfg.threads):
            train_flow(flow_cfg, flow_run)

    stages.run("train-flow", lambda: run_steps(flow_run) >= flow_cfg.train.max_steps, flow_stage)
    base = cfg.generator
    base = replace(
        base,
        data=replace(base.data, root=data),
        flow=replace(base.flow, checkpoint=flow_run),
    )
    result = compare(
        base, work, flows_3d=synth / "flows", variants=cfg.variants, baselines=cfg.baselines,
        max_test_pairs=cfg.max_test_pairs, workers=cfg.workers, threads=cfg.threads,
        progress=progress,
        on_phase=lambda name, s: stages.record(f"compare: {name}", s) if s > 0.5 else None,
    )  # fmt: skip
    metrics = result.metrics
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    real = run_real_section(cfg.real, out, result.runs["full"], model, threads=cfg.threads)
    if real.seconds > 0:
        stages.record("real people", real.seconds)
    start = time.perf_counter()
    rows = grid_rows(cfg, out, result)
    write_figure(rows[: cfg.figure_rows], out / "figure.png")
    stages.record("report", time.perf_counter() - start)
    extra = [real.section()] if cfg.real.enabled else []
    write_demo_report(cfg, out, result, rows, stages.seconds, extra)
    return metrics
