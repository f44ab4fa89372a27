"""Tests of flow evaluation: metrics and baselines on hand-made pairs, and ``evaluate-flow``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from posetransfer.cli import main
from posetransfer.conventions import Visibility
from posetransfer.data.datasets import PairSample
from posetransfer.data.formats import read_pairs_csv
from posetransfer.models.flow_regressor import FlowPrediction
from posetransfer.train.flow_eval import evaluate_flow, evaluate_flow_run, format_flow_table

from .flow_fixtures import make_dataset, write_config

V, I, B = int(Visibility.VISIBLE), int(Visibility.INVISIBLE), int(Visibility.BACKGROUND)
REQUIRED = {"epe_fg", "epe_fg_zero_flow", "vis_accuracy", "vis_accuracy_majority", "num_pairs"}


class _Echo(nn.Module):
    """Predicts what the target pose map carries: flow in channels 0-1, visibility code in 2."""

    def forward(self, pose_src: torch.Tensor, pose_tgt: torch.Tensor) -> FlowPrediction:
        flow = pose_tgt[:, :2]
        logits = nn.functional.one_hot(pose_tgt[:, 2].long(), 3).permute(0, 3, 1, 2).float()
        return FlowPrediction([flow, flow], [logits, logits])


def _sample(flow_gt, vis_gt, flow_pred, vis_pred) -> PairSample:
    vis_gt, vis_pred = torch.tensor(vis_gt), torch.tensor(vis_pred)
    h, w = vis_gt.shape
    tgt = torch.cat([torch.tensor(flow_pred, dtype=torch.float32), vis_pred[None].float()])
    zeros = torch.zeros(18, 2)
    return PairSample(
        "s.png", "t.png", torch.zeros(3, h, w), torch.zeros(3, h, w), zeros,
        torch.zeros(18, dtype=torch.bool), zeros, torch.zeros(18, dtype=torch.bool),
        torch.zeros(3, h, w), tgt, torch.tensor(flow_gt, dtype=torch.float32), vis_gt,
    )  # fmt: skip


def _pairs() -> list[PairSample]:
    """Two 2x2 pairs whose metrics are worked out by hand in the test."""
    one = _sample(
        flow_gt=[[[3.0, 0.0], [0.0, 0.0]], [[4.0, 1.0], [0.0, 0.0]]],  # |F| = 5, 1 on the body
        vis_gt=[[V, I], [B, B]],
        flow_pred=[[[3.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]],  # errors 4 and 0
        vis_pred=[[V, V], [B, B]],
    )
    two = _sample(
        flow_gt=[[[0.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],  # |F| = 2 on its one pixel
        vis_gt=[[B, V], [B, B]],
        flow_pred=[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
        vis_pred=[[B, B], [B, B]],
    )
    return [one, two]


def test_metrics_and_baselines_by_hand() -> None:
    r = evaluate_flow(_Echo(), _pairs(), batch_size=1)
    assert r["epe_fg"] == pytest.approx((4 / 2 + 2) / 2)
    assert r["epe_visible"] == pytest.approx((4 + 2) / 2)
    assert r["epe_fg_zero_flow"] == pytest.approx((6 / 2 + 2) / 2)
    assert r["epe_visible_zero_flow"] == pytest.approx((5 + 2) / 2)
    assert r["vis_accuracy"] == pytest.approx((3 / 4 + 3 / 4) / 2)
    # Background has 5 of 8 pixels: the majority guess scores 2/4 and 3/4.
    assert r["majority_class"] == "BACKGROUND"
    assert r["vis_accuracy_majority"] == pytest.approx((2 / 4 + 3 / 4) / 2)
    # IoU over all pixels: visible 1 / 3, invisible 0 / 1, background 5 / 6.
    assert r["iou_visible"] == pytest.approx(1 / 3)
    assert r["iou_invisible"] == 0.0
    assert r["iou_background"] == pytest.approx(5 / 6)
    assert r["miou"] == pytest.approx((1 / 3 + 5 / 6) / 3)
    assert r["iou_background_majority"] == pytest.approx(5 / 8) and r["iou_visible_majority"] == 0
    assert r["num_pairs"] == 2 and r["num_pairs_no_body"] == 0
    assert r == evaluate_flow(_Echo(), _pairs(), batch_size=2)  # batching changes nothing
    table = format_flow_table(r)
    assert "zero flow" in table and "majority class" in table and "2 pairs" in table


def test_a_zero_flow_model_scores_the_zero_flow_baseline() -> None:
    pairs = _pairs()
    for p in pairs:
        p.target_pose_map[:2] = 0.0
        p.target_pose_map[2] = B
    r = evaluate_flow(_Echo(), pairs)
    assert r["epe_fg"] == r["epe_fg_zero_flow"] and r["epe_visible"] == r["epe_visible_zero_flow"]
    assert r["vis_accuracy"] == r["vis_accuracy_majority"]
    assert r["miou"] == r["miou_majority"]


def test_pairs_without_body_are_counted_and_left_out() -> None:
    empty = _sample(
        flow_gt=[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], vis_gt=[[B, B], [B, B]],
        flow_pred=[[[9.0, 9.0], [9.0, 9.0]], [[9.0, 9.0], [9.0, 9.0]]], vis_pred=[[B, B], [B, B]],
    )  # fmt: skip
    with_empty = evaluate_flow(_Echo(), [*_pairs(), empty])
    plain = evaluate_flow(_Echo(), _pairs())
    assert with_empty["num_pairs"] == 3 and with_empty["num_pairs_no_body"] == 1
    assert with_empty["epe_fg"] == plain["epe_fg"]
    assert with_empty["epe_fg_zero_flow"] == plain["epe_fg_zero_flow"]
    only_empty = evaluate_flow(_Echo(), [empty])
    assert math.isnan(only_empty["epe_fg"]) and only_empty["vis_accuracy"] == 1.0


def test_empty_dataset_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty set of pairs"):
        evaluate_flow(_Echo(), [])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, body_model) -> tuple[Path, Path]:
    """The tiny synthetic dataset and a 2-step run on it."""
    root = tmp_path_factory.mktemp("flow_eval")
    data = make_dataset(root / "synth", body_model)
    config = write_config(root / "tiny.yaml")
    args = ["train-flow", "--config", str(config), "--data", str(data), "--out", str(root / "run")]
    assert main([*args, "--max-steps", "2"]) == 0
    return data, root / "run"


def test_evaluate_flow_cli_writes_json_and_prints_a_table(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, run = trained
    out = tmp_path / "eval.json"
    args = ["evaluate-flow", "--checkpoint", str(run), "--data", str(data), "--out", str(out)]
    assert main([*args, "batch_size=4"]) == 0
    result = json.loads(out.read_text())
    assert set(result) >= REQUIRED
    assert result["num_pairs"] == len(read_pairs_csv(data / "fasion-resize-pairs-test.csv")) == 6
    assert result["split"] == "test" and result["which"] == "best" and result["step"] == 2
    assert result["epe_fg_zero_flow"] > 0 and 0 < result["vis_accuracy_majority"] < 1
    assert "epe_fg (px)" in capsys.readouterr().out


def test_evaluate_flow_run_options(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, run = trained
    flows = data / "flows"
    a = evaluate_flow_run(run, data, flows_dir=flows, split="train", which="latest", max_pairs=5)
    assert a["num_pairs"] == 5 and a["split"] == "train" and a["which"] == "latest"
    assert a["flows_dir"] == str(flows)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_flow_run(run, data, flows_dir=tmp_path / "missing")


def test_evaluate_flow_needs_a_run(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = trained
    args = ["evaluate-flow", "--checkpoint", str(tmp_path), "--data", str(data)]
    assert main([*args, "--out", str(tmp_path / "x.json")]) == 2
    assert "not a train-flow run folder" in capsys.readouterr().err
