"""Personalise a trained run from one photo: find and frame the person, then fine-tune.

:func:`personalize_photo` detects the person in the photo and frames them exactly as ``infer``
does (:meth:`posetransfer.infer.repose.RePoser.source`: the model-sized frame, the detector's
person mask, the inpainted person-free plate), then hands that
:class:`~posetransfer.train.self_pairs.PersonCrop` to
:func:`posetransfer.train.personalize.personalize`, which fine-tunes the run on it and writes a
run folder that ``infer --checkpoint RUN`` takes. Training lives in ``train/``; this module only
brings the photo in (``infer/`` is above ``train/``, so the detector never enters ``train/``).

Example::

    from posetransfer.infer.personalize import personalize_photo
    from posetransfer.train.personalize_config import PersonalizeConfig

    cfg = PersonalizeConfig(checkpoint="demo_out/work/runs/full", source="me.jpg")
    personalize_photo(cfg, "runs/me")          # then: infer --checkpoint runs/me --flow 3d ...
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from posetransfer.config import ConfigError
from posetransfer.infer.images import load_image
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.repose import RePoseOptions, RePoser, SourcePerson
from posetransfer.pose.keypoints import Pose
from posetransfer.train.checkpoint import list_checkpoints
from posetransfer.train.generator_init import init_checkpoint
from posetransfer.train.loop import TrainResult
from posetransfer.train.personalize import personalize
from posetransfer.train.personalize_config import PersonalizeConfig
from posetransfer.train.resume import CHECKPOINTS_DIR
from posetransfer.train.self_pairs import PersonCrop

__all__ = ["frame_person", "personalize_photo"]

logger = logging.getLogger(__name__)


def frame_person(
    cfg: PersonalizeConfig,
    photo: Any = None,
    *,
    pose: Pose | None = None,
    detector_config: Any = None,
) -> tuple[PersonCrop, SourcePerson]:
    """The person of the photo framed at the checkpoint's size, as ``infer`` frames a source.

    Args:
        cfg: ``checkpoint``, ``which``, ``source`` (read when ``photo`` is None), ``person``,
            ``framing`` and ``margin`` are used.
        photo: The photo as an array or PIL image (default: ``cfg.source`` loaded).
        pose: The person's keypoints in the photo (default: detected).
        detector_config: Settings of the pose detector.

    Returns:
        The person for training and ``RePoser``'s :class:`SourcePerson` (frame in the photo).

    Raises:
        ConfigError: Neither ``photo`` nor ``cfg.source`` given, or no checkpoint.
        NoPersonError: Nobody (or not that person) in the photo.
    """
    if cfg.checkpoint is None:
        raise ConfigError("checkpoint is not set; pass --checkpoint RUN (a `train` run folder)")
    name = "photo"
    if photo is None:
        if cfg.source is None:
            raise ConfigError("source is not set; pass --source PHOTO")
        photo, name = load_image(cfg.source), str(cfg.source)
    ckpt = init_checkpoint(cfg.checkpoint, cfg.which)
    pipeline = PoseTransferPipeline.from_run(ckpt)
    options = RePoseOptions(framing=cfg.framing, margin=cfg.margin, person=cfg.person)
    with RePoser(pipeline, options, detector_config=detector_config) as reposer:
        source = reposer.source(photo, pose, name=name)
    return PersonCrop(source.crop, source.pose, source.mask, source.plate), source


def personalize_photo(
    cfg: PersonalizeConfig,
    run_dir: str | os.PathLike[str],
    *,
    photo: Any = None,
    pose: Pose | None = None,
    body_cache_dir: str | os.PathLike[str] | None = None,
    detector_config: Any = None,
) -> TrainResult:
    """Personalise ``cfg.checkpoint`` to the person of a photo, into ``run_dir``.

    A ``run_dir`` with checkpoints is resumed with the person kept there (no photo needed).

    Args:
        cfg: The settings (:class:`PersonalizeConfig`).
        run_dir: The personalised run's folder.
        photo: The photo (default: ``cfg.source``).
        pose: The person's keypoints in the photo (default: detected).
        body_cache_dir: Anny's cache folder (default ``$ANNY_CACHE_DIR``).
        detector_config: Settings of the pose detector.

    Returns:
        The training loop's result.
    """
    run_dir = Path(run_dir)
    person = None
    if not list_checkpoints(run_dir / CHECKPOINTS_DIR):
        person, source = frame_person(cfg, photo, pose=pose, detector_config=detector_config)
        logger.info("framed the person at %s of the photo", source.frame.box)
    return personalize(cfg, person, run_dir, body_cache_dir=body_cache_dir)
