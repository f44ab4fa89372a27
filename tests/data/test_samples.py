"""Tests of posetransfer.data.samples: PairSample, PairBatch and collate_pairs, hand-made."""

from __future__ import annotations

import pytest
import torch

from posetransfer.data.samples import PairBatch, PairSample, collate_pairs


def _sample(name: str, size: tuple[int, int] = (8, 6), flow: bool = True) -> PairSample:
    height, width = size
    image = torch.zeros(3, height, width)
    return PairSample(
        source_name=f"{name}-src",
        target_name=f"{name}-tgt",
        source_image=image,
        target_image=image + 1,
        source_xy=torch.zeros(18, 2),
        source_valid=torch.ones(18, dtype=torch.bool),
        target_xy=torch.ones(18, 2),
        target_valid=torch.zeros(18, dtype=torch.bool),
        source_pose_map=torch.zeros(5, height, width),
        target_pose_map=torch.ones(5, height, width),
        flow=torch.zeros(2, height, width) if flow else None,
        visibility=torch.zeros(height, width, dtype=torch.int64) if flow else None,
    )


def test_collate_stacks_every_field_and_keeps_names() -> None:
    batch = collate_pairs([_sample("a"), _sample("b")])
    assert isinstance(batch, PairBatch) and len(batch) == 2
    assert batch.source_name == ["a-src", "b-src"] and batch.target_name == ["a-tgt", "b-tgt"]
    assert batch.source_image.shape == (2, 3, 8, 6) and batch.target_pose_map.shape == (2, 5, 8, 6)
    assert batch.flow is not None and batch.flow.shape == (2, 2, 8, 6)
    assert batch.visibility is not None and batch.visibility.dtype == torch.int64


def test_collate_without_flow_leaves_it_out() -> None:
    batch = collate_pairs([_sample("a", flow=False), _sample("b", flow=False)])
    assert batch.flow is None and batch.visibility is None


def test_collate_refuses_different_shapes_naming_field_and_pairs() -> None:
    with pytest.raises(ValueError, match=r"source_image.*\(a-src, a-tgt\).*\(b-src, b-tgt\)"):
        collate_pairs([_sample("a"), _sample("b", size=(8, 7))])


def test_batch_to_moves_tensors_and_keeps_the_rest() -> None:
    batch = collate_pairs([_sample("a", flow=False)])
    moved = batch.to(torch.device("cpu"))
    assert moved is not batch and moved.source_name == ["a-src"] and moved.flow is None
    torch.testing.assert_close(moved.target_image, batch.target_image)
