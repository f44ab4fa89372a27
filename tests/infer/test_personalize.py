"""Personalising from a photo: the person framed as ``infer`` frames a source, then trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posetransfer.config import ConfigError, apply_overrides
from posetransfer.infer.images import load_image
from posetransfer.infer.personalize import frame_person, personalize_photo
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.repose import RePoser
from posetransfer.train.personalize import load_person
from posetransfer.train.personalize_config import PersonalizeConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUN = FIXTURES / "old_run" / "gen_run"
PHOTO = FIXTURES / "real" / "single_cam02_f030.jpg"
TINY = [
    f"checkpoint={RUN}", f"source={PHOTO}", "body.count=0", "train.batch_size=2",
    "train.progress=false", "train.device=cpu", "pairs.per_epoch=4", "pairs.val_pairs=2",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_the_person_is_framed_as_infer_frames_a_source() -> None:
    pytest.importorskip("mediapipe")
    cfg = apply_overrides(PersonalizeConfig(), TINY)
    person, source = frame_person(cfg)
    with RePoser(PoseTransferPipeline.from_run(RUN)) as reposer:
        expected = reposer.source(load_image(PHOTO))
    assert np.array_equal(person.image, expected.crop) and np.array_equal(
        person.plate, expected.plate
    )
    assert np.array_equal(person.pose.xy, expected.pose.xy)
    assert source.frame.box == expected.frame.box and person.size == (32, 32)


def test_personalize_photo_trains_on_the_framed_person_and_resumes_without_it(
    tmp_path: Path,
) -> None:
    pytest.importorskip("mediapipe")
    run = tmp_path / "me"
    result = personalize_photo(
        apply_overrides(PersonalizeConfig(), [*TINY, "train.max_steps=2"]), run
    )
    assert result.step == 2
    person, _ = frame_person(apply_overrides(PersonalizeConfig(), TINY))
    assert np.array_equal(load_person(run).image, person.image)
    # Resuming reads neither the photo nor the checkpoint run.
    moved = [f"checkpoint={tmp_path / 'gone'}", f"source={tmp_path / 'gone.jpg'}"]
    again = personalize_photo(
        apply_overrides(PersonalizeConfig(), [*TINY, *moved, "train.max_steps=3"]), run
    )
    assert (again.step, again.resumed_from) == (3, 2)


def test_missing_inputs_are_named() -> None:
    with pytest.raises(ConfigError, match="--checkpoint"):
        frame_person(PersonalizeConfig(source=PHOTO))
    with pytest.raises(ConfigError, match="--source"):
        frame_person(PersonalizeConfig(checkpoint=RUN))
