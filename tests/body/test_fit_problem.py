"""Tests of posetransfer.body.fit_problem: the fit's settings and its analytic Jacobian."""

from __future__ import annotations

import math

import pytest
import torch

from posetransfer.body import BodyModel
from posetransfer.body.fit_problem import FitConfig, Problem, project_with_jacobian
from posetransfer.body.fitting import _initial_state
from posetransfer.body.priors import default_pose_prior


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"iterations": 0}, "iterations"), ({"robust_loss": "huber"}, "robust_loss"),
     ({"pose_prior_weight": -1.0}, "pose_prior_weight"), ({"robust_anneal": 0.5}, "anneal")],
)  # fmt: skip
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FitConfig(**kwargs)


def test_projection_jacobian_matches_finite_differences(body_model: BodyModel) -> None:
    prior = default_pose_prior()
    x = _initial_state(prior, torch.tensor([0.7, 2.9]), 1)
    x[:, 0] = math.log(120.0)
    x[:, 1:3] = torch.tensor([88.0, 128.0])
    x[:, 6:] += 0.3 * torch.randn(2, x.shape[1] - 6, generator=torch.Generator().manual_seed(0))
    basis, axes = body_model.keypoint_basis(), body_model.hinge_axes
    problem = Problem(
        torch.zeros(2, 18, 2), torch.ones(2, 18), torch.ones(2), basis, axes, prior, FitConfig()
    )
    _, jac = project_with_jacobian(x, problem)
    eps = 1e-3
    for col in [0, 1, 2, 3, 4, 5, 6, 20, 44, 50, 66, 69]:
        step = torch.zeros_like(x)
        step[:, col] = eps
        plus, _ = project_with_jacobian(x + step, problem)
        minus, _ = project_with_jacobian(x - step, problem)
        fd = (plus - minus) / (2 * eps)
        torch.testing.assert_close(fd, jac[..., col], atol=0.05, rtol=1e-3)  # pixels per unit
