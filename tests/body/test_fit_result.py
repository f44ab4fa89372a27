"""Tests for posetransfer.body.fit_result (serialisation, selection, rescaling)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.body import BodyParams, FitResult


def _result(with_shape: bool = False) -> FitResult:
    gen = torch.Generator().manual_seed(0)
    params = BodyParams(
        global_orient=torch.randn(3, 3, generator=gen),
        body_pose=torch.randn(3, 20, 3, generator=gen),
        hinge=torch.randn(3, 4, generator=gen),
        phenotype=torch.rand(3, 6, generator=gen) if with_shape else None,
    )
    params.body_pose[1] = math.nan  # item 1 was not fitted
    return FitResult(
        params=params,
        camera=torch.tensor([[4.8, 88.0, 128.0], [math.nan] * 3, [4.7, 90.0, 120.0]]),
        reprojection_error=torch.tensor([0.4, math.nan, 7.5]),
        converged=torch.tensor([True, False, False]),
        reason=[None, "fewer than 4 valid keypoints", "did not converge: error 7.50 px"],
        image_size=(256, 176),
        keypoints_xy=torch.rand(3, 18, 2, generator=gen) * 100,
        num_valid=torch.tensor([18, 2, 17]),
    )


def _assert_same(a: FitResult, b: FitResult) -> None:
    for name in ("camera", "reprojection_error", "keypoints_xy"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), equal_nan=True)
    assert torch.equal(a.converged, b.converged) and torch.equal(a.num_valid, b.num_valid)
    torch.testing.assert_close(a.params.body_pose, b.params.body_pose, equal_nan=True)
    assert (a.params.phenotype is None) == (b.params.phenotype is None)
    assert a.reason == b.reason and a.image_size == b.image_size


@pytest.mark.parametrize("with_shape", [False, True])
def test_dict_npz_and_json_round_trips(tmp_path: Path, with_shape: bool) -> None:
    result = _result(with_shape)
    data = result.to_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in data.values())
    _assert_same(result, FitResult.from_dict(data))
    result.save(tmp_path / "fits" / "batch.npz")
    _assert_same(result, FitResult.load(tmp_path / "fits" / "batch.npz"))
    as_json = json.loads(json.dumps({k: v.tolist() for k, v in data.items()}))
    _assert_same(result, FitResult.from_dict(as_json))


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"broken\.npz"):
        FitResult.load(bad)
    with pytest.raises(ValueError, match="camera"):
        FitResult.from_dict({k: v for k, v in _result().to_dict().items() if k != "camera"})


def test_select_and_attempted() -> None:
    result = _result()
    assert result.attempted.tolist() == [True, False, True]
    sub = result.select([2, 0])
    assert len(sub) == 2 and sub.reason == [result.reason[2], None]
    assert torch.equal(sub.camera, result.camera[[2, 0]])


def test_rescaled() -> None:
    result = _result()
    half = result.rescaled(0.5)
    assert half.image_size == (128, 88)
    torch.testing.assert_close(half.keypoints_xy, result.keypoints_xy * 0.5)
    torch.testing.assert_close(half.camera[0, 0], result.camera[0, 0] + math.log(0.5))
    torch.testing.assert_close(half.camera[0, 1:], result.camera[0, 1:] * 0.5)
    assert half.params is result.params


def test_shape_validation() -> None:
    result = _result()
    with pytest.raises(ValueError, match="camera"):
        FitResult(**{**result.__dict__, "camera": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="reason"):
        FitResult(**{**result.__dict__, "reason": [None]})
