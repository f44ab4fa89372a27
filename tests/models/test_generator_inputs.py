"""Tests for posetransfer.models.generator_inputs: conditioning, visibility, input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.conventions import Visibility
from posetransfer.models.flow_regressor import FlowPrediction
from posetransfer.models.generator_inputs import (
    StateDictMismatchError,
    check_image_input,
    check_state_dict,
    check_visibility_input,
    condition_from_prediction,
    visibility_codes,
    visibility_probabilities,
)
from posetransfer.ops.warp import visibility_pyramid


def test_visibility_probabilities_from_codes_and_from_probabilities() -> None:
    vis = torch.randint(0, 3, (2, 8, 8))
    levels = visibility_probabilities(vis, 3)
    for lv, codes in enumerate(visibility_pyramid(vis, 3)):
        assert torch.equal(levels[lv].argmax(dim=1), codes) and torch.equal(
            levels[lv].sum(1), torch.ones_like(codes, dtype=torch.float32)
        )
    probs = torch.softmax(torch.randn(2, 3, 8, 8), dim=1)
    soft = visibility_probabilities(probs, 2)
    assert soft[0] is probs
    torch.testing.assert_close(soft[1], F.avg_pool2d(probs, 2))


def test_condition_from_prediction_zeroes_background_flow() -> None:
    logits = torch.randn(2, 3, 8, 8)
    flow = torch.randn(2, 2, 8, 8)
    pred = FlowPrediction([flow, flow[..., ::2, ::2]], [logits, logits[..., ::2, ::2]])
    cond_flow, vis = condition_from_prediction(pred)
    assert torch.equal(vis, logits.argmax(dim=1))
    background = (vis == Visibility.BACKGROUND).unsqueeze(1).expand_as(flow)
    assert background.any() and (cond_flow[background] == 0).all()
    assert torch.equal(cond_flow[~background], flow[~background])


def test_visibility_codes_from_codes_and_probabilities() -> None:
    codes = torch.randint(0, 3, (2, 4, 5), dtype=torch.int32)
    assert visibility_codes(codes).dtype == torch.int64
    assert torch.equal(visibility_codes(codes), codes.long())
    one_hot = F.one_hot(codes.long(), 3).permute(0, 3, 1, 2).float()
    assert torch.equal(visibility_codes(one_hot), codes.long())


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2, 3, 8), "must be a float (B, C, H, W) tensor, got (2, 3, 8)"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.long), "must be a float (B, C, H, W)"),
        (torch.zeros(2, 4, 8, 8), "must have 3 channels, got x_src.shape=(2, 4, 8, 8)"),
        (torch.zeros(2, 3, 8, 6), "has size (H, W)=(8, 6), expected (8, 8)"),
        (torch.zeros(3, 3, 8, 8), "has batch size 3, x_src has 2"),
    ],
)
def test_image_checks_name_the_argument_and_shapes(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=r"^Net: x_src ") as err:
        check_image_input("x_src", x, 3, (8, 8), 2, "Net")
    assert message in str(err.value)


def test_image_check_returns_the_batch_and_accepts_any_size_or_batch() -> None:
    assert check_image_input("x", torch.zeros(5, 3, 7, 9), 3, None, None, "Net") == 5


@pytest.mark.parametrize(
    ("vis", "message"),
    [
        (torch.zeros(2, 8, 8), "integer codes"),  # float codes
        (torch.zeros(2, 8, 7, dtype=torch.long), "got (2, 8, 7)"),
        (torch.randn(2, 3, 8, 8), "not logits"),
        ([[0]], "must be a tensor, got list"),
    ],
)
def test_visibility_checks(vis: object, message: str) -> None:
    with pytest.raises(ValueError, match=r"^Net: ") as err:
        check_visibility_input(vis, 2, (8, 8), "Net")  # type: ignore[arg-type]
    assert message in str(err.value)


def test_valid_visibility_passes() -> None:
    check_visibility_input(torch.zeros(2, 8, 8, dtype=torch.long), 2, (8, 8), "Net")
    probs = torch.softmax(torch.randn(2, 3, 8, 8), dim=1).bfloat16()
    check_visibility_input(probs, 2, (8, 8), "Net")


def test_state_dict_check_lists_missing_unexpected_and_shapes() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    state = net.state_dict()
    check_state_dict(net, state)
    bad = dict(state)
    del bad["1.bias"]
    bad["2.weight"] = torch.zeros(1)
    bad["0.weight"] = torch.zeros(5, 3, 3, 3)
    with pytest.raises(StateDictMismatchError) as err:
        check_state_dict(net, bad)
    text = str(err.value)
    assert "missing keys: 1.bias" in text and "unexpected keys: 2.weight" in text
    assert "0.weight: checkpoint (5, 3, 3, 3) vs model (4, 3, 3, 3)" in text
    del bad["2.weight"], bad["0.weight"]
    check_state_dict(net, bad, strict=False)  # missing keys allowed, shapes still checked
