"""Tests for posetransfer.body.params."""

from __future__ import annotations

import json

import numpy as np
import pytest
import roma
import torch

from posetransfer.body.params import (
    ACTIVE_BONES,
    BALL_BONES,
    HINGE_BONES,
    BodyParams,
    mirror_rotvec,
)


def _random_params(batch: int, with_shape: bool) -> BodyParams:
    gen = torch.Generator().manual_seed(batch)
    return BodyParams(
        global_orient=torch.randn(batch, 3, generator=gen),
        body_pose=torch.randn(batch, len(BALL_BONES), 3, generator=gen),
        hinge=torch.randn(batch, len(HINGE_BONES), generator=gen),
        phenotype=torch.rand(batch, 6, generator=gen) if with_shape else None,
    )


def test_bone_tables() -> None:
    assert ACTIVE_BONES[0] == "root"
    assert len(set(ACTIVE_BONES)) == len(ACTIVE_BONES) == 1 + 20 + 4
    for bone in BALL_BONES + HINGE_BONES:  # sided bones come in mirrored pairs
        if bone.endswith((".L", ".R")):
            other = bone[:-1] + ("R" if bone.endswith("L") else "L")
            assert other in BALL_BONES + HINGE_BONES


def test_identity_and_shapes() -> None:
    params = BodyParams.identity(3)
    assert params.batch_size == 3
    assert params.body_pose.shape == (3, 20, 3)
    assert torch.equal(params.phenotype_or_default(), torch.full((3, 6), 0.5))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("body_pose", torch.zeros(2, 19, 3), "body_pose"),
        ("hinge", torch.zeros(3, 4), "hinge"),
        ("phenotype", torch.zeros(2, 5), "phenotype"),
        ("hinge", torch.zeros(2, 4, dtype=torch.long), "float"),
    ],
)
def test_validation_names_the_field(field: str, value: torch.Tensor, match: str) -> None:
    kwargs = {
        "global_orient": torch.zeros(2, 3),
        "body_pose": torch.zeros(2, 20, 3),
        "hinge": torch.zeros(2, 4),
        field: value,
    }
    with pytest.raises(ValueError, match=match):
        BodyParams(**kwargs)


@pytest.mark.parametrize("with_shape", [False, True])
def test_dict_round_trip(with_shape: bool) -> None:
    params = _random_params(4, with_shape)
    data = params.to_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in data.values())
    assert ("phenotype" in data) == with_shape
    back = BodyParams.from_dict(json.loads(json.dumps({k: v.tolist() for k, v in data.items()})))
    for name in ("global_orient", "body_pose", "hinge", "phenotype"):
        a, b = getattr(params, name), getattr(back, name)
        assert (a is None and b is None) or torch.equal(a, b)
    with pytest.raises(ValueError, match="hinge"):
        BodyParams.from_dict({"global_orient": [[0, 0, 0]], "body_pose": np.zeros((1, 20, 3))})


def test_select_and_cat() -> None:
    a, b = _random_params(3, False), _random_params(2, True)
    both = BodyParams.cat([a, b])
    assert both.batch_size == 5
    assert torch.equal(both.phenotype[:3], torch.full((3, 6), 0.5))
    assert torch.equal(both.select([4, 0]).hinge, torch.stack([b.hinge[1], a.hinge[0]]))
    assert torch.equal(both.select(slice(3, 5)).body_pose, b.body_pose)


def test_mirror_rotvec_is_a_reflection() -> None:
    rotvec = torch.tensor([[0.3, -0.2, 0.5]])
    assert torch.equal(mirror_rotvec(mirror_rotvec(rotvec)), rotvec)
    # Conjugating by the reflection S = diag(-1, 1, 1) mirrors the rotation: S R S = R(mirror).
    reflect = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    expected = reflect @ roma.rotvec_to_rotmat(rotvec)[0] @ reflect
    torch.testing.assert_close(roma.rotvec_to_rotmat(mirror_rotvec(rotvec))[0], expected)
