"""Person-specific runs for real test pairs: fine-tuning on a dataset, personalising on one image.

Two kinds of job, run in spawned worker processes (``workers`` at a time, ``threads`` torch
threads each; 1 thread per process: two threads per process were many times slower on the shared
2-core machine) or in this process with ``workers=0``:

- :class:`FinetuneJob`: ``posetransfer train --init RUN --config PRESET --data DATA`` (a
  trained run fine-tuned on a ``make-dataset`` folder with its ``synth-flow`` flows);
- :class:`PersonalizeJob`: ``posetransfer personalize`` on one
  :class:`~posetransfer.train.person_crop.PersonCrop` (the test pair's source image), through
  :func:`posetransfer.train.personalize.personalize`.

A run folder that already holds its last step is not trained again (0 s); a stopped one resumes.
Each job reports its wall and CPU seconds (the CPU time counts only that process, so it holds on
a loaded machine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from posetransfer.config import apply_overrides, from_dict, load_config, to_dict
from posetransfer.experiments.compare import run_steps
from posetransfer.io import PathLike
from posetransfer.runtime import torch_threads
from posetransfer.train.generator_config import GeneratorStageConfig
from posetransfer.train.person_crop import PersonCrop
from posetransfer.train.personalize_config import PersonalizeConfig

__all__ = ["FinetuneJob", "JobRunner", "JobTime", "PersonalizeJob", "finetune_config", "run_jobs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneJob:
    """Fine-tune a run on a dataset (``cfg``: a generator stage config with ``init.run``)."""

    name: str
    cfg: GeneratorStageConfig
    run_dir: Path

    @property
    def steps(self) -> int:
        """Steps of the finished run."""
        return self.cfg.train.max_steps


@dataclass(frozen=True)
class PersonalizeJob:
    """Personalise ``cfg.checkpoint`` on one framed person."""

    name: str
    cfg: PersonalizeConfig
    person: PersonCrop
    run_dir: Path
    body_cache_dir: str | None = None

    @property
    def steps(self) -> int:
        """Steps of the finished run."""
        return self.cfg.train.max_steps


Job = FinetuneJob | PersonalizeJob


@dataclass(frozen=True)
class JobTime:
    """Wall and CPU seconds of one job (0, 0 when its run was found finished)."""

    wall: float
    cpu: float


def finetune_config(
    init_run: PathLike, data_root: PathLike, preset: PathLike, overrides: Sequence[str] = ()
) -> GeneratorStageConfig:
    """``train --config PRESET --init INIT_RUN --data DATA_ROOT [overrides]`` as a config."""
    from posetransfer.train.generator_init import adopt_init

    cfg = load_config(GeneratorStageConfig, preset)
    sets = [f"data.root={data_root}", f"init.run={init_run}", "train.progress=false"]
    return adopt_init(apply_overrides(cfg, [*sets, *overrides]))


def _run_job(job: Job, threads: int) -> JobTime:
    """Worker entry point: one job with ``threads`` torch threads."""
    wall, cpu = time.perf_counter(), time.process_time()
    with torch_threads(threads):
        if isinstance(job, FinetuneJob):
            from posetransfer.train.generator_stage import train_generator

            cfg = from_dict(GeneratorStageConfig, to_dict(job.cfg))
            train_generator(cfg, job.run_dir)
        else:
            from posetransfer.train.personalize import personalize

            personalize(job.cfg, job.person, job.run_dir, body_cache_dir=job.body_cache_dir)
    return JobTime(time.perf_counter() - wall, time.process_time() - cpu)


class JobRunner:
    """Runs jobs in the background, ``workers`` processes at a time (0: at once, in-process).

    Use it in a ``with`` block: :meth:`submit` jobs as their inputs are ready, then :meth:`wait`.
    A job whose run folder already holds its last step is skipped (reported as 0 s).
    """

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        if workers < 0 or threads < 1:
            raise ValueError(f"workers must be >= 0 and threads >= 1, got {workers}, {threads}")
        self.workers, self.threads = workers, threads
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future[JobTime]] = {}
        self._times: dict[str, JobTime] = {}

    def __enter__(self) -> JobRunner:
        if self.workers:
            context = get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._pool is not None:
            if exc_type is not None:  # an error or Ctrl-C: stop the workers, do not wait
                for process in list(self._pool._processes.values()):
                    process.terminate()
            self._pool.shutdown(wait=exc_type is None, cancel_futures=True)
            self._pool = None

    def submit(self, job: Job) -> None:
        """Start ``job`` (or queue it behind the running ones)."""
        if run_steps(job.run_dir) >= job.steps:
            logger.info("%s: finished run found in %s", job.name, job.run_dir)
            self._times[job.name] = JobTime(0.0, 0.0)
        elif self._pool is None:
            self._times[job.name] = _run_job(job, self.threads)
        else:
            self._futures[job.name] = self._pool.submit(_run_job, job, self.threads)

    def wait(self) -> dict[str, JobTime]:
        """Wait for every submitted job; name -> times, in submission order."""
        for name, future in self._futures.items():
            self._times[name] = future.result()
            time_ = self._times[name]
            logger.info("%s: trained in %.0f s (%.0f s CPU)", name, time_.wall, time_.cpu)
        self._futures.clear()
        return dict(self._times)


def run_jobs(jobs: Sequence[Job], *, workers: int = 2, threads: int = 1) -> dict[str, JobTime]:
    """Run the jobs (finished runs skipped), ``workers`` processes at a time (0: in-process).

    Returns:
        Job name -> its times, in the jobs' order.
    """
    with JobRunner(workers, threads) as runner:
        for job in jobs:
            runner.submit(job)
        return runner.wait()
