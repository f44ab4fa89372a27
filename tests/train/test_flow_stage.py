"""Tests of the flow-regression stage and the ``train-flow`` command on a tiny synthetic dataset."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch
import yaml

from posetransfer.cli import main
from posetransfer.config import ConfigError, from_dict, load_config
from posetransfer.data.datasets import collate_pairs
from posetransfer.data.formats import read_pairs_csv
from posetransfer.data.splits import identity_of
from posetransfer.models.flow_regressor import FlowRegressorConfig
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train import NonFiniteLossError, StepContext, eval_mode, run_training
from posetransfer.train.distributed import DistInfo
from posetransfer.train.flow_stage import (
    FlowDataConfig,
    FlowStage,
    FlowStageConfig,
    load_flow_regressor,
    make_flow_datasets,
    resolve_flows_dir,
    train_flow,
)

from .flow_fixtures import TINY, make_dataset, write_config

PREFIX = "fasion-resize-"


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, body_model) -> Path:
    return make_dataset(tmp_path_factory.mktemp("flow") / "synth", body_model)


@pytest.fixture(scope="module")
def tiny_cfg() -> FlowStageConfig:
    return from_dict(FlowStageConfig, TINY)


def _on(cfg: FlowStageConfig, root: Path, flows: Path | None = None) -> FlowStageConfig:
    """``cfg`` with ``data.root`` (and ``data.flows_dir``) set, as ``--data``/``--flows`` do."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=root, flows_dir=flows))


