"""Tests of the regressor's scores against fitted-body flows on real pairs (a tiny fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posetransfer.conventions import Visibility
from posetransfer.data.flow_files import flow_filename, read_any_flow
from posetransfer.data.toy import make_toy_dataset
from posetransfer.experiments.real_flow import ALL, evaluate_real_flow, real_flow_pairs
from posetransfer.models.flow_regressor import FlowPrediction


class _Constant(nn.Module):
    """Predicts one flow vector everywhere and VISIBLE everywhere."""

    def __init__(self, dx: float, dy: float) -> None:
        super().__init__()
        self.flow = torch.tensor([dx, dy]).view(1, 2, 1, 1)

    def forward(self, pose_src: torch.Tensor, pose_tgt: torch.Tensor) -> FlowPrediction:
        b, _, h, w = pose_tgt.shape
        flow = self.flow.expand(b, 2, h, w)
        logits = torch.zeros(b, 3, h, w)
        logits[:, int(Visibility.VISIBLE)] = 1.0
        return FlowPrediction([flow], [logits])


def _expected(flows: list[Path], dx: float, dy: float) -> tuple[float, float, float]:
    """Per-pair means over the body, then over pairs: EPE of (dx, dy), of zero, VISIBLE share."""
    epe, zero, visible = [], [], []
    for path in flows:
        flow, vis = read_any_flow(path)
        body = vis != int(Visibility.BACKGROUND)
        err = np.hypot(flow[..., 0] - dx, flow[..., 1] - dy)
        epe.append(err[body].mean())
        zero.append(np.hypot(flow[..., 0], flow[..., 1])[body].mean())
        visible.append((vis == int(Visibility.VISIBLE)).mean())
    return float(np.mean(epe)), float(np.mean(zero)), float(np.mean(visible))


@pytest.fixture(scope="module")
def real_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PATN dataset with exact flows, one train pair's flow removed (a failed body fit)."""
    root = make_toy_dataset(tmp_path_factory.mktemp("real_flow") / "d", size=(32, 24),
                            num_people=3, poses_per_person=3, with_flows=True)  # fmt: skip
    next(iter(sorted((root / "flows").glob("*.npz")))).unlink()
    return root


def test_scores_by_hand_with_missing_flows_left_out(real_like: Path) -> None:
    flows = real_like / "flows"
    train = real_flow_pairs(real_like, flows, "train")
    test = real_flow_pairs(real_like, flows, "test")
    assert len(train) == 2 * 6 - 1 and len(test) == 6  # 2 train people x 6 ordered pairs
    paths = {s: [flows / flow_filename(a, b, "npz") for a, b in ds.pairs]
             for s, ds in (("train", train), ("test", test))}  # fmt: skip
    result = evaluate_real_flow(_Constant(1.5, -0.5), real_like, flows, batch_size=4)
    assert set(result) == {"train", "test", ALL}
    for split, r in result.items():
        files = paths["train"] + paths["test"] if split == ALL else paths[split]
        epe, zero, visible = _expected(files, 1.5, -0.5)
        assert r["num_pairs"] == len(files)
        assert r["epe_fg"] == pytest.approx(epe, rel=1e-5)
        assert r["epe_fg_zero_flow"] == pytest.approx(zero, rel=1e-5)
        assert r["vis_accuracy"] == pytest.approx(visible, rel=1e-5)
    # A zero flow scores the identity baseline.
    zero_model = evaluate_real_flow(_Constant(0.0, 0.0), real_like, flows, splits=["test"])
    assert set(zero_model) == {"test"}
    assert zero_model["test"]["epe_fg"] == pytest.approx(zero_model["test"]["epe_fg_zero_flow"])


def test_no_flows_is_an_error_naming_the_folder(real_like: Path, tmp_path: Path) -> None:
    empty = tmp_path / "synth_flow"
    (empty / "flows").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"synth_flow.*no flow file.*synth-flow"):
        real_flow_pairs(real_like, empty, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        real_flow_pairs(real_like, tmp_path / "nowhere", "test")
