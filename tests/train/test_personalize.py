"""Personalisation on the shared loop, with the tiny committed 32x32 run and a toy person."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from posetransfer.config import ConfigError, apply_overrides, load_config
from posetransfer.data.datasets import PairDataset
from posetransfer.eval.masks import pose_mask
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.io import tensor_to_uint8
from posetransfer.pose.keypoints import Pose
from posetransfer.train.generator_config import GeneratorStageConfig
from posetransfer.train.personalize import load_person, personalize, personalized_stage_config
from posetransfer.train.personalize_config import PersonalizeConfig
from posetransfer.train.self_pairs import PersonCrop

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_run"
INIT = FIXTURE / "gen_run"
#: Tiny loop settings; no body self-pairs (the body model is tested in test_body_pairs.py).
TINY = [
    f"checkpoint={INIT}", "body.count=0", "train.batch_size=2", "train.progress=false",
    "train.device=cpu", "train.log_every=1", "pairs.per_epoch=4", "pairs.val_pairs=2",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def _person() -> PersonCrop:
    sample = PairDataset(FIXTURE / "data", "test")[0]
    pose = Pose(sample.source_xy.numpy(), sample.source_valid.numpy())
    mask = pose_mask(pose, (32, 32), radius=3.0).astype(np.float32)
    return PersonCrop(tensor_to_uint8(sample.source_image), pose, mask,
                      np.full((32, 32, 3), 200, np.uint8))  # fmt: skip


def _cfg(*extra: str) -> PersonalizeConfig:
    return apply_overrides(PersonalizeConfig(), [*TINY, *extra])


def _weights(folder: Path, module: str) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(folder / f"{module}.safetensors"))


def test_personalize_writes_a_run_that_infer_takes_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "me"
    result = personalize(_cfg("train.max_steps=2"), _person(), run)
    assert (result.step, result.resumed_from) == (2, None)
    for name in ("config.yaml", "flow_model.yaml", "personalize.yaml", "person.npz", "person.png"):
        assert (run / name).is_file(), name
    cfg = load_config(GeneratorStageConfig, run / "config.yaml")
    assert cfg.init.run == INIT and cfg.init.refiner_trained
    assert cfg.flow.source == "data" and cfg.schedule.coarse_steps == 0
    assert cfg.loss.gan_weight == 0 and cfg.generator.image_size == (32, 32)
    # The generator and the refiner trained; the regressor and discriminators are the init's.
    best, init = run / "checkpoints" / "best", INIT / "checkpoints" / "best"
    assert json.loads((best / "meta.json").read_text())["step"] == 2
    for module in ("flow_regressor", "discriminator", "discriminator_pw"):
        assert all(torch.equal(v, _weights(init, module)[k])
                   for k, v in _weights(best, module).items()), module  # fmt: skip
    for module in ("generator", "pixel_warp"):
        mine, theirs = _weights(best, module), _weights(init, module)
        assert any(not torch.equal(v, theirs[k]) for k, v in mine.items()), module
    # infer takes it, with the refiner.
    pipeline = PoseTransferPipeline.from_run(run)
    assert pipeline.nets.refiner is not None and pipeline.image_size == (32, 32)
    person = load_person(run)
    assert np.array_equal(person.image, _person().image)
    # Rerunning resumes from the kept person: no photo, no init run needed.
    again = personalize(_cfg("train.max_steps=3", "checkpoint=/nonexistent"), None, run)
    assert (again.step, again.resumed_from) == (3, 2)


def test_fine_tuning_lowers_the_loss_on_held_out_self_pairs(tmp_path: Path) -> None:
    common = ("train.lr=0.003", "pairs.val_pairs=4")
    short = personalize(_cfg("train.max_steps=1", *common), _person(), tmp_path / "a")
    long = personalize(_cfg("train.max_steps=25", *common), _person(), tmp_path / "b")
    assert long.val_metrics["l1"] < 0.8 * short.val_metrics["l1"]


def test_freeze_norm_keeps_the_batch_statistics(tmp_path: Path) -> None:
    init = _weights(INIT / "checkpoints" / "best", "generator")
    stats = [k for k in init if k.endswith("running_mean")]
    assert stats
    for freeze, run in ((True, tmp_path / "frozen"), (False, tmp_path / "free")):
        personalize(_cfg("train.max_steps=2", f"freeze_norm={freeze}"), _person(), run)
        mine = _weights(run / "checkpoints" / "best", "generator")
        same = all(torch.equal(mine[k], init[k]) for k in stats)
        assert same is freeze


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--checkpoint"):
        personalized_stage_config(PersonalizeConfig())
    small = _person()
    wrong = PersonCrop(np.zeros((16, 16, 3), np.uint8), small.pose, np.zeros((16, 16), np.float32),
                       np.zeros((16, 16, 3), np.uint8))  # fmt: skip
    with pytest.raises(ValueError, match=r"16x16, but the run takes 32x32"):
        personalize(_cfg(), wrong, tmp_path / "x")
    with pytest.raises(FileNotFoundError, match=r"person\.npz"):
        personalize(_cfg(), None, tmp_path / "y")
