"""Fine-tuning from another run (``train --init RUN``) on the tiny committed 32x32 run."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from posetransfer.cli import main
from posetransfer.config import ConfigError, apply_overrides, load_config
from posetransfer.data.datasets import PairDataset, collate_pairs
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.train.checkpoint import load_state
from posetransfer.train.generator_config import GeneratorStageConfig, InitConfig
from posetransfer.train.generator_init import adopt_init, init_checkpoint, load_init_weights
from posetransfer.train.generator_stage import GeneratorStage

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_run"
INIT = FIXTURE / "gen_run"
DATA = FIXTURE / "data"
PRESET = Path(__file__).resolve().parents[2] / "configs" / "generator" / "finetune-cpu.yaml"
#: Loop settings small enough for a test (the rest comes from the defaults or the preset).
TINY = [
    "train.batch_size=2", "train.num_workers=0", "train.device=cpu", "train.progress=false",
    "train.tensorboard=false", "loss.perceptual_weight=0", "train.log_every=1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def _train(*args: str) -> tuple[int, dict | None]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["train", *args, "--threads", "1", *TINY])
    lines = out.getvalue().strip().splitlines()
    return code, json.loads(lines[-1]) if lines else None


def _weights(folder: Path, module: str) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(folder / f"{module}.safetensors"))


def _with_init(cfg: GeneratorStageConfig, run: Path, **init) -> GeneratorStageConfig:
    return dataclasses.replace(cfg, init=InitConfig(run=run, **init))


def test_adopt_init_takes_the_architecture_and_records_the_checkpoint() -> None:
    theirs = load_config(GeneratorStageConfig, INIT / "config.yaml")
    cfg = adopt_init(_with_init(GeneratorStageConfig(), INIT))
    assert cfg.generator == theirs.generator and cfg.pixel_warp == theirs.pixel_warp
    assert cfg.discriminator == theirs.discriminator
    assert cfg.data.pose_map == theirs.data.pose_map
    assert cfg.init == InitConfig(run=INIT, which="best", step=4, refiner_trained=True)
    assert cfg.train == GeneratorStageConfig().train  # only the architecture is taken
    assert adopt_init(cfg) == cfg  # idempotent
    # A checkpoint folder works too, and "latest" picks ckpt-000004.
    latest = adopt_init(_with_init(GeneratorStageConfig(), INIT, which="latest"))
    assert latest.init.which == "latest" and latest.init.step == 4


def test_adopt_init_names_every_mismatched_key() -> None:
    cfg = apply_overrides(
        GeneratorStageConfig(), ["generator.norm=instance", "discriminator.num_layers=4"]
    )
    with pytest.raises(ConfigError) as info:
        adopt_init(_with_init(cfg, INIT))
    message = str(info.value)
    assert "2 key(s)" in message
    assert "generator.norm='instance' (init run: 'batch')" in message
    assert "discriminator.num_layers=4 (init run: 2)" in message
    # The init run's own values, and switching the refiner off, are fine.
    ok = apply_overrides(GeneratorStageConfig(), ["generator.warp_levels=2"])
    assert adopt_init(_with_init(ok, INIT)).generator.channels == (4, 8, 8)
    off = apply_overrides(GeneratorStageConfig(), ["pixel_warp.enabled=false"])
    assert adopt_init(_with_init(off, INIT)).pixel_warp.enabled is False


def test_adopt_init_errors_name_the_missing_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="init run not found"):
        adopt_init(_with_init(GeneratorStageConfig(), tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.yaml: missing"):
        adopt_init(_with_init(GeneratorStageConfig(), tmp_path / "empty"))


def test_init_weights_are_the_init_runs_bit_for_bit() -> None:
    cfg = adopt_init(_with_init(GeneratorStageConfig(), INIT))
    stage = GeneratorStage(cfg, torch.device("cpu"), None, None, None)
    ckpt = init_checkpoint(INIT, "auto")
    loaded = load_init_weights(ckpt, stage.modules())
    assert loaded == ["discriminator", "discriminator_pw", "generator", "pixel_warp"]
    for name in loaded:
        saved = _weights(ckpt, name)
        state = stage.modules()[name].state_dict()
        assert all(torch.equal(state[k], v) for k, v in saved.items()), name


def test_train_init_fine_tunes_with_fresh_optimisers_and_resumes_without_the_init_run(
    tmp_path: Path,
) -> None:
    init = tmp_path / "init"
    shutil.copytree(INIT, init)
    out = tmp_path / "ft"
    common = ["--data", str(DATA), "--out", str(out), "schedule.coarse_steps=1"]
    code, summary = _train("--init", str(init), *common, "--max-steps", "2")
    assert code == 0 and summary is not None
    assert (summary["step"], summary["resumed_from"]) == (2, None)
    saved = load_config(GeneratorStageConfig, out / "config.yaml")
    assert saved.init == InitConfig(run=init, which="best", step=4, refiner_trained=True)
    assert saved.generator.channels == (4, 8, 8)
    # Fresh step counter and optimisers: Adam has taken 1 generator and 1 refiner step.
    state = load_state(out / "checkpoints" / "ckpt-000002")
    assert state["progress"]["step"] == 2
    for name in ("generator", "pixel_warp"):
        steps = {float(s["step"]) for s in state["optimizers"][name]["state"].values()}
        assert steps == {1.0}, name
    # The frozen regressor is the init run's; the refiner did not train in step 1 (coarse).
    ckpt = out / "checkpoints" / "ckpt-000002"
    assert _weights(ckpt, "flow_regressor").keys() == _weights(init / "checkpoints" / "best",
                                                               "flow_regressor").keys()  # fmt: skip
    for key, value in _weights(init / "checkpoints" / "best", "flow_regressor").items():
        assert torch.equal(_weights(ckpt, "flow_regressor")[key], value)
    # Resuming needs neither the init run nor its regressor: it continues from step 2.
    shutil.rmtree(init)
    code, summary = _train("--config", str(out / "config.yaml"), *common, "--max-steps", "3")
    assert code == 0 and summary is not None
    assert (summary["step"], summary["resumed_from"]) == (3, 2)


def test_a_coarse_stage_checkpoint_of_a_fine_tune_keeps_the_trained_refiner(
    tmp_path: Path,
) -> None:
    """The refiner came trained from the init run, so inference applies it from step 1."""
    out = tmp_path / "ft"
    code, _ = _train("--init", str(INIT), "--data", str(DATA), "--out", str(out),
                     "--max-steps", "1", "schedule.coarse_steps=5")  # fmt: skip
    assert code == 0
    pipeline = PoseTransferPipeline.from_run(out)
    assert pipeline.nets.refiner is not None
    assert pipeline.cfg.refiner_trained_after(1) and not pipeline.cfg.refines_at(0)


def test_the_finetune_preset_trains_on_the_datasets_flows(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    code, summary = _train("--config", str(PRESET), "--init", str(INIT), "--data", str(DATA),
                           "--out", str(out), "--max-steps", "2",
                           "schedule.coarse_steps=1")  # fmt: skip
    assert code == 0 and summary is not None
    cfg = load_config(GeneratorStageConfig, out / "config.yaml")
    assert cfg.flow.source == "data" and cfg.loss.gan_weight == 0.0
    assert "loss_d" not in summary["train_losses"]  # no GAN
    # With flow.source=data the stage conditions on the batch's own flow.
    stage = GeneratorStage(cfg, torch.device("cpu"), PoseTransferPipeline.from_run(out).nets
                           .flow_net, cfg.data.pose_map, None)  # fmt: skip
    dataset = PairDataset(DATA, "train", pose_map=cfg.data.pose_map, require_flow=True)
    batch = collate_pairs([dataset[0], dataset[1]])
    flow, vis = stage.condition(batch)
    assert batch.flow is not None and flow is not None and torch.equal(flow, batch.flow)
    assert vis is batch.visibility


def test_flow_source_data_refuses_a_dataset_without_flows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA, data, ignore=shutil.ignore_patterns("flows"))
    code, _ = _train("--init", str(INIT), "--data", str(data), "--out", str(tmp_path / "ft"),
                     "--max-steps", "1", "flow.source=data")  # fmt: skip
    assert code == 2


def test_init_and_init_generator_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match=r"set only init\.run"):
        apply_overrides(
            GeneratorStageConfig(), [f"init.run={INIT}", f"schedule.init_generator={INIT}"]
        )
    with pytest.raises(ConfigError, match=r"flow\.source"):
        apply_overrides(GeneratorStageConfig(), ["flow.source=data", "flow.finetune=true"])