def _stats(run: Path, kind: str) -> list[dict]:
    lines = (run / "stats.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _train_cli(config: Path, data: Path, run: Path, *extra: str) -> int:
    args = ["train-flow", "--config", str(config), "--data", str(data), "--out", str(run)]
    return main([*args, *extra])


def test_train_flow_cli_writes_a_run_and_resumes(
    synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, run = write_config(tmp_path / "tiny.yaml"), tmp_path / "run"
    assert _train_cli(config, synth, run, "--max-steps", "4", "train.seed=3") == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["step"] == 4 and first["resumed_from"] is None
    saved = load_config(FlowStageConfig, run / "config.yaml")
    assert saved.train.max_steps == 4 and saved.train.seed == 3
    assert saved.train.betas == (0.9, 0.999) and saved.train.weight_decay == 4e-4  # flow defaults
    assert saved.model.num_levels == 2 and saved.data.pose_map.radius == 3.0
    ckpts = run / "checkpoints"
    assert {p.name for p in ckpts.iterdir()} >= {"ckpt-000002", "ckpt-000004", "best", "latest"}
    assert (ckpts / "ckpt-000004" / "flow_regressor.safetensors").is_file()
    assert (run / "samples" / "step-000004.png").is_file()
    assert [r["step"] for r in _stats(run, "train")] == [1, 2, 3, 4]
    assert [r["step"] for r in _stats(run, "val")] == [2, 4]
    assert first["best_epe_fg"] == min(r["metrics"]["epe_fg"] for r in _stats(run, "val"))

    # Validation: the held-out person's pairs, none of the test split, none used for training.
    record = json.loads((run / "val_split.json").read_text())
    assert record["val_pairs"] == 6 and record["train_pairs"] == 12 and record["groups"] == 3
    test_people = {identity_of(s) for s, _ in read_pairs_csv(synth / f"{PREFIX}pairs-test.csv")}
    assert not set(record["val_groups"]) & test_people

    # A rerun with more steps resumes where the first stopped.
    assert _train_cli(config, synth, run, "--max-steps", "6", "train.seed=3") == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["step"] == 6 and second["resumed_from"] == 4
    assert [r["step"] for r in _stats(run, "train")] == [1, 2, 3, 4, 5, 6]
    assert (run / "config.until-step-000004.yaml").is_file()  # max_steps changed: kept aside


def test_dry_run_prints_the_resolved_config_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    assert main(["train-flow", "--config", str(config), "--dry-run", "train.lr=0.005"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["lr"] == 0.005 and printed["train"]["val_metric"] == "epe_fg"
    assert printed["model"]["num_levels"] == 2
    assert list(tmp_path.iterdir()) == [config]


def test_required_options_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-flow", "--data", str(tmp_path)]) == 2
    assert "required: --out" in capsys.readouterr().err


def test_shipped_configs_load_and_keep_the_original_optimiser() -> None:
    for path in sorted(Path("configs/flow").glob("*.yaml")):
        cfg = load_config(FlowStageConfig, path)
        assert (cfg.train.betas, cfg.train.weight_decay) == ((0.9, 0.999), 4e-4), path
        assert cfg.train.lr == (1e-3 if path.stem == "synthetic" else 1e-4), path  # 10-minute run
        assert cfg.train.lr_schedule == "step" and cfg.train.lr_step_gamma == 0.5, path
        assert (cfg.train.val_metric, cfg.train.val_mode) == ("epe_fg", "min"), path


def test_missing_flow_file_is_an_error_naming_it(
    synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(synth / "flows", flows)
    victim = sorted(flows.iterdir())[3]
    victim.unlink()
    config = write_config(tmp_path / "tiny.yaml")
    code = _train_cli(config, synth, tmp_path / "run", "--flows", str(flows), "--max-steps", "1")
    err = capsys.readouterr().err
    assert code == 2 and victim.name in err and "no flow file" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_flows_folder_resolution(tmp_path: Path) -> None:
    out = tmp_path / "synth-flow-out"
    (out / "flows").mkdir(parents=True)
    (out / "fits").mkdir()
    assert resolve_flows_dir(out) == out / "flows"
    assert resolve_flows_dir(out / "flows") == out / "flows"
    (out / "a_b.npz").write_bytes(b"")
    assert resolve_flows_dir(out) == out  # a folder holding flow files is the flows folder
    assert resolve_flows_dir(None) is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_flows_dir(tmp_path / "nope")


def test_config_checks_channels_and_image_size(
    synth: Path, tmp_path: Path, tiny_cfg: FlowStageConfig
) -> None:
    with pytest.raises(ConfigError, match=r"model.in_channels=36 .* set model.in_channels=74"):
        FlowStageConfig(data=FlowDataConfig(pose_map=PoseMapConfig(limbs=True)))
    # The model pads to its stride (64 here); the loss's coarsest level (stride 32) must fit.
    deep = dataclasses.replace(tiny_cfg, model=FlowRegressorConfig(base_channels=4, num_levels=5))
    with pytest.raises(ConfigError, match=r"is 64x48 .* not a multiple of 32 = 2\*\*model"):
        train_flow(_on(deep, synth), tmp_path / "run")


def _one_batch(synth: Path, cfg: FlowStageConfig):
    train_set, _, _ = make_flow_datasets(_on(cfg, synth))
    return collate_pairs([train_set[i] for i in range(4)])


def _context(stage: FlowStage) -> StepContext:
    return StepContext(torch.device("cpu"), "off", DistInfo(), stage.optimizers(), None)


def test_loss_falls_on_a_fixed_batch(synth: Path, tiny_cfg: FlowStageConfig) -> None:
    torch.manual_seed(0)
    batch = _one_batch(synth, tiny_cfg)
    stage = FlowStage(tiny_cfg, torch.device("cpu"))
    ctx = _context(stage)
    losses = [float(stage.train_step(batch, ctx)["loss"]) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses
    assert set(stage.train_step(batch, ctx)) == {"loss", "epe_l0", "epe_l1", "epe_l2", "vis_ce"}


def test_channels_last_training_matches_contiguous(synth: Path, tiny_cfg: FlowStageConfig) -> None:
    batch = _one_batch(synth, tiny_cfg)
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    logs, grads = {}, {}
    for name, fmt in formats.items():
        torch.manual_seed(0)
        train = dataclasses.replace(tiny_cfg.train, memory_format=name)
        stage = FlowStage(dataclasses.replace(tiny_cfg, train=train), torch.device("cpu"))
        kernels = [p for p in stage.net.parameters() if p.ndim == 4]
        assert all(p.is_contiguous(memory_format=fmt) for p in kernels)
        ctx = _context(stage)
        logs[name] = [float(stage.train_step(batch, ctx)["loss"])]
        grads[name] = torch.cat([p.grad.flatten() for p in stage.net.parameters()])
        logs[name] += [float(stage.train_step(batch, ctx)["loss"]) for _ in range(2)]
    assert logs["channels_last"] == pytest.approx(logs["contiguous"], rel=1e-4)
    assert logs["contiguous"][2] < logs["contiguous"][0]  # it trains
    rel = (grads["channels_last"] - grads["contiguous"]).norm() / grads["contiguous"].norm()
    assert rel < 1e-3  # float noise: about 1e-5 here


def test_nan_in_a_batch_is_a_nonfinite_loss(synth: Path, tiny_cfg: FlowStageConfig) -> None:
    batch = _one_batch(synth, tiny_cfg)
    stage = FlowStage(tiny_cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in stage.net.parameters()]
    batch.flow[1, 0, 5, 5] = float("nan")
    with pytest.raises(NonFiniteLossError, match="flow_gt has 1 non-finite"):
        stage.train_step(batch, _context(stage))
    assert all(torch.equal(a, b) for a, b in zip(before, stage.net.parameters(), strict=True))


class _Poisoned(torch.utils.data.Dataset):
    """Sample ``bad`` of ``base`` gets a NaN in its target pose map."""

    def __init__(self, base, bad: int) -> None:
        self.base, self.bad = base, bad

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        sample = self.base[i]
        if i == self.bad:
            sample.target_pose_map[0, 0, 0] = float("nan")
        return sample


@pytest.mark.parametrize("skip", [False, True])
def test_nan_batches_raise_or_are_counted(
    synth: Path, tmp_path: Path, tiny_cfg: FlowStageConfig, skip: bool
) -> None:
    train = dataclasses.replace(tiny_cfg.train, max_steps=6, skip_bad_batches=skip, val_every=0)
    cfg = dataclasses.replace(tiny_cfg, train=train)
    train_set, _, _ = make_flow_datasets(_on(cfg, synth))
    poisoned = _Poisoned(train_set, bad=5)

    def run():
        return run_training(
            lambda device: FlowStage(cfg, device), poisoned, None, cfg.train, tmp_path,
            collate_fn=collate_pairs, resolved_config=cfg,
        )  # fmt: skip

    if not skip:
        with pytest.raises(NonFiniteLossError, match=r"step \d .*batch.target_pose_map"):
            run()
        return
    result = run()
    assert result.step == 6 and result.bad_batches == 2  # 12 pairs, batch 4: twice in 6 steps


def test_load_flow_regressor_returns_the_frozen_best_weights(
    synth: Path, tmp_path: Path, tiny_cfg: FlowStageConfig
) -> None:
    cfg = dataclasses.replace(tiny_cfg, train=dataclasses.replace(tiny_cfg.train, max_steps=4))
    cfg = _on(cfg, synth, synth / "flows")
    result = train_flow(cfg, tmp_path / "run")
    net, loaded = load_flow_regressor(tmp_path / "run")
    assert loaded == cfg
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    best = safetensors.torch.load_file(str(result.best_checkpoint / "flow_regressor.safetensors"))
    assert all(torch.equal(best[k], v) for k, v in net.state_dict().items())
    latest, _ = load_flow_regressor(tmp_path / "run", which="latest")
    final = result.stage.net.state_dict()
    assert all(torch.equal(final[k], v) for k, v in latest.state_dict().items())
    with pytest.raises(ConfigError, match="not a train-flow run folder"):
        load_flow_regressor(tmp_path)


def test_sample_grid_rows_follow_each_pair(synth: Path, tiny_cfg: FlowStageConfig) -> None:
    batch = _one_batch(synth, tiny_cfg)
    stage = FlowStage(tiny_cfg, torch.device("cpu"), sample_batch=batch)
    with eval_mode([stage.net]):
        tiles = stage.sample_images(_context(stage))
        pred_bg = stage.net(batch.source_pose_map, batch.target_pose_map).visibility == 2
    assert tiles.shape == (4 * 8, 3, 64, 48) and tiles.min() >= -1 and tiles.max() <= 1
    rows = tiles.reshape(4, 8, 3, 64, 48)
    assert torch.equal(rows[:, 0], batch.source_image) and torch.equal(
        rows[:, 1], batch.target_image
    )
    white = (rows == 1.0).all(dim=2)  # (pair, tile, H, W)
    gt_bg = batch.visibility == 2
    for i in range(4):
        assert white[i, 3][pred_bg[i]].all()  # predicted flow drawn on the predicted body only
        assert white[i, 6][gt_bg[i]].all() and white[i, 7][pred_bg[i]].all()  # warped sources
        assert not white[i, 2][~gt_bg[i]].all()  # the true flow shows on the body
