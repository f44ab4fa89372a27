"""Inference poses and the 3D-body flow: :func:`check_pose`, :func:`body_flow`, :func:`body_flows`.

``--flow 3d`` takes the flow from the synthesis stage instead of the run's regressor: the body
model is fitted to both poses and the pair rendered (``render.bodies.render_body_flow``).
:func:`body_flow` does it pair by pair (photos, pair lists); :func:`body_flows` for one source
and many targets (a driving video: the source is fitted once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from posetransfer.pose.keypoints import Pose, stack_poses

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel
    from posetransfer.body.fitting import FitConfig

__all__ = ["MIN_VALID_KEYPOINTS", "PoseInputError", "body_flow", "body_flows", "check_pose"]

logger = logging.getLogger(__name__)

#: Fewest valid keypoints a pose needs (the body fit's minimum; fewer cannot place a person).
MIN_VALID_KEYPOINTS = 4


class PoseInputError(ValueError):
    """A pose given for inference is unusable (too few keypoints, wrong shape)."""


def check_pose(pose: Pose, what: str, min_valid: int = MIN_VALID_KEYPOINTS) -> Pose:
    """Return ``pose`` if it has at least ``min_valid`` valid keypoints.

    Raises:
        PoseInputError: Naming ``what`` (e.g. the pose file) and the count.
    """
    if not isinstance(pose, Pose):
        raise PoseInputError(f"{what}: expected a Pose, got {type(pose).__name__}")
    if pose.num_valid < min_valid:
        raise PoseInputError(
            f"{what}: has {pose.num_valid} valid keypoints, at least {min_valid} are needed"
        )
    return pose


def body_flow(
    model: BodyModel,
    poses_src: Sequence[Pose],
    poses_tgt: Sequence[Pose],
    size: tuple[int, int],
    fit: FitConfig | None = None,
    depth_tolerance_m: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow and visibility from the synthesis stage: fit the body to each pose, render pairs.

    Both poses of a pair are fitted with the same default body shape; the target body's pixels
    are matched to the source body's (:func:`posetransfer.render.bodies.render_body_flow`).

    Args:
        model: The body model (:func:`posetransfer.body.load_body_model`).
        poses_src: ``B`` source poses in the images' pixel frame.
        poses_tgt: ``B`` target poses.
        size: ``(H, W)`` of the images.
        fit: Keypoint-fit settings (default ``FitConfig()``).
        depth_tolerance_m: Occlusion tolerance in metres (default: the renderer's).

    Returns:
        ``(flow (B, 2, H, W), visibility (B, H, W))`` on the CPU.

    Raises:
        PoseInputError: A pose that could not be fitted (too few keypoints, NaN).
    """
    from posetransfer.body.fitting import fit_keypoints
    from posetransfer.render.bodies import render_body_flow
    from posetransfer.render.correspondence import DEFAULT_DEPTH_TOLERANCE_M

    poses = [*poses_src, *poses_tgt]
    count = len(poses_src)
    if len(poses_tgt) != count or count == 0:
        raise PoseInputError(f"need as many source as target poses, got {count}, {len(poses_tgt)}")
    xy, valid = stack_poses(poses)
    result = fit_keypoints(model, xy, valid, size, fit)
    for i, reason in enumerate(result.reason):
        role = "source" if i < count else "target"
        if result.camera[i].isnan().any():
            raise PoseInputError(f"{role} pose {i % count}: the body fit failed: {reason}")
        if reason is not None:
            logger.warning("%s pose %d: %s; using the fit anyway", role, i % count, reason)
    src, tgt = result.select(list(range(count))), result.select(list(range(count, 2 * count)))
    tolerance = DEFAULT_DEPTH_TOLERANCE_M if depth_tolerance_m is None else depth_tolerance_m
    field = render_body_flow(
        model, src.params, src.camera, tgt.params, tgt.camera, size, depth_tolerance_m=tolerance
    )
    return field.flow, field.visibility


def body_flows(
    model: Any, source: Pose, targets: Sequence[Pose], size: tuple[int, int], source_fit: Any = None
) -> tuple[torch.Tensor, torch.Tensor, list[int], Any]:
    """3D-body flows for many targets of one source: the source is fitted once.

    Args:
        model: The body model.
        source: Source keypoints in the model frame.
        targets: Target keypoints in the model frame.
        size: ``(h, w)`` of the frame.
        source_fit: The source's fit from an earlier call (None: fit it now).

    Returns:
        ``(flow (B, 2, h, w), visibility (B, h, w), failed target indices, source_fit)``; a
        failed target's flow is zero and all BACKGROUND.
    """
    from posetransfer.body.fitting import fit_keypoints
    from posetransfer.render.bodies import render_body_flow

    if source_fit is None:
        xy, valid = stack_poses([source])
        source_fit = fit_keypoints(model, xy, valid, size)
        if source_fit.camera.isnan().any():
            raise PoseInputError(f"source pose: the body fit failed: {source_fit.reason[0]}")
    xy, valid = stack_poses(list(targets))
    fits = fit_keypoints(model, xy, valid, size)
    failed = [i for i in range(len(targets)) if fits.camera[i].isnan().any()]
    ok = [i for i in range(len(targets)) if i not in failed]
    flow = torch.zeros(len(targets), 2, *size)
    vis = torch.full((len(targets), *size), 2, dtype=torch.long)  # Visibility.BACKGROUND
    if ok:
        src, tgt = source_fit.select([0] * len(ok)), fits.select(ok)
        field_ = render_body_flow(model, src.params, src.camera, tgt.params, tgt.camera, size)
        flow[ok], vis[ok] = field_.flow, field_.visibility.long()
    return flow, vis, failed, source_fit
