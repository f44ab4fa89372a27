"""The demo's real-people section: the trained model, ``warp_3d`` and personalisation on real video.

After the synthetic stages, :func:`run_real_section` takes real frames of one person (the four
cameras of Pose2Sim's ``Demo_SinglePerson``, BSD-3, fetched and checksum-checked by
:func:`~posetransfer.experiments.real_videos.ensure_real_videos` into ``real.cache_dir``), makes
them a dataset with ``make-dataset`` at the demo's image size (``OUT/real/data``), picks
``real.pairs`` test pairs of one source (pose and view changes alternately,
:mod:`~posetransfer.experiments.real_eval`), personalises the demo's ``full`` run on that source
image (``OUT/real/personal``, :func:`posetransfer.train.personalize.personalize`), and renders
and scores ``copy_source``, ``warp_3d``, the demo run with its flow regressor and with the
fitted-body flow, and the personalised run, composited as ``infer`` writes a photo.

When the videos cannot be fetched (offline) or the ``pose``/``video`` extras are missing, the
section says why and the demo goes on. ``real.enabled=false`` leaves the section out. A rerun
reuses the dataset and the finished personalised run.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from posetransfer.config import ConfigError
from posetransfer.experiments.real_videos import SINGLE_PERSON, RealVideosError
from posetransfer.report.report_data import GridRow, Section

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel

__all__ = ["RealDemoConfig", "RealSection", "real_inputs", "run_real_section"]

logger = logging.getLogger(__name__)

_METHODS = {
    "copy_source": "the source crop unchanged",
    "warp_3d": "the source warped by the fitted-body flow",
    "demo/regressor": "the demo's `full` run with its flow regressor (trained on synthetic poses)",
    "demo/3d": "the same run with the fitted-body flow (`infer --flow 3d`)",
    "personal/3d": "the same run personalised on the source image (`posetransfer personalize`)",
}


@dataclass(frozen=True)
class RealDemoConfig:
    """The real-people section of the demo.

    Attributes:
        enabled: Run the section (false: the report leaves it out).
        cache_dir: Where the videos are fetched to (relative to the working directory;
            ``make demo`` shares ``make real-videos``' ``.cache/real``).
        videos: Which videos (keys of :func:`~.real_videos.video_paths`), one person.
        every: Keep every ``every``-th video frame.
        test_fraction: Each video's last frames that are test frames (make-dataset's split).
        pairs: Test pairs shown and scored (one source image, pose and view changes).
        min_pose_change: Least pose change of a pair in crop pixels (make-dataset's rule).
        personalize_steps: Personalisation steps (``posetransfer personalize --steps``).
        body_pairs: Body self-pairs of the personalisation (0: none, no body fit).
    """

    enabled: bool = True
    cache_dir: str = ".cache/real"
    videos: tuple[str, ...] = SINGLE_PERSON
    every: int = 4
    test_fraction: float = 0.2
    pairs: int = 4
    min_pose_change: float = 8.0
    personalize_steps: int = 150
    body_pairs: int = 8

    def __post_init__(self) -> None:
        for name in ("every", "pairs", "personalize_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"real.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.body_pairs < 0:
            raise ConfigError(f"real.body_pairs must be >= 0, got {self.body_pairs!r}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"real.test_fraction must be in (0, 1), got {self.test_fraction!r}")
        if not self.videos:
            raise ConfigError("real.videos must name at least one video")


@dataclass
class RealSection:
    """What the section shows: metrics and rows, or why it is missing (``skipped``).

    Attributes:
        skipped: Why there is nothing to show (None when it ran).
        metrics: Method -> metric -> mean over the pairs.
        rows: One report row per pair.
        notes: Facts for the text (pairs, source, steps).
        seconds: Wall time of the section.
    """

    skipped: str | None = None
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    rows: list[GridRow] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def section(self) -> Section:
        """The report section."""
        title = "Real people"
        if self.skipped is not None:
            return Section(title, f"Not shown: {self.skipped}. The rest of the demo is complete.")
        n = self.notes
        methods = "\n".join(f"- **{m}**: {_METHODS[m]}" for m in self.metrics)
        text = (
            f"Real frames of one man (Pose2Sim's demo videos, BSD-3: cameras "
            f"{n['cameras']}), made into a dataset by `posetransfer make-dataset` at "
            f"{n['size']} (its test segments: the last frames of each camera, after a gap). "
            f"Source `{n['source']}`; {n['pairs']} test pairs: the same camera at another "
            f"moment (**pose**) and another camera (**view**). The demo run was trained on "
            f"synthetic people only; the personalised run is that run after "
            f"{n['steps']} steps of `posetransfer personalize` on the source image alone "
            f"({n['personal_seconds']:.0f} s). Every output is composited as `infer` writes a "
            "photo: the person over the source's own background with the person removed, so "
            "view changes keep the source camera's background.\n\n"
            f"{methods}\n\n"
            "Metrics over these pairs (protocol `native`; `mask_*` inside the real target's "
            "person mask). `benchmarks/real_video.py` and BENCHMARKS.md have the full "
            "benchmark: all test pairs, the fine-tuned run and bootstrap intervals."
        )
        return Section(title, text, grids=self.rows, metrics=self.metrics)


def real_inputs(cfg: RealDemoConfig) -> list[Path]:
    """The videos of the section, fetched when missing (the tests replace this function).

    Raises:
        RealVideosError: They cannot be fetched or fail their checksums.
    """
    from posetransfer.experiments.real_videos import ensure_real_videos

    return list(ensure_real_videos(cfg.cache_dir, cfg.videos).values())


def run_real_section(
    cfg: RealDemoConfig,
    out: Path,
    run_dir: Path,
    model: BodyModel,
    *,
    threads: int = 1,
) -> RealSection:
    """Run the section (module docstring) into ``out/real``; never raises for missing inputs.

    Args:
        cfg: The section's settings.
        out: The demo's output folder.
        run_dir: The demo's trained ``full`` run.
        model: The body model.
        threads: Torch threads of the personalisation.
    """
    if not cfg.enabled:
        return RealSection(skipped="switched off (`real.enabled=false`)")
    start = time.perf_counter()
    try:
        inputs = real_inputs(cfg)
    except RealVideosError as err:
        logger.warning("real-people section skipped: %s", err)
        return RealSection(skipped=f"the demo videos could not be fetched ({err})")
    from posetransfer.experiments.real_eval import NoPairsError

    try:
        section = _run(cfg, out / "real", inputs, run_dir, model, threads)
    except ImportError as err:  # the pose or video extra (MediaPipe, PyAV) is missing
        logger.warning("real-people section skipped: %s", err)
        why = f"{err}; install the extras with `pip install 'posetransfer[pose,video]'`"
        return RealSection(skipped=why)
    except NoPairsError as err:
        logger.warning("real-people section skipped: %s", err)
        return RealSection(skipped=str(err))
    section.seconds = time.perf_counter() - start
    return section


def _run(
    cfg: RealDemoConfig, out: Path, inputs: list[Path], run_dir: Path, model: BodyModel,
    threads: int,
) -> RealSection:  # fmt: skip
    from posetransfer.config import apply_overrides
    from posetransfer.experiments.real_data import make_real_dataset, person_crop
    from posetransfer.experiments.real_eval import (
        RunMethod,
        prepare_pairs,
        render_methods,
        score_methods,
    )
    from posetransfer.experiments.real_figure import report_rows
    from posetransfer.experiments.real_scores import mean_scores
    from posetransfer.experiments.real_training import PersonalizeJob, run_jobs
    from posetransfer.infer.pipeline import PoseTransferPipeline
    from posetransfer.io import atomic_write_text
    from posetransfer.train.personalize_config import PersonalizeConfig

    demo = PoseTransferPipeline.from_run(run_dir)
    size = demo.image_size
    make_real_dataset(inputs, out / "data", size, every=cfg.every, test_fraction=cfg.test_fraction)
    test = prepare_pairs(model, out / "data", max_sources=1, pairs_per_source=cfg.pairs,
                         min_change=cfg.min_pose_change)  # fmt: skip
    source = test.sources[0]
    personal_cfg = apply_overrides(PersonalizeConfig(checkpoint=run_dir), [
        f"train.max_steps={cfg.personalize_steps}", f"body.count={cfg.body_pairs}",
        "train.progress=false",
    ])  # fmt: skip
    job = PersonalizeJob("personalize", personal_cfg, person_crop(test.images[source]),
                         out / "personal")  # fmt: skip
    seconds = run_jobs([job], workers=0, threads=threads)["personalize"].wall
    record = out / "personalize_seconds.json"
    if seconds > 0:
        atomic_write_text(record, json.dumps(seconds) + "\n")
    elif record.is_file():  # trained by an earlier run
        seconds = float(json.loads(record.read_text(encoding="utf-8")))
    personal = PoseTransferPipeline.from_run(job.run_dir)
    rendered = render_methods(test, {
        "demo/regressor": RunMethod(lambda s: demo, "regressor"),
        "demo/3d": RunMethod(lambda s: demo),
        "personal/3d": RunMethod(lambda s: personal),
    })  # fmt: skip
    scores = score_methods(test, rendered, renderings=("composited",))
    metrics = {m: mean_scores(s["composited"]) for m, s in scores.items()}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    cameras = sorted({Path(im.origin).stem for im in test.images.values()})
    notes: dict[str, object] = {
        "cameras": ", ".join(cameras), "size": f"{size[0]}x{size[1]}", "source": source,
        "pairs": len(test.pairs), "steps": cfg.personalize_steps,
        "personal_seconds": seconds,
    }  # fmt: skip
    rows = report_rows(test, rendered, list(range(len(test.pairs))))
    return RealSection(metrics=metrics, rows=rows, notes=notes)
