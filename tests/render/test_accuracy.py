"""Flow synthesis on synthetic ground truth: fit Anny from projected keypoints alone, compare flows.

The figures are printed (``pytest -s``) and recorded by ``benchmarks/synth_flow.py``; the
assertions are sanity bounds well inside what the fitter achieves.
"""

from __future__ import annotations

import math

import pytest
import roma
import torch

from posetransfer.body import BodyModel
from posetransfer.conventions import Visibility
from posetransfer.render.accuracy import (
    AccuracyReport,
    SyntheticViews,
    fit_accuracy,
    flow_agreement,
    synthetic_views,
    textured_warp_error,
)
from posetransfer.render.bodies import body_image_vertices
from posetransfer.render.correspondence import FlowField, render_pair

SIZE = (256, 176)


@pytest.fixture(scope="module")
def views(body_model: BodyModel) -> SyntheticViews:
    """12 standing/walking/fashion bodies, one per 30-degree yaw sector, framed in 256x176."""
    return synthetic_views(body_model, torch.Generator().manual_seed(0), 12, SIZE)


@pytest.fixture(scope="module")
def report(body_model: BodyModel, views: SyntheticViews) -> AccuracyReport:
    return fit_accuracy(body_model, views)


def test_views_cover_every_yaw_and_stay_in_the_image(views: SyntheticViews) -> None:
    forward = roma.rotvec_to_rotmat(views.params.global_orient) @ torch.tensor([0.0, -1.0, 0.0])
    yaw = torch.atan2(forward[:, 0], -forward[:, 1])  # 0 = facing the camera
    sectors = ((yaw + math.pi) / (2 * math.pi) * 12).floor().long().clamp(0, 11)
    assert len(set(sectors.tolist())) >= 11  # one per sector, up to the small body tilt
    kp = views.keypoints
    assert (kp[..., 0] > 0).all() and (kp[..., 0] < SIZE[1]).all()
    assert (kp[..., 1] > 0).all() and (kp[..., 1] < SIZE[0]).all()
    height = kp[..., 1].amax(1) - kp[..., 1].amin(1)
    assert (height > 0.5 * SIZE[0]).all()  # people fill the frame as in DeepFashion


def test_fit_from_keypoints_alone_is_sub_pixel(report: AccuracyReport) -> None:
    figures = report.summary()
    print("\nfitted vs true (12 views, 12 pairs, 256x176):", figures)
    assert report.converged.all()
    assert figures["reprojection_median_px"] < 1.0


def test_fitted_flow_agrees_with_the_true_flow(report: AccuracyReport) -> None:
    figures = report.summary()
    # depth ambiguity of 2D-only fitting makes the flows differ somewhat (reference: ~4 px EPE,
    # IoU 0.91, visibility 0.82 on harder random poses); these are loose sanity bounds
    assert figures["epe_mean_px"] < 0.25 * figures["true_flow_magnitude_px"]
    assert figures["epe_median_px"] < 3.0
    assert figures["silhouette_iou_mean"] > 0.9 and report.silhouette_iou.min() > 0.8
    assert figures["visibility_agreement_mean"] > 0.8


def test_true_flow_carries_the_source_texture_onto_the_target(
    body_model: BodyModel, views: SyntheticViews
) -> None:
    verts = body_image_vertices(body_model, views.params, views.camera)
    src, tgt = verts[:6], verts[6:]
    field = render_pair(src, tgt, body_model.faces, SIZE, 0.015)
    error, region = textured_warp_error(body_model, src, tgt, field)
    visible = field.visibility == Visibility.VISIBLE
    assert region.sum() > 0.4 * visible.sum()
    values = error[region]
    print(
        f"\ntextured warp by the true flow: median {values.median():.4f}, "
        f"p90 {values.quantile(0.9):.4f}, mean {values.mean():.4f} on {region.sum()} px"
    )
    assert values.median() < 0.01 and values.quantile(0.9) < 0.1
    # negative control: without the flow the target is not reproduced
    zero = FlowField(torch.zeros_like(field.flow), field.visibility)
    assert textured_warp_error(body_model, src, tgt, zero)[0][region].median() > 0.1


def test_flow_agreement_hand_computed() -> None:
    vis = torch.full((1, 4, 4), int(Visibility.BACKGROUND))
    vis[0, :2, :2] = Visibility.VISIBLE  # 4 body pixels
    flow = torch.zeros(1, 2, 4, 4)
    flow[0, 0, :2, :2] = 2.0
    true = FlowField(flow, vis)
    same = flow_agreement(true, true)
    assert same["epe_mean"].item() == 0 and same["silhouette_iou"].item() == 1
    assert same["visibility_agreement"].item() == 1
    vis_fit = vis.clone()
    vis_fit[0, 0, 0] = Visibility.BACKGROUND  # one body pixel lost
    vis_fit[0, 3, 3] = Visibility.INVISIBLE  # one background pixel gained
    vis_fit[0, 1, 1] = Visibility.INVISIBLE  # one code differs
    flow_fit = flow.clone()
    flow_fit[0, 1, 0, 1] = 5.0  # |(2, 5) - (2, 0)| = 5 at one of the 3 shared pixels
    got = flow_agreement(FlowField(flow_fit, vis_fit), true)
    assert got["silhouette_iou"].item() == pytest.approx(3 / 5)
    assert got["visibility_agreement"].item() == pytest.approx(2 / 4)
    assert got["epe_mean"].item() == pytest.approx(5 / 3)
    assert got["epe_median"].item() == 0
    with pytest.raises(ValueError, match="shapes differ"):
        flow_agreement(FlowField(flow[:, :, :2], vis[:, :2]), true)
