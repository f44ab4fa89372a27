"""Tests of the pose-transfer stage and ``posetransfer train`` on tiny synthetic data."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from posetransfer.cli import main
from posetransfer.config import ConfigError, load_config
from posetransfer.data.datasets import PairDataset, collate_pairs
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train import StepContext
from posetransfer.train.distributed import DistInfo
from posetransfer.train.generator_config import FlowModelRecord, GeneratorStageConfig
from posetransfer.train.generator_stage import GeneratorStage, load_flow_run

from .generator_fixtures import Env, shared_env, train_cli, write_gen_config


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, body_model) -> Env:
    return shared_env(tmp_path_factory, body_model)


def _stats(run: Path, kind: str) -> list[dict]:
    records = map(json.loads, (run / "stats.jsonl").read_text().splitlines())
    return [r for r in records if r["kind"] == kind]


def _weights(folder: Path, module: str) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(folder / f"{module}.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_cli_runs_both_stages_and_resumes_exactly(env: Env, tmp_path: Path) -> None:
    first, second = env.summaries
    assert (first["step"], first["resumed_from"]) == (2, None)
    assert (second["step"], second["resumed_from"]) == (4, 2)
    train = _stats(env.run, "train")
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    # Steps 1-2 train the generator against D; steps 3-4 the refiner against a fresh D.
    assert [r["losses"]["stage"] for r in train] == [0.0, 0.0, 1.0, 1.0]
    assert {"grad_norm/generator", "grad_norm/discriminator"} <= set(train[0]["losses"])
    assert {"grad_norm/pixel_warp", "grad_norm/discriminator_pw"} <= set(train[3]["losses"])
    assert "grad_norm/generator" not in train[3]["losses"]
    val = _stats(env.run, "val")
    assert [r["step"] for r in val] == [2, 4]
    assert "ssim_coarse" not in val[0]["metrics"]  # the refiner had not trained yet
    assert {"ssim", "l1", "ssim_coarse", "l1_coarse"} == set(val[1]["metrics"])
    # best/ is the best model with pixel warping, whatever the coarse model scored.
    assert second["best_ssim"] == val[1]["metrics"]["ssim"]
    best = json.loads((env.run / "checkpoints" / "best" / "meta.json").read_text())
    assert best["step"] == 4 and [r["best"] for r in val] == [True, True]

    saved = load_config(GeneratorStageConfig, env.run / "config.yaml")
    assert saved.generator.image_size == (64, 48) and saved.train.val_metric == "ssim"
    record = load_config(FlowModelRecord, env.run / "flow_model.yaml")
    assert record.model.num_levels == 2 and record.pose_map == PoseMapConfig(radius=3.0)
    ckpt = env.run / "checkpoints" / "ckpt-000004"
    modules = {p.stem for p in ckpt.glob("*.safetensors")}
    assert modules == {"generator", "pixel_warp", "flow_regressor", "discriminator",
                       "discriminator_pw"}  # fmt: skip
    assert (env.run / "samples" / "step-000004.png").is_file()
    # The flow regressor stayed frozen: the weights of the flow run, bit for bit.
    flow_best = env.flow_run / "checkpoints" / "best"
    assert _same(_weights(ckpt, "flow_regressor"), _weights(flow_best, "flow_regressor"))

    # 2 steps + resume to 4 == 4 steps in one go.
    code, summary = train_cli(
        env.data, env.flow_run, env.config, tmp_path / "one", "--max-steps", "4"
    )
    assert code == 0 and summary is not None and summary["resumed_from"] is None
    straight = tmp_path / "one" / "checkpoints" / "ckpt-000004"
    for module in ("generator", "pixel_warp", "discriminator", "discriminator_pw"):
        assert _same(_weights(ckpt, module), _weights(straight, module)), module


def _stage(env: Env, **changes: dict) -> tuple[GeneratorStage, StepContext, object]:
    cfg = load_config(GeneratorStageConfig, write_gen_config(Path(env.config).with_name("x.yaml")))
    for section, values in changes.items():
        cfg = dataclasses.replace(
            cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)}
        )
    flow_net, pose_map = load_flow_run(env.flow_run, "best", "cpu")
    stage = GeneratorStage(cfg, torch.device("cpu"), flow_net, pose_map, vgg=None)
    data = PairDataset(env.data, "train", pose_map=cfg.data.pose_map)
    batch = collate_pairs([data[i] for i in range(3)])
    return (
        stage,
        StepContext(torch.device("cpu"), "off", DistInfo(), stage.optimizers(), None),
        batch,
    )


def _record_updates(ctx: StepContext, stage: GeneratorStage) -> list[tuple[str, bool]]:
    """Wrap ``ctx.update`` to log (optimizer, whether the discriminator of the phase's stage is
    trainable at that moment)."""
    calls: list[tuple[str, bool]] = []
    update = ctx.update
    judge = {"generator": "discriminator", "discriminator": "discriminator",
             "pixel_warp": "discriminator_pw", "discriminator_pw": "discriminator_pw"}  # fmt: skip

    def spy(name: str, loss: torch.Tensor) -> torch.Tensor:
        disc = stage.discriminators[judge[name]]
        calls.append((name, all(p.requires_grad for p in disc.parameters())))
        return update(name, loss)

    ctx.update = spy  # type: ignore[method-assign]
    return calls


def _snapshot(stage: GeneratorStage) -> dict[str, dict[str, torch.Tensor]]:
    return {
        n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in stage.modules().items()
    }


def _changed(before: dict, stage: GeneratorStage) -> set[str]:
    after = _snapshot(stage)
    return {name for name in before if not _same(before[name], after[name])}


def test_phases_update_their_modules_with_the_discriminator_frozen_in_g_phases(env: Env) -> None:
    stage, ctx, batch = _stage(env)
    calls = _record_updates(ctx, stage)
    before = _snapshot(stage)
    ctx.step = 0  # coarse stage
    stage.train_step(batch, ctx)
    assert calls == [("discriminator", True), ("generator", False)]
    assert _changed(before, stage) == {"generator", "discriminator"}  # flow regressor untouched
    assert all(p.requires_grad for p in stage.discriminators["discriminator"].parameters())

    calls.clear()
    before = _snapshot(stage)
    ctx.step = 2  # schedule.coarse_steps = 2: pixel warping, generator frozen (BN stats too)
    stage.train_step(batch, ctx)
    assert calls == [("discriminator_pw", True), ("pixel_warp", False)]
    assert _changed(before, stage) == {"pixel_warp", "discriminator_pw"}


def test_channels_last_training_matches_contiguous(env: Env) -> None:
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    logs: dict[str, list[dict]] = {}
    grads: dict[str, list[dict[str, torch.Tensor]]] = {}
    for name, fmt in formats.items():
        torch.manual_seed(0)
        stage, ctx, batch = _stage(env, train={"memory_format": name})
        for module in stage.modules().values():
            kernels = [p for p in module.parameters() if p.ndim == 4]
            assert kernels and all(p.is_contiguous(memory_format=fmt) for p in kernels)
        logs[name], grads[name] = [], []
        for step in (0, 2):  # coarse stage (G + D), then pixel warping (refiner + its D)
            ctx.step = step
            logs[name].append({k: float(v) for k, v in stage.train_step(batch, ctx).items()})
            grads[name].append(
                {  # what the step's updates used (kept after optimizer.step)
                    m: torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
                    for m, net in stage.modules().items()
                    if any(p.grad is not None for p in net.parameters())
                }
            )
            for net in stage.modules().values():
                net.zero_grad(set_to_none=True)
    # Not bit-equal: channels_last convolutions sum in another order, and batch norm's
    # channels_last kernel accumulates its statistics in float32 (the contiguous one in float64):
    # about 1e-4 relative on these losses.
    for cl, contiguous in zip(logs["channels_last"], logs["contiguous"], strict=True):
        assert cl.keys() == contiguous.keys()
        assert cl == pytest.approx(contiguous, rel=1e-3, abs=1e-6)
    for cl, contiguous in zip(grads["channels_last"], grads["contiguous"], strict=True):
        assert cl.keys() == contiguous.keys() and len(cl) == 2  # a generator and its critic
        for module, g in cl.items():  # float noise <= 1 % here; a wrong gradient far more
            rel = (g - contiguous[module]).norm() / contiguous[module].norm()
            assert rel < 5e-2, (module, float(rel))


def test_stage_trains_channels_last_on_cpu_by_default(env: Env) -> None:
    stage, _, _ = _stage(env)
    assert stage.memory_format == torch.channels_last
    head = [p for p in stage.generator.parameters() if p.ndim == 4][-1]
    assert head.is_contiguous(memory_format=torch.channels_last) and not head.is_contiguous()


def test_gan_off_before_its_start_and_flow_finetuning(env: Env) -> None:
    stage, ctx, batch = _stage(env, loss={"gan_start_step": 5}, flow={"finetune": True})
    calls = _record_updates(ctx, stage)
    before = _snapshot(stage)
    ctx.step = 0
    logs = stage.train_step(batch, ctx)
    assert calls == [("generator", False)] and "gan" not in logs and "d_real" not in logs
    assert _changed(before, stage) == {"generator", "flow_regressor"}
    assert stage.flow_net is not None and stage.flow_net.training  # BN in train mode too

    before = _snapshot(stage)
    ctx.step = 2  # pixel warping: the fine-tuned regressor is frozen again
    stage.train_step(batch, ctx)
    assert _changed(before, stage) == {"pixel_warp"}  # GAN off: the warm-up restarts


def test_ablations_are_overrides(env: Env, tmp_path: Path, capsys) -> None:
    flags = ["generator.use_flow=false", "generator.visibility=none", "pixel_warp.enabled=false"]
    assert (
        main(["train", "--config", str(env.config), "--dry-run", "generator.visibility=none"]) == 0
    )
    assert "visibility: none" in capsys.readouterr().out
    # w/o flow and w/o pixel warping: no flow run needed; VGG with random weights (test flag).
    vgg = ["loss.perceptual_weight=1", "vgg.random_weights=true"]
    code, summary = train_cli(env.data, None, env.config, tmp_path / "noflow", "--max-steps", "1",
                              *flags, *vgg)  # fmt: skip
    assert code == 0 and summary is not None
    assert (
        "vgg_relu5_1"
        in json.loads((tmp_path / "noflow" / "stats.jsonl").read_text().split("\n")[0])["losses"]
    )
    ckpt = tmp_path / "noflow" / "checkpoints" / "ckpt-000001"
    assert {p.stem for p in ckpt.glob("*.safetensors")} == {"generator", "discriminator"}
    # An inconsistent ablation is a config error naming the fields.
    code, _ = train_cli(
        env.data, env.flow_run, env.config, tmp_path / "bad", "generator.dual_encoder=false"
    )
    assert code == 2 and "dual_encoder=False" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "flow", "message"),
    [
        (["generator.image_size=[128,96]"], True, "are 64x48 after protocol 'native'"),
        (["loss.perceptual_weight=1", "loss.vgg_weights=/nowhere/vgg19.pth"], True, "vgg19.pth"),
        ([], False, "flow.checkpoint is not set"),
        (
            ["data.pose_map.limbs=true"],
            True,
            "generator.pose_channels=18 but data.pose_map gives 37",
        ),
    ],
)
def test_bad_input_fails_before_training(
    env: Env, tmp_path: Path, capsys, extra, flow, message
) -> None:
    run = tmp_path / "run"
    code, _ = train_cli(env.data, env.flow_run if flow else None, env.config, run, *extra)
    assert code == 2 and message in capsys.readouterr().err
    assert not (run / "checkpoints").exists()


def test_resuming_with_another_model_config_is_a_clear_error(
    env: Env, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(env.run, run)
    code, _ = train_cli(env.data, env.flow_run, env.config, run, "--max-steps", "6",
                        "generator.channels=[4,8,16]")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "generator.safetensors" in err and "shape mismatches" in err
    with pytest.raises(ConfigError, match=r"schedule\.coarse_steps=0"):
        GeneratorStageConfig(
            schedule=dataclasses.replace(GeneratorStageConfig().schedule, coarse_steps=0)
        )
    assert main(["train", "--config", str(env.config)]) == 2  # no --out


def test_pixel_warping_only_run_starts_from_a_trained_generator(env: Env, tmp_path: Path) -> None:
    run = tmp_path / "pw_only"
    init_flags = [f"schedule.init_generator={env.run}", "schedule.coarse_steps=0"]
    code, summary = train_cli(
        env.data, env.flow_run, env.config, run, "--max-steps", "2", *init_flags
    )
    assert code == 0 and summary is not None
    assert [r["losses"]["stage"] for r in _stats(run, "train")] == [1.0, 1.0]
    # The generator is the initial run's best one, untouched by the refiner's steps.
    init = _weights(env.run / "checkpoints" / "best", "generator")
    assert _same(_weights(run / "checkpoints" / "ckpt-000002", "generator"), init)
